//! Reading a sagaflow database read-only, as tools do (the `sagaflow` command line): it may
//! be written by a running service meanwhile (WAL lets a reader see the last commit without
//! blocking the writer). An [`Inspector`] migrates nothing and takes no lease owner slot.
//!
//! The schema is read as the version found in the file says (`PRAGMA user_version`): columns
//! that later versions added are read only where they exist, and a file newer than this
//! sagaflow is refused rather than guessed at. This is the one place outside the store that
//! knows the tables, so a schema change touches this crate only.
//!
//! ```
//! use sagaflow_core::runtime::{Builder, Engine, StepError};
//! use sagaflow_core::StepOptions;
//! use sagaflow_sqlite::SqliteEngine as _;
//! use sagaflow_sqlite::inspect::Inspector;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let path = dir.path().join("service.db");
//! let mut b = Builder::<u32>::new("Double");
//! let input = b.input();
//! let out = b.step("double", StepOptions::new(), (input,), |_, (x,)| async move {
//!     Ok::<_, StepError>(*x * 2)
//! });
//! let engine = Engine::open(&path)?;
//! engine.start(&b.build_with_output(out), "run-1", 21).await?.wait().await?;
//!
//! // Another process (a tool) reads the same file, while the service may go on writing.
//! let db = Inspector::open(&path)?;
//! let run = db.run("run-1")?;
//! assert_eq!((run.workflow.as_str(), run.status.as_str()), ("Double", "completed"));
//! assert_eq!(db.steps("run-1")?[0].name, "double");
//! assert!(db.run("nope").is_err());
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::schema::SCHEMA_VERSION;

/// The schema version that added the `parked` column.
const V_PARKED: i64 = 3;
/// The schema version that added the machines tables.
const V_MACHINES: i64 = 4;
/// The schema version that added `runs.graph`.
const V_GRAPH: i64 = 5;
/// The most problems [`Inspector::integrity`] lists.
pub const INTEGRITY_PROBLEMS: u32 = 20;

/// A database file opened read-only.
pub struct Inspector {
    conn: Connection,
    path: PathBuf,
    version: i64,
}

/// A run as listed.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

/// A persisted state machine.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

