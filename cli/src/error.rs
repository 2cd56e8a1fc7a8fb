//! What can go wrong, each naming the database (a file, or a server's URL without its
//! password), run or machine it is about.

/// An error of the command line; printed as `sagaflow: <message>`, exit code 1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// No `--db` and no `SAGAFLOW_DB`.
    #[error("no database: pass --db FILE or set SAGAFLOW_DB (a SQLite file, or a postgres:// URL)")]
    NoDatabase,
    /// The database could not be read: missing, not SQLite, not sagaflow's, too new, a server
    /// that cannot be reached, or a run or machine it does not have.
    #[error(transparent)]
    Read(#[from] sagaflow_core::runtime::store::inspect::InspectError),
    /// `sagaflow check` found damage.
    #[error("`{database}` is damaged: {count} problem(s) found by integrity_check")]
    Damaged { database: String, count: usize },
    /// A signal's payload is not JSON.
    #[error("the payload of signal `{name}` for run `{run}` is not JSON: {message}")]
    BadJson {
        run: String,
        name: String,
        message: String,
    },
    /// A command-line value that does not parse, or options that do not go together.
    #[error("{0}")]
    Usage(String),
    /// The run cannot take this request.
    #[error("run `{run}` in `{database}`: {message}")]
    Refused {
        database: String,
        run: String,
        message: String,
    },
    /// The store or the saga API refused a write.
    #[error("`{database}`: {message}")]
    Write { database: String, message: String },
    /// The terminal went away (a closed pipe is not an error: see `main`).
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
}
