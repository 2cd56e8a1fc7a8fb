//! Reading a sagaflow database, read-only: it may be written by a running service meanwhile
//! (WAL lets a reader see the last commit without blocking the writer).
//!
//! The schema is read as the version found in the file says (`PRAGMA user_version`): columns
//! that later versions added are read only where they exist, and a file newer than this
//! sagaflow is refused rather than guessed at.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use sagaflow_sqlite::SCHEMA_VERSION;
use serde::Serialize;

use crate::error::CliError;

/// The schema version that added the `parked` column.
const V_PARKED: i64 = 3;
/// The schema version that added the machines tables.
const V_MACHINES: i64 = 4;
/// The schema version that added `runs.graph`.
const V_GRAPH: i64 = 5;
/// The most problems `sagaflow check` lists.
const INTEGRITY_PROBLEMS: u32 = 20;

/// A database file opened read-only.
pub(crate) struct Db {
    conn: Connection,
    path: PathBuf,
    version: i64,
}

/// A run as listed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub(crate) run_id: String,
    pub(crate) workflow: String,
    /// `running`, `completed`, `failed`, `cancelled` or `parked`.
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl Run {
    pub(crate) fn finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }

    /// How long it ran (until now if it has not finished).
    pub(crate) fn duration_ms(&self, now: i64) -> i64 {
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
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) attempts: u32,
    pub(crate) error: Option<String>,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
}

impl Step {
    pub(crate) fn duration_ms(&self) -> Option<i64> {
        Some((self.finished_at? - self.started_at?).max(0))
    }
}

/// One row of the event log.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventRow {
    pub(crate) seq: i64,
    pub(crate) run_id: String,
    pub(crate) at: i64,
    pub(crate) kind: String,
    pub(crate) step: Option<String>,
    pub(crate) attempt: Option<i64>,
    pub(crate) detail: Option<serde_json::Value>,
}

/// A persisted state machine.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) machine_id: String,
    pub(crate) machine: String,
    pub(crate) state: serde_json::Value,
    pub(crate) version: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// One row of a machine's transition log.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Transition {
    pub(crate) seq: i64,
    pub(crate) from: String,
    pub(crate) event: String,
    pub(crate) to: String,
    pub(crate) at: i64,
}

impl Db {
    /// Opens `path` read-only and checks that it is a sagaflow database this code can read.
    pub(crate) fn open(path: &Path) -> Result<Db, CliError> {
        if !path.exists() {
            return Err(CliError::Missing {
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
            return Err(CliError::TooNew {
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
            return Err(CliError::NotSagaflow {
                path: path.to_owned(),
                reason: if version < 1 {
                    format!("schema version {version}, no sagaflow tables")
                } else {
                    format!("schema version {version}, but no sagaflow tables")
                },
            });
        }
        Ok(Db {
            conn,
            path: path.to_owned(),
            version,
        })
    }

    fn err(&self, error: &rusqlite::Error) -> CliError {
        sqlite(&self.path, error)
    }

    /// What `PRAGMA integrity_check` finds, at most [`INTEGRITY_PROBLEMS`] problems: `["ok"]`
    /// for a sound file. A file too damaged for the pragma to walk gives SQLite's error as its
    /// one problem.
    pub(crate) fn integrity(&self) -> Result<Vec<String>, CliError> {
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
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Every run, oldest first.
    pub(crate) fn runs(&self) -> Result<Vec<Run>, CliError> {
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

    /// The run `run_id`, or [`CliError::UnknownRun`].
    pub(crate) fn run(&self, run_id: &str) -> Result<Run, CliError> {
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
            .ok_or_else(|| CliError::UnknownRun {
                path: self.path.clone(),
                run: run_id.to_owned(),
            })
    }

    /// The compensation rounds of saga run `run_id` (`run_id~undo1`, `~undo2`, ...), oldest first.
    pub(crate) fn rounds(&self, run_id: &str) -> Result<Vec<Run>, CliError> {
        let mut rounds = Vec::new();
        for number in 1.. {
            match self.run(&format!("{run_id}~undo{number}")) {
                Ok(run) => rounds.push(run),
                Err(CliError::UnknownRun { .. }) => break,
                Err(other) => return Err(other),
            }
        }
        Ok(rounds)
    }

    /// The steps of `run_id`, in the order they first started.
    pub(crate) fn steps(&self, run_id: &str) -> Result<Vec<Step>, CliError> {
        self.query(
            "SELECT name, status, attempts, error, started_at, finished_at FROM steps \
             WHERE run_id = ?1 ORDER BY rowid",
            [run_id],
            step_of,
        )
    }

    /// Every step of every run, with its run's id.
    pub(crate) fn all_steps(&self) -> Result<Vec<(String, Step)>, CliError> {
        self.query(
            "SELECT name, status, attempts, error, started_at, finished_at, run_id FROM steps \
             ORDER BY rowid",
            [],
            |row| Ok((row.get(6)?, step_of(row)?)),
        )
    }

    /// The runs whose last round ran the step `~abandoned`: sagas an operator gave up on.
    pub(crate) fn abandoned_rounds(&self) -> Result<HashSet<String>, CliError> {
        let ids: Vec<String> = self.query(
            "SELECT run_id FROM steps WHERE name = '~abandoned'",
            [],
            |row| row.get(0),
        )?;
        Ok(ids.into_iter().collect())
    }

    /// The payload of the signal `name` delivered to `run_id`, if any.
    pub(crate) fn signal(&self, run_id: &str, name: &str) -> Result<Option<String>, CliError> {
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
    pub(crate) fn events(&self, run_ids: &[String], after: i64) -> Result<Vec<EventRow>, CliError> {
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
    pub(crate) fn graph(&self, run_id: &str) -> Result<Option<String>, CliError> {
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
    pub(crate) fn machines(&self) -> Result<Vec<Machine>, CliError> {
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

    /// The machine `id`, or [`CliError::UnknownMachine`].
    pub(crate) fn machine(&self, id: &str) -> Result<Machine, CliError> {
        let unknown = || CliError::UnknownMachine {
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
    pub(crate) fn transitions(&self, id: &str) -> Result<Vec<Transition>, CliError> {
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
    ) -> Result<Vec<T>, CliError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(&e))?;
        let rows = stmt.query_map(params, map).map_err(|e| self.err(&e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&e))
    }
}

/// The runs by id, for looking rounds up.
pub(crate) fn by_id(runs: &[Run]) -> HashMap<&str, &Run> {
    runs.iter().map(|r| (r.run_id.as_str(), r)).collect()
}

/// Whether `run` is a saga's compensation round.
pub(crate) fn is_round(run: &Run) -> bool {
    run.workflow.ends_with("~compensate") && run.run_id.contains("~undo")
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

/// A SQLite error on `path`: "not a database" is [`CliError::NotSqlite`].
fn sqlite(path: &Path, error: &rusqlite::Error) -> CliError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => CliError::NotSqlite {
            path: path.to_owned(),
        },
        _ => CliError::Sqlite {
            path: path.to_owned(),
            message: error.to_string(),
        },
    }
}
