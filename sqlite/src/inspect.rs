//! Reading a sagaflow database read-only, as tools do (the `sagaflow` command line): it may
//! be written by a running service meanwhile (WAL lets a reader see the last commit without
//! blocking the writer). An [`Inspector`] migrates nothing and takes no lease owner slot.
//!
//! The schema is read as the version found in the file says (`PRAGMA user_version`): columns
//! that later versions added are read only where they exist, and a file newer than this
//! sagaflow is refused rather than guessed at. This is the one place outside the store that
//! knows the tables, so a schema change touches this crate only.
//!
//! The records it returns, its errors and the store-neutral trait it implements
//! ([`Inspect`], async, which the command line reads every store through) live in
//! `sagaflow_core::runtime::store::inspect` and are re-exported here. The inherent methods are
//! the same reads, synchronous.
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
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use sagaflow_core::runtime::store::inspect::json_or_text;
pub use sagaflow_core::runtime::store::inspect::{
    EventRow, Inspect, InspectError, Machine, Run, Step, Transition,
};

use crate::schema::{SCHEMA_VERSION, V_COMPACT};
use sagaflow_core::runtime::store::replicas::Replicas;
use sagaflow_core::runtime::store::{QueueStanding, Queues};

/// The schema version that added the `parked` column.
const V_PARKED: i64 = 3;
/// The schema version that added the machines tables.
const V_MACHINES: i64 = 4;
/// The schema version that added `runs.graph`.
const V_GRAPH: i64 = 5;
/// The version that put runs on queues.
const V_QUEUES: i64 = 9;
/// The version that keeps a queued run's start time.
const V_STARTED: i64 = 10;
/// The version that stores a workflow's graph once, in `graphs`.
const V_GRAPHS: i64 = 12;

/// The most problems [`Inspector::integrity`] lists.
pub const INTEGRITY_PROBLEMS: u32 = 20;

/// A database file opened read-only. Its reads run on the calling thread (they are short,
/// and WAL keeps a writer from blocking them); the connection is behind a lock so that the
/// inspector can be shared, as [`Inspect`] asks.
pub struct Inspector {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The path as errors name it.
    database: String,
    version: i64,
}

