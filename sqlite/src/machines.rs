//! Persisted state machines (`fsm!`): one row per machine with its state and version, and an
//! append-only log of transitions. The state-machine runtime (`sagaflow-fsm`) encodes states
//! and decides transitions; this module only stores them.
//!
//! A machine's creation is a small transaction of its own on the writer's connection (as a
//! signal's delivery is); a transition is a write of the writer's group commit
//! (`ops::AdvanceMachine`): `UPDATE machines ... WHERE machine_id = ? AND version = ?` and,
//! only if that changed a row, the log row, committed together. A writer that read an older
//! version changes nothing and hears [`Advanced::Conflict`].

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::now_ms;
use crate::error::sqlite_error;
use sagaflow_core::runtime::error::StoreError;
pub use sagaflow_core::runtime::store::{Advanced, MachineStep, MachineTransition, StoredMachine};

mod api;

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

    use crate::SqliteStore;

    #[tokio::test]
    async fn ids_are_listed_through_the_index_not_a_scan() {
        let store = SqliteStore::in_memory().unwrap();
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
