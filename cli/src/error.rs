//! What can go wrong, each naming the file, run or machine it is about.

use std::path::PathBuf;

/// An error of the command line; printed as `sagaflow: <message>`, exit code 1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// No `--db` and no `SAGAFLOW_DB`.
    #[error("no database: pass --db FILE or set SAGAFLOW_DB")]
    NoDatabase,
    /// The file does not exist.
    #[error("`{}`: no such file", path.display())]
    Missing { path: PathBuf },
    /// SQLite cannot read the file as a database.
    #[error("`{}` is not a SQLite database", path.display())]
    NotSqlite { path: PathBuf },
    /// A SQLite database, but not one sagaflow wrote.
    #[error("`{}` is not a sagaflow database ({reason})", path.display())]
    NotSagaflow { path: PathBuf, reason: String },
    /// Written by a newer sagaflow.
    #[error(
        "`{}` has schema version {found}, newer than this sagaflow reads (up to version {supported}): use a newer `sagaflow`",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// `sagaflow check` found damage.
    #[error("`{}` is damaged: {count} problem(s) found by integrity_check", path.display())]
    Damaged { path: PathBuf, count: usize },
    /// A SQLite error while reading.
    #[error("`{}`: {message}", path.display())]
    Sqlite { path: PathBuf, message: String },
    /// No run with this id.
    #[error("no run `{run}` in `{}`", path.display())]
    UnknownRun { path: PathBuf, run: String },
    /// No machine with this id.
    #[error("no state machine `{machine}` in `{}`", path.display())]
    UnknownMachine { path: PathBuf, machine: String },
    /// A signal's payload is not JSON.
    #[error("the payload of signal `{name}` for run `{run}` is not JSON: {message}")]
    BadJson {
        run: String,
        name: String,
        message: String,
    },
    /// A command-line value that does not parse.
    #[error("{0}")]
    Usage(String),
    /// The run cannot take this request.
    #[error("run `{run}` in `{}`: {message}", path.display())]
    Refused {
        path: PathBuf,
        run: String,
        message: String,
    },
    /// The store or the saga API refused a write.
    #[error("`{}`: {message}", path.display())]
    Write { path: PathBuf, message: String },
    /// The terminal went away (a closed pipe is not an error: see `main`).
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
}
