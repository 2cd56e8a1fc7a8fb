//! Persisted state machines (`fsm!`): one row per machine with its state and version, and an
//! append-only log of transitions. The state-machine runtime (`sagaflow-fsm`) encodes states
//! and decides transitions; this module only stores them.
//!
//! Every write is one small transaction of its own on the writer's connection (as signals
//! are): a transition is `UPDATE machines ... WHERE machine_id = ? AND version = ?` and, only
//! if that changed a row, the log row, committed together. A writer that read an older
//! version changes nothing and hears [`Advanced::Conflict`].

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::now_ms;
use crate::error::sqlite_error;
use sagaflow_core::runtime::error::StoreError;

mod api;

/// A machine as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMachine {
    /// The machine's id, unique in the database.
    pub id: String,
    /// The machine's type (the name given to `fsm!`).
    pub machine: String,
    /// The state, as the runtime encoded it (JSON).
    pub state: String,
    /// Bumped by every transition; 0 when created.
    pub version: u64,
    /// When it was created, unix milliseconds.
    pub created_at: i64,
    /// When it last changed, unix milliseconds.
    pub updated_at: i64,
}

/// One row of a machine's transition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineTransition {
    /// The version the transition produced (1 for the first).
    pub seq: u64,
    /// The state it left.
    pub from: String,
    /// The event that caused it.
    pub event: String,
    /// The state it entered.
    pub to: String,
    /// When it was committed, unix milliseconds.
    pub at: i64,
}

/// What [`SqliteStore::advance_machine`](crate::SqliteStore::advance_machine) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// The state and the log row were committed; the machine is at `version`.
    Applied {
        /// The new version.
        version: u64,
        /// The commit's time, unix milliseconds.
        at: i64,
    },
    /// Nothing was written: the machine is not at the version the caller read. `found` is the
    /// version it is at, `None` if it does not exist.
    Conflict {
        /// The stored version, if the machine exists.
        found: Option<u64>,
    },
}

/// A transition to store: the version it was decided on, the new state and the log row's names.
#[derive(Debug, Clone)]
pub struct MachineStep {
    /// The version the caller read; the write applies only if the machine is still there.
    pub expected_version: u64,
    /// The new state (JSON).
    pub state: String,
    /// The state left, for the log.
    pub from: String,
    /// The event, for the log.
    pub event: String,
    /// The state entered, for the log.
    pub to: String,
}

fn version_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn version_param(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn load(conn: &Connection, label: &str, id: &str) -> Result<Option<StoredMachine>, StoreError> {
    conn.query_row(
        "SELECT machine_id, machine, state, version, created_at, updated_at
         FROM machines WHERE machine_id = ?1",
        [id],
        |r| {
            Ok(StoredMachine {
                id: r.get(0)?,
                machine: r.get(1)?,
                state: r.get(2)?,
                version: version_of(r.get(3)?),
                created_at: r.get(4)?,
                updated_at: r.get(5)?,
            })
        },
    )
    .optional()
    .map_err(|e| sqlite_error(label, &e))
}

fn insert(
    conn: &Connection,
    label: &str,
    id: &str,
    machine: &str,
    state: &str,
) -> Result<bool, StoreError> {
    let at = now_ms();
    let inserted = conn
        .execute(
            "INSERT INTO machines (machine_id, machine, state, version, created_at, updated_at)
             VALUES (?1, ?2, ?3, 0, ?4, ?4)
             ON CONFLICT (machine_id) DO NOTHING",
            params![id, machine, state, at],
        )
        .map_err(|e| sqlite_error(label, &e))?;
    Ok(inserted == 1)
}

pub(crate) fn advance(
    conn: &Connection,
    label: &str,
    id: &str,
    step: &MachineStep,
) -> Result<Advanced, StoreError> {
    let at = now_ms();
    let next = step.expected_version.saturating_add(1);
    let changed = conn
        .prepare_cached(
            "UPDATE machines SET state = ?1, version = ?2, updated_at = ?3
             WHERE machine_id = ?4 AND version = ?5",
        )
        .and_then(|mut s| {
            s.execute(params![
                step.state,
                version_param(next),
                at,
                id,
                version_param(step.expected_version)
            ])
        })
        .map_err(|e| sqlite_error(label, &e))?;
    if changed == 0 {
        let found = conn
            .query_row(
                "SELECT version FROM machines WHERE machine_id = ?1",
                [id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(|e| sqlite_error(label, &e))?;
        return Ok(Advanced::Conflict {
            found: found.map(version_of),
        });
    }
    conn.prepare_cached(
        "INSERT INTO machine_transitions (machine_id, seq, from_state, event, to_state, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            version_param(next),
            step.from,
            step.event,
            step.to,
            at
        ])
    })
    .map_err(|e| sqlite_error(label, &e))?;
    Ok(Advanced::Applied { version: next, at })
}