impl Inspector {
    /// Opens `path` read-only and checks that it is a sagaflow database this code can read.
    pub fn open(path: &Path) -> Result<Inspector, InspectError> {
        let database = path.display().to_string();
        if !path.exists() {
            return Err(InspectError::Missing { database });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite(&database, &e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| sqlite(&database, &e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| sqlite(&database, &e))?;
        if !crate::schema::readable(&conn, version) {
            return Err(InspectError::TooNew {
                database,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name IN ('runs', 'steps', 'events')",
                [],
                |row| row.get(0),
            )
            .map_err(|e| sqlite(&database, &e))?;
        if version < 1 || tables != 3 {
            return Err(InspectError::NotSagaflow {
                database,
                reason: if version < 1 {
                    format!("schema version {version}, no sagaflow tables")
                } else {
                    format!("schema version {version}, but no sagaflow tables")
                },
            });
        }
        Ok(Inspector {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            database,
            version,
        })
    }

    fn err(&self, error: &rusqlite::Error) -> InspectError {
        sqlite(&self.database, error)
    }

    /// The connection; a read that panicked left nothing half-done behind it (reads only).
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `PRAGMA integrity_check` finds, at most [`INTEGRITY_PROBLEMS`] problems: `["ok"]`
    /// for a sound file. A file too damaged for the pragma to walk gives SQLite's error as its
    /// one problem.
    pub fn integrity(&self) -> Result<Vec<String>, InspectError> {
        let checked = self
            .conn()
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
        let sql = format!(
            "SELECT run_id, workflow, status, error, created_at, updated_at, {} \
             FROM runs ORDER BY created_at, rowid",
            self.parked()
        );
        self.query(&sql, [], run_of)
    }

    /// `parked` where the schema has it.
    fn parked(&self) -> &'static str {
        if self.version >= V_PARKED {
            "parked"
        } else {
            "0"
        }
    }

    /// The run `run_id`, or [`InspectError::UnknownRun`].
    pub fn run(&self, run_id: &str) -> Result<Run, InspectError> {
        let sql = format!(
            "SELECT run_id, workflow, status, error, created_at, updated_at, {} \
             FROM runs WHERE run_id = ?1",
            self.parked()
        );
        self.conn()
            .query_row(&sql, [run_id], run_of)
            .optional()
            .map_err(|e| self.err(&e))?
            .ok_or_else(|| InspectError::UnknownRun {
                database: self.database.clone(),
                run: run_id.to_owned(),
            })
    }

    /// The steps of `run_id`, in the order they first started.
    pub fn steps(&self, run_id: &str) -> Result<Vec<Step>, InspectError> {
        self.query(
            &format!(
                "SELECT name, status, attempts, error, started_at, finished_at FROM steps \
                 WHERE run_id = ?1 ORDER BY {}",
                self.step_order()
            ),
            [run_id],
            step_of,
        )
    }

    /// Every step of every run, with its run's id.
    pub fn all_steps(&self) -> Result<Vec<(String, Step)>, InspectError> {
        self.query(
            &format!(
                "SELECT name, status, attempts, error, started_at, finished_at, run_id FROM steps \
                 ORDER BY {}",
                self.step_order()
            ),
            [],
            |row| Ok((row.get(6)?, step_of(row)?)),
        )
    }

    /// The ids of the runs that have a step named `step`, in the order the steps started.
    pub fn runs_with_step(&self, step: &str) -> Result<Vec<String>, InspectError> {
        self.query(
            &format!(
                "SELECT run_id FROM steps WHERE name = ?1 ORDER BY {}",
                self.step_order()
            ),
            [step],
            |row| row.get(0),
        )
    }

    /// The payload of the signal `name` delivered to `run_id`, if any.
    pub fn signal(&self, run_id: &str, name: &str) -> Result<Option<String>, InspectError> {
        if self.version < 2 {
            return Ok(None);
        }
        self.conn()
            .query_row(
                "SELECT payload FROM signals WHERE run_id = ?1 AND name = ?2",
                [run_id, name],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(&e))
    }

    /// Events of the runs `run_ids` after `after`, in `seq` order. From version 13 a row may
    /// log the next step's start too (`next_step`), numbered one past it: read as two events,
    /// and the row at `after` read for its start.
    pub fn events(&self, run_ids: &[String], after: i64) -> Result<Vec<EventRow>, InspectError> {
        let sql = if self.version >= V_COMPACT {
            "SELECT seq, run_id, at, kind, step, attempt, detail, next_step FROM events \
             WHERE run_id = ?1 AND seq >= ?2 ORDER BY seq"
        } else {
            "SELECT seq, run_id, at, kind, step, attempt, detail, NULL FROM events \
             WHERE run_id = ?1 AND seq > ?2 ORDER BY seq"
        };
        let mut events = Vec::new();
        for run_id in run_ids {
            let rows = self.query(sql, params![run_id, after], |row| {
                Ok((
                    EventRow {
                        seq: row.get(0)?,
                        run_id: row.get(1)?,
                        at: row.get(2)?,
                        kind: row.get(3)?,
                        step: row.get(4)?,
                        attempt: row.get(5)?,
                        detail: row.get::<_, Option<String>>(6)?.map(json_or_text),
                    },
                    row.get::<_, Option<String>>(7)?,
                ))
            })?;
            for (event, next_step) in rows {
                let start = next_step.map(|next| EventRow::started_in(&event, next));
                if event.seq > after {
                    events.push(event);
                }
                events.extend(start);
            }
        }
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// The graph stored for the run (JSON), if the schema and the run have one: in the run's
    /// row before schema 12, for its workflow and fingerprint in `graphs` since.
    pub fn graph(&self, run_id: &str) -> Result<Option<String>, InspectError> {
        if self.version < V_GRAPH {
            return Ok(None);
        }
        let graph: Option<Option<String>> = self
            .conn()
            .query_row(
                if self.version >= V_GRAPHS {
                    "SELECT COALESCE(r.graph, g.graph) FROM runs r \
                     LEFT JOIN graphs g ON g.workflow = r.workflow \
                         AND g.fingerprint = r.graph_fingerprint \
                     WHERE r.run_id = ?1"
                } else {
                    "SELECT graph FROM runs WHERE run_id = ?1"
                },
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
            database: self.database.clone(),
            machine: id.to_owned(),
        };
        if self.version < V_MACHINES {
            return Err(unknown());
        }
        self.conn()
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
        if self.version < V_MACHINES {
            return Ok(Vec::new());
        }
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

    /// What orders steps by their first start: the table's rowid before schema 11, the
    /// view's `first_seq` since (`steps` became a view of the events).
    fn step_order(&self) -> &'static str {
        if self.version < 11 {
            "rowid"
        } else {
            "first_seq"
        }
    }

    fn query<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, InspectError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql).map_err(|e| self.err(&e))?;
        let rows = stmt.query_map(params, map).map_err(|e| self.err(&e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&e))
    }
}

/// The store-neutral reads, as the inherent ones above: each runs at once on the calling
/// thread. [`Inspect::check`] is `PRAGMA integrity_check`, its `ok` an empty list.
#[async_trait::async_trait]
impl Inspect for Inspector {
    fn database(&self) -> &str {
        &self.database
    }

    async fn runs(&self) -> Result<Vec<Run>, InspectError> {
        Inspector::runs(self)
    }

    async fn run(&self, run_id: &str) -> Result<Run, InspectError> {
        Inspector::run(self, run_id)
    }

    async fn steps(&self, run_id: &str) -> Result<Vec<Step>, InspectError> {
        Inspector::steps(self, run_id)
    }

    async fn all_steps(&self) -> Result<Vec<(String, Step)>, InspectError> {
        Inspector::all_steps(self)
    }

    async fn runs_with_step(&self, step: &str) -> Result<Vec<String>, InspectError> {
        Inspector::runs_with_step(self, step)
    }

    async fn signal(&self, run_id: &str, name: &str) -> Result<Option<String>, InspectError> {
        Inspector::signal(self, run_id, name)
    }

    async fn events(&self, run_ids: &[String], after: i64) -> Result<Vec<EventRow>, InspectError> {
        Inspector::events(self, run_ids, after)
    }

    async fn graph(&self, run_id: &str) -> Result<Option<String>, InspectError> {
        Inspector::graph(self, run_id)
    }

    async fn machines(&self) -> Result<Vec<Machine>, InspectError> {
        Inspector::machines(self)
    }

    async fn machine(&self, id: &str) -> Result<Machine, InspectError> {
        Inspector::machine(self, id)
    }

    async fn transitions(&self, id: &str) -> Result<Vec<Transition>, InspectError> {
        Inspector::transitions(self, id)
    }

    async fn replicas(&self) -> Result<Replicas, InspectError> {
        // A file older than the lease columns has no leases to show.
        if self.version < V_PARKED {
            return Ok(Replicas {
                now: crate::clock::now_ms(),
                replicas: Vec::new(),
                runs: Vec::new(),
            });
        }
        let (replicas, runs) = crate::replicas::read(&self.conn()).map_err(|e| self.err(&e))?;
        Ok(Replicas {
            now: crate::clock::now_ms(),
            replicas,
            runs,
        })
    }

    async fn queues(&self) -> Result<Queues, InspectError> {
        let now = crate::clock::now_ms();
        if self.version < V_QUEUES {
            return Ok(Queues {
                now,
                queues: Vec::new(),
            });
        }
        let started = if self.version >= V_STARTED {
            "started_at"
        } else {
            "NULL"
        };
        let sql = format!(
            "SELECT queue, \
                 count(*) FILTER (WHERE status = 'running' AND parked = 0 \
                     AND (owner IS NULL OR lease_expires IS NULL OR lease_expires <= ?1)), \
                 count(*) FILTER (WHERE status = 'running' AND parked = 0 \
                     AND owner IS NOT NULL AND lease_expires > ?1), \
                 count(*) FILTER (WHERE status = 'running' AND parked = 1), \
                 min(created_at) FILTER (WHERE status = 'running' AND parked = 0 \
                     AND (owner IS NULL OR lease_expires IS NULL OR lease_expires <= ?1)), \
                 count(*) FILTER (WHERE {started} > ?1 - 60000) \
             FROM runs WHERE queue IS NOT NULL AND (status = 'running' OR {started} > ?1 - 60000) \
             GROUP BY queue ORDER BY queue"
        );
        let conn = self.conn();
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let queues = conn
            .prepare(&sql)
            .and_then(|mut stmt| {
                stmt.query_map([now], |row| {
                    Ok(QueueStanding {
                        queue: row.get(0)?,
                        waiting: count(row.get(1)?),
                        running: count(row.get(2)?),
                        parked: count(row.get(3)?),
                        oldest_waiting_at: row.get(4)?,
                        started_last_minute: count(row.get(5)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.err(&e))?;
        Ok(Queues { now, queues })
    }

    async fn check(&self) -> Result<Vec<String>, InspectError> {
        let problems = self.integrity()?;
        Ok(if problems == ["ok"] {
            Vec::new()
        } else {
            problems
        })
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
    Ok(Machine {
        machine_id: row.get(0)?,
        machine: row.get(1)?,
        state: json_or_text(row.get(2)?),
        version: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

/// A SQLite error on `database`: "not a database" is [`InspectError::NotADatabase`].
fn sqlite(database: &str, error: &rusqlite::Error) -> InspectError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => InspectError::NotADatabase {
            database: database.to_owned(),
            store: "SQLite",
        },
        _ => InspectError::Backend {
            database: database.to_owned(),
            message: error.to_string(),
        },
    }
}
