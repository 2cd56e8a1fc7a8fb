//! The read capability of tools: what the `sagaflow` command line (and, later, a dashboard)
//! reads of a database, whichever store wrote it.
//!
//! A durable store crate gives a read-only implementation of [`Inspect`] beside its store
//! (`sagaflow_sqlite::inspect::Inspector` on a file, `sagaflow_postgres::inspect::PgInspector`
//! on a server): it migrates nothing, takes no lease, and reads while a service writes. The
//! records here are the database's rows as a tool shows them (statuses as the stored words,
//! times as unix milliseconds), not the engine's [`StoredRun`](super::StoredRun), which holds
//! what resuming a run needs.

use serde::Serialize;

/// A run as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The run's id.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// `running`, `completed`, `failed`, `cancelled` or `parked`.
    pub status: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When it was created, unix milliseconds.
    pub created_at: i64,
    /// When it last changed, unix milliseconds.
    pub updated_at: i64,
}

impl Run {
    /// Whether it ended: completed, failed or cancelled.
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }

    /// How long it ran (until `now`, unix milliseconds, if it has not finished).
    pub fn duration_ms(&self, now: i64) -> i64 {
        let end = if self.finished() {
            self.updated_at
        } else {
            now
        };
        (end - self.created_at).max(0)
    }
}

/// A step as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The step's name.
    pub name: String,
    /// `running`, `completed`, `failed`, `skipped`, ...
    pub status: String,
    /// The attempts it made.
    pub attempts: u32,
    /// Its last error, if any.
    pub error: Option<String>,
    /// When its first attempt started, unix milliseconds.
    pub started_at: Option<i64>,
    /// When it ended, unix milliseconds.
    pub finished_at: Option<i64>,
}

impl Step {
    /// How long it took, if it ended.
    pub fn duration_ms(&self) -> Option<i64> {
        Some((self.finished_at? - self.started_at?).max(0))
    }
}

/// One row of the event log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// Its position in the log.
    pub seq: i64,
    /// The run.
    pub run_id: String,
    /// When it was recorded, unix milliseconds.
    pub at: i64,
    /// What happened (`run_created`, `step_started`, ...).
    pub kind: String,
    /// The step, for a step's event.
    pub step: Option<String>,
    /// The attempt, where the kind has one.
    pub attempt: Option<i64>,
    /// The event's details (JSON), if any.
    pub detail: Option<serde_json::Value>,
}

impl EventRow {
    /// The start of `step`'s first attempt that `row` logs too (a compact log; see
    /// [`Event::started_in_row`](crate::runtime::Event::started_in_row)): numbered one past it,
    /// at its time.
    pub fn started_in(row: &EventRow, step: String) -> EventRow {
        EventRow {
            seq: row.seq.saturating_add(1),
            run_id: row.run_id.clone(),
            at: row.at,
            kind: crate::runtime::events::EventKind::StepStarted
                .as_str()
                .to_owned(),
            step: Some(step),
            attempt: Some(1),
            detail: None,
        }
    }
}

/// A persisted state machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// Its id.
    pub machine_id: String,
    /// Its type.
    pub machine: String,
    /// Its state (JSON; a string if it is not JSON).
    pub state: serde_json::Value,
    /// Its version: the number of transitions stored.
    pub version: i64,
    /// When it was created, unix milliseconds.
    pub created_at: i64,
    /// When it last changed, unix milliseconds.
    pub updated_at: i64,
}

/// One row of a machine's transition log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The version it produced.
    pub seq: i64,
    /// The state it left.
    pub from: String,
    /// The event.
    pub event: String,
    /// The state it entered.
    pub to: String,
    /// When it was committed, unix milliseconds.
    pub at: i64,
}