fn log(
    conn: &Connection,
    label: &str,
    id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<MachineTransition>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, from_state, event, to_state, at FROM machine_transitions
             WHERE machine_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )
        .map_err(|e| sqlite_error(label, &e))?;
    let rows = stmt
        .query_map(params![id, version_param(after), limit], |r| {
            Ok(MachineTransition {
                seq: version_of(r.get(0)?),
                from: r.get(1)?,
                event: r.get(2)?,
                to: r.get(3)?,
                at: r.get(4)?,
            })
        })
        .map_err(|e| sqlite_error(label, &e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlite_error(label, &e))
}

fn ids(conn: &Connection, label: &str, machine: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT machine_id FROM machines WHERE machine = ?1 ORDER BY machine_id")
        .map_err(|e| sqlite_error(label, &e))?;
    let rows = stmt
        .query_map([machine], |r| r.get(0))
        .map_err(|e| sqlite_error(label, &e))?;
    rows.collect::<Result<Vec<String>, _>>()
        .map_err(|e| sqlite_error(label, &e))
}

/// Runs `body` in a `BEGIN IMMEDIATE` transaction: committed if it succeeds, rolled back if not.
fn in_transaction<T>(
    conn: &Connection,
    label: &str,
    body: impl FnOnce(&Connection, &str) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| sqlite_error(label, &e))?;
    let result = body(conn, label);
    match &result {
        Ok(_) => {
            #[cfg(feature = "fault-injection")]
            sagaflow_core::fault::hit(sagaflow_core::fault::Point::BeforeCommit);
            conn.execute_batch("COMMIT")
                .map_err(|e| sqlite_error(label, &e))?;
            #[cfg(feature = "fault-injection")]
            sagaflow_core::fault::hit(sagaflow_core::fault::Point::AfterCommit);
        }
        Err(_) => {
            if !conn.is_autocommit() {
                // The error at hand says what failed; a failed rollback adds nothing.
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

    use super::*;
    use crate::SqliteStore;

    fn step(expected_version: u64, to: &str) -> MachineStep {
        MachineStep {
            expected_version,
            state: format!("\"{to}\""),
            from: "A".to_owned(),
            event: "E".to_owned(),
            to: to.to_owned(),
        }
    }

    #[tokio::test]
    async fn an_insert_is_idempotent_and_a_transition_is_fenced_on_the_version() {
        let store = SqliteStore::in_memory().unwrap();
        let (first, created) = store.insert_machine("m", "M", "\"A\"").await.unwrap();
        assert!(created);
        assert_eq!((first.version, first.state.as_str()), (0, "\"A\""));
        let (again, created) = store.insert_machine("m", "M", "\"Z\"").await.unwrap();
        assert!(!created);
        assert_eq!(again.state, "\"A\"", "the first insert wins");

        let applied = store.advance_machine("m", step(0, "B")).await.unwrap();
        assert!(matches!(applied, Advanced::Applied { version: 1, .. }));
        let stale = store.advance_machine("m", step(0, "C")).await.unwrap();
        assert_eq!(stale, Advanced::Conflict { found: Some(1) });
        let missing = store.advance_machine("nope", step(0, "B")).await.unwrap();
        assert_eq!(missing, Advanced::Conflict { found: None });

        let stored = store.load_machine("m").await.unwrap().unwrap();
        assert_eq!((stored.version, stored.state.as_str()), (1, "\"B\""));
        let log = store.machine_log("m", 0, 10).await.unwrap();
        assert_eq!(log.len(), 1, "the refused write left no log row");
        assert_eq!((log[0].seq, log[0].to.as_str()), (1, "B"));
        assert!(store.load_machine("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_log_pages_in_order() {
        let store = SqliteStore::in_memory().unwrap();
        store.insert_machine("m", "M", "\"A\"").await.unwrap();
        for v in 0..5 {
            store.advance_machine("m", step(v, "B")).await.unwrap();
        }
        let first = store.machine_log("m", 0, 2).await.unwrap();
        let rest = store.machine_log("m", 2, 10).await.unwrap();
        let seqs: Vec<u64> = first.iter().chain(&rest).map(|t| t.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert!(store.machine_log("m", 5, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn ids_are_listed_by_type() {
        let store = SqliteStore::in_memory().unwrap();
        for (id, machine) in [("b", "M"), ("a", "M"), ("c", "Other")] {
            store.insert_machine(id, machine, "\"A\"").await.unwrap();
        }
        assert_eq!(store.machine_ids("M").await.unwrap(), ["a", "b"]);
        assert_eq!(store.machine_ids("Other").await.unwrap(), ["c"]);
        assert!(store.machine_ids("None").await.unwrap().is_empty());
        // Through the index, not a scan of every machine.
        let plan = store
            .read(|conn, _| {
                let mut stmt = conn
                    .prepare(
                        "EXPLAIN QUERY PLAN SELECT machine_id FROM machines WHERE machine = ?1 \
                         ORDER BY machine_id",
                    )
                    .unwrap();
                let rows = stmt.query_map(["M"], |r| r.get::<_, String>(3)).unwrap();
                Ok(rows.collect::<Result<Vec<_>, _>>().unwrap().join("; "))
            })
            .await
            .unwrap();
        assert!(plan.contains("INDEX machines_by_type"), "{plan}");
    }
}