impl Inspector {
    /// Opens `path` read-only and checks that it is a sagaflow database this code can read.
    pub fn open(path: &Path) -> Result<Inspector, InspectError> {
        if !path.exists() {
            return Err(InspectError::Missing {
                path: path.to_owned(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite(path, &e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| sqlite(path, &e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| sqlite(path, &e))?;
        if version > SCHEMA_VERSION {
            return Err(InspectError::TooNew {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND name IN ('runs', 'steps', 'events')",
                [],
                |row| row.get(0),
            )
            .map_err(|e| sqlite(path, &e))?;
        if version < 1 || tables != 3 {
            return Err(InspectError::NotSagaflow {
                path: path.to_owned(),
                reason: if version < 1 {
                    format!("schema version {version}, no sagaflow tables")
                } else {
                    format!("schema version {version}, but no sagaflow tables")
                },
            });
        }
        Ok(Inspector {
            conn,
            path: path.to_owned(),
            version,
        })
    }

    fn err(&self, error: &rusqlite::Error) -> InspectError {
        sqlite(&self.path, error)
    }

    /// What `PRAGMA integrity_check` finds, at most [`INTEGRITY_PROBLEMS`] problems: `["ok"]`
    /// for a sound file. A file too damaged for the pragma to walk gives SQLite's error as its
    /// one problem.
    pub fn integrity(&self) -> Result<Vec<String>, InspectError> {
        let checked = self
            .conn
            .prepare(&format!("PRAGMA integrity_check({INTEGRITY_PROBLEMS})"))
            .and_then(|mut stmt| {
                stmt.query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            });
        match checked {
            Ok(problems) => Ok(problems),
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseCorrupt) => {
                Ok(vec![e.to_string()])
            }
            Err(e) => Err(self.err(&e)),
        }
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<Run>, InspectError> {
        let parked = if self.version >= V_PARKED {
            "parked"
        } else {
            "0"
        };
        let sql = format!(
            "SELECT run_id, workflow, status, error, created_at, updated_at, {parked} \
             FROM runs ORDER BY created_at, rowid"
        );
        self.query(&sql, [], run_of)
    }

    /// The run `run_id`, or [`InspectError::UnknownRun`].
    pub fn run(&self, run_id: &str) -> Result<Run, InspectError> {
        let parked = if self.version >= V_PARKED {
            "parked"
        } else {
            "0"
        };
        let sql = format!(
            "SELECT run_id, workflow, status, error, created_at, updated_at, {parked} \
             FROM runs WHERE run_id = ?1"
        );
        self.conn
            .query_row(&sql, [run_id], run_of)
            .optional()
            .map_err(|e| self.err(&e))?
            .ok_or_else(|| InspectError::UnknownRun {
                path: self.path.clone(),
                run: run_id.to_owned(),
            })
    }

    /// The steps of `run_id`, in the order they first started.
    pub fn steps(&self, run_id: &str) -> Result<Vec<Step>, InspectError> {
        self.query(
            "SELECT name, status, attempts, error, started_at, finished_at FROM steps \
             WHERE run_id = ?1 ORDER BY rowid",
            [run_id],
            step_of,
        )
    }

    /// Every step of every run, with its run's id.
    pub fn all_steps(&self) -> Result<Vec<(String, Step)>, InspectError> {
        self.query(
            "SELECT name, status, attempts, error, started_at, finished_at, run_id FROM steps \
             ORDER BY rowid",
            [],
            |row| Ok((row.get(6)?, step_of(row)?)),
        )
    }

    /// The ids of the runs that have a step named `step`, in the order the steps started.
    pub fn runs_with_step(&self, step: &str) -> Result<Vec<String>, InspectError> {
        self.query(
            "SELECT run_id FROM steps WHERE name = ?1 ORDER BY rowid",
            [step],
            |row| row.get(0),
        )
    }

    /// The payload of the signal `name` delivered to `run_id`, if any.
    pub fn signal(&self, run_id: &str, name: &str) -> Result<Option<String>, InspectError> {
        if self.version < 2 {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT payload FROM signals WHERE run_id = ?1 AND name = ?2",
                [run_id, name],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(&e))
    }

    /// Events of the runs `run_ids` after `after`, in `seq` order.
    pub fn events(&self, run_ids: &[String], after: i64) -> Result<Vec<EventRow>, InspectError> {
        let mut events = Vec::new();
        for run_id in run_ids {
            events.extend(self.query(
                "SELECT seq, run_id, at, kind, step, attempt, detail FROM events \
                 WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
                params![run_id, after],
                |row| {
                    let detail: Option<String> = row.get(6)?;
                    Ok(EventRow {
                        seq: row.get(0)?,
                        run_id: row.get(1)?,
                        at: row.get(2)?,
                        kind: row.get(3)?,
                        step: row.get(4)?,
                        attempt: row.get(5)?,
                        detail: detail.map(|d| {
                            serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))
                        }),
                    })
                },
            )?);
        }
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// The graph stored with the run (JSON), if the schema and the run have one.
    pub fn graph(&self, run_id: &str) -> Result<Option<String>, InspectError> {
        if self.version < V_GRAPH {
            return Ok(None);
        }
        let graph: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT graph FROM runs WHERE run_id = ?1",
                [run_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(&e))?;
        Ok(graph.flatten())
    }

    /// Every persisted state machine, by id.
    pub fn machines(&self) -> Result<Vec<Machine>, InspectError> {
        if self.version < V_MACHINES {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT machine_id, machine, state, version, created_at, updated_at FROM machines \
             ORDER BY machine_id",
            [],
            machine_of,
        )
    }

    /// The machine `id`, or [`InspectError::UnknownMachine`].
    pub fn machine(&self, id: &str) -> Result<Machine, InspectError> {
        let unknown = || InspectError::UnknownMachine {
            path: self.path.clone(),
            machine: id.to_owned(),
        };
        if self.version < V_MACHINES {
            return Err(unknown());
        }
        self.conn
            .query_row(
                "SELECT machine_id, machine, state, version, created_at, updated_at \
                 FROM machines WHERE machine_id = ?1",
                [id],
                machine_of,
            )
            .optional()
            .map_err(|e| self.err(&e))?
            .ok_or_else(unknown)
    }

    /// The transition log of machine `id`, oldest first.
    pub fn transitions(&self, id: &str) -> Result<Vec<Transition>, InspectError> {
        self.query(
            "SELECT seq, from_state, event, to_state, at FROM machine_transitions \
             WHERE machine_id = ?1 ORDER BY seq",
            [id],
            |row| {
                Ok(Transition {
                    seq: row.get(0)?,
                    from: row.get(1)?,
                    event: row.get(2)?,
                    to: row.get(3)?,
                    at: row.get(4)?,
                })
            },
        )
    }

    fn query<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, InspectError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(&e))?;
        let rows = stmt.query_map(params, map).map_err(|e| self.err(&e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&e))
    }
}

fn run_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    let status: String = row.get(2)?;
    let parked: i64 = row.get(6)?;
    Ok(Run {
        run_id: row.get(0)?,
        workflow: row.get(1)?,
        status: if status == "running" && parked != 0 {
            "parked".to_owned()
        } else {
            status
        },
        error: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

fn step_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Step> {
    Ok(Step {
        name: row.get(0)?,
        status: row.get(1)?,
        attempts: row.get(2)?,
        error: row.get(3)?,
        started_at: row.get(4)?,
        finished_at: row.get(5)?,
    })
}

fn machine_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Machine> {
    let state: String = row.get(2)?;
    Ok(Machine {
        machine_id: row.get(0)?,
        machine: row.get(1)?,
        state: serde_json::from_str(&state).unwrap_or(serde_json::Value::String(state)),
        version: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

/// A SQLite error on `path`: "not a database" is [`InspectError::NotSqlite`].
fn sqlite(path: &Path, error: &rusqlite::Error) -> InspectError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => InspectError::NotSqlite {
            path: path.to_owned(),
        },
        _ => InspectError::Sqlite {
            path: path.to_owned(),
            message: error.to_string(),
        },
    }
}

/// Why a database could not be read, each naming the file, run or machine it is about.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InspectError {
    /// The file does not exist.
    #[error("`{}`: no such file", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// SQLite cannot read the file as a database.
    #[error("`{}` is not a SQLite database", path.display())]
    NotSqlite {
        /// The file.
        path: PathBuf,
    },
    /// A SQLite database, but not one sagaflow wrote.
    #[error("`{}` is not a sagaflow database ({reason})", path.display())]
    NotSagaflow {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// Written by a newer sagaflow.
    #[error(
        "`{}` has schema version {found}, newer than this sagaflow reads (up to version {supported}): use a newer `sagaflow`",
        path.display()
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this code reads.
        supported: i64,
    },
    /// A SQLite error while reading.
    #[error("`{}`: {message}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
    /// No run with this id.
    #[error("no run `{run}` in `{}`", path.display())]
    UnknownRun {
        /// The file.
        path: PathBuf,
        /// The run id asked for.
        run: String,
    },
    /// No machine with this id.
    #[error("no state machine `{machine}` in `{}`", path.display())]
    UnknownMachine {
        /// The file.
        path: PathBuf,
        /// The machine id asked for.
        machine: String,
    },
}