/// Text as stored where JSON is expected (an event's detail, a machine's state): the JSON
/// value, or the text as a JSON string if it does not parse.
pub fn json_or_text(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

/// Reading a sagaflow database read-only, as tools do: every run, step, event, signal,
/// graph and machine, whichever store wrote them. Each read is a statement of its own (one
/// snapshot): a service may write meanwhile, and the next read sees its commits.
///
/// Every error names the database ([`database`](Self::database)), and the run or machine
/// asked for.
#[async_trait::async_trait]
pub trait Inspect: Send + Sync {
    /// The database as errors name it: a file's path, or a server's URL without its password
    /// (and the schema, where it is not the default).
    fn database(&self) -> &str;

    /// Every run, oldest first.
    async fn runs(&self) -> Result<Vec<Run>, InspectError>;

    /// The run `run_id`, or [`InspectError::UnknownRun`].
    async fn run(&self, run_id: &str) -> Result<Run, InspectError>;

    /// The steps of `run_id`, in the order they first started.
    async fn steps(&self, run_id: &str) -> Result<Vec<Step>, InspectError>;

    /// Every step of every run, with its run's id, in the order the steps first started.
    async fn all_steps(&self) -> Result<Vec<(String, Step)>, InspectError>;

    /// The ids of the runs that have a step named `step`, in the order the steps started.
    async fn runs_with_step(&self, step: &str) -> Result<Vec<String>, InspectError>;

    /// The payload of the signal `name` delivered to `run_id`, if any.
    async fn signal(&self, run_id: &str, name: &str) -> Result<Option<String>, InspectError>;

    /// The events of the runs `run_ids` after `after`, in `seq` order: every one committed
    /// before the call, as [`EventLog::events`](crate::runtime::EventLog::events) promises.
    async fn events(&self, run_ids: &[String], after: i64) -> Result<Vec<EventRow>, InspectError>;

    /// The graph stored with the run (JSON, `{"nodes": [...], "edges": [[from, to], ...]}`),
    /// if the run has one.
    async fn graph(&self, run_id: &str) -> Result<Option<String>, InspectError>;

    /// Every persisted state machine, by id.
    async fn machines(&self) -> Result<Vec<Machine>, InspectError>;

    /// The machine `id`, or [`InspectError::UnknownMachine`].
    async fn machine(&self, id: &str) -> Result<Machine, InspectError>;

    /// The transition log of machine `id`, oldest first.
    async fn transitions(&self, id: &str) -> Result<Vec<Transition>, InspectError>;

    /// Looks for damage in the database's storage, read-only: the problems found (a bounded
    /// number), none for a sound database. A store that cannot look (its server checks its
    /// own pages) answers [`InspectError::Unsupported`], saying what to use instead.
    async fn check(&self) -> Result<Vec<String>, InspectError>;

    /// The replicas heard from and every unfinished run with its lease, read at one moment
    /// of the store's clock (see [`Replicas::standing`](super::replicas::Replicas::standing)).
    /// A database written before replicas were recorded has none.
    async fn replicas(&self) -> Result<super::replicas::Replicas, InspectError>;

    /// The queues: what waits on each, what runs, the oldest waiting, the starts of the last
    /// minute.
    async fn queues(&self) -> Result<super::queues::Queues, InspectError>;
}

/// Why a database could not be read, each naming the database (a file's path, or a server's
/// URL without its password), and the run or machine it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// The file does not exist.
    #[error("`{database}`: no such file")]
    Missing {
        /// The database.
        database: String,
    },
    /// The store cannot read it as a database of its kind (a file that is not SQLite).
    #[error("`{database}` is not a {store} database")]
    NotADatabase {
        /// The database.
        database: String,
        /// The kind of database it is not: `SQLite`.
        store: &'static str,
    },
    /// A database, but not one sagaflow wrote (no sagaflow tables, no such schema).
    #[error("`{database}` is not a sagaflow database ({reason})")]
    NotSagaflow {
        /// The database.
        database: String,
        /// What was found instead.
        reason: String,
    },
    /// Written by a newer sagaflow.
    #[error(
        "`{database}` has schema version {found}, newer than this sagaflow reads (up to version {supported}): use a newer `sagaflow`"
    )]
    TooNew {
        /// The database.
        database: String,
        /// Its schema version.
        found: i64,
        /// The newest this code reads.
        supported: i64,
    },
    /// The store failed: a read, a connection, a URL that does not parse.
    #[error("`{database}`: {message}")]
    Backend {
        /// The database.
        database: String,
        /// The store's message.
        message: String,
    },
    /// The store cannot do this: [`Inspect::check`] on a server.
    #[error("`{database}`: {message}")]
    Unsupported {
        /// The database.
        database: String,
        /// What it cannot do, and what to use instead.
        message: String,
    },
    /// No run with this id.
    #[error("no run `{run}` in `{database}`")]
    UnknownRun {
        /// The database.
        database: String,
        /// The run id asked for.
        run: String,
    },
    /// No machine with this id.
    #[error("no state machine `{machine}` in `{database}`")]
    UnknownMachine {
        /// The database.
        database: String,
        /// The machine id asked for.
        machine: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_lasts_until_it_ends_or_until_now() {
        let mut run = Run {
            run_id: "r".to_owned(),
            workflow: "W".to_owned(),
            status: "running".to_owned(),
            error: None,
            created_at: 1_000,
            updated_at: 1_500,
        };
        assert!(!run.finished());
        assert_eq!(run.duration_ms(4_000), 3_000);
        run.status = "failed".to_owned();
        assert!(run.finished());
        assert_eq!(run.duration_ms(4_000), 500);
        run.status = "parked".to_owned();
        assert!(!run.finished(), "a parked run has not ended");
    }

    #[test]
    fn stored_text_reads_as_json_where_it_is() {
        assert_eq!(
            json_or_text(r#"{"Locked":1}"#.to_owned()),
            serde_json::json!({"Locked": 1})
        );
        assert_eq!(
            json_or_text("not json".to_owned()),
            serde_json::json!("not json")
        );
    }

    #[test]
    fn errors_name_the_database_and_the_run() {
        let error = InspectError::UnknownRun {
            database: "postgres://app@db:5432/orders".to_owned(),
            run: "r-1".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "no run `r-1` in `postgres://app@db:5432/orders`"
        );
        let error = InspectError::NotADatabase {
            database: "notes.txt".to_owned(),
            store: "SQLite",
        };
        assert_eq!(error.to_string(), "`notes.txt` is not a SQLite database");
    }
}
