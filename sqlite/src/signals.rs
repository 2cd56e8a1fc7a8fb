//! Signals in the database: delivered once per run and name, read by the steps that wait.
//!
//! A signal's position is its rowid. A delivery numbers its row above the largest rowid and
//! above the floor a deletion of the newest signals left (see `retention`), and only one
//! transaction writes at a time, so positions grow in commit order and never go back: a reader
//! that has seen every signal up to position `p` finds any later delivery above `p`.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::sqlite_error;
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::DeliveredSignal;

/// Keeps the signal unless one of that name was delivered to the run already; returns whether
/// this call delivered it. A run that does not exist is an error naming it.
pub(crate) fn deliver(
    conn: &Connection,
    label: &str,
    run_id: &str,
    name: &str,
    payload: &str,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let exists: Option<i64> = conn
        .query_row("SELECT 1 FROM runs WHERE run_id = ?1", [run_id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| sqlite_error(label, &e))?;
    if exists.is_none() {
        return Err(StoreError::Backend(format!(
            "database `{label}`: no run `{run_id}` to signal `{name}` to"
        )));
    }
    let inserted = conn
        .execute(
            "INSERT INTO signals (rowid, run_id, name, payload, at)
             VALUES (max(coalesce((SELECT max(rowid) FROM signals), 0),
                         coalesce((SELECT floor FROM positions WHERE name = 'signals'), 0)) + 1,
                     ?1, ?2, ?3, ?4)
             ON CONFLICT (run_id, name) DO NOTHING",
            params![run_id, name, payload, at_ms],
        )
        .map_err(|e| sqlite_error(label, &e))?;
    Ok(inserted == 1)
}

/// The payload of the signal, if it has been delivered.
pub(crate) fn read(
    conn: &Connection,
    label: &str,
    run_id: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT payload FROM signals WHERE run_id = ?1 AND name = ?2",
        [run_id, name],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| sqlite_error(label, &e))
}

/// The position of the newest signal, 0 if there is none (or the newest deleted's).
pub(crate) fn position(conn: &Connection, label: &str) -> Result<u64, StoreError> {
    conn.query_row(
        "SELECT max(coalesce((SELECT max(rowid) FROM signals), 0),
                    coalesce((SELECT floor FROM positions WHERE name = 'signals'), 0))",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(i64::cast_unsigned)
    .map_err(|e| sqlite_error(label, &e))
}

/// At most `limit` signals after position `after`, oldest first.
pub(crate) fn after(
    conn: &Connection,
    label: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<DeliveredSignal>, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT rowid, run_id, name FROM signals WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )
        .map_err(sqlite)?;
    let rows = stmt
        .query_map(
            params![
                after.cast_signed(),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(DeliveredSignal {
                    position: r.get::<_, i64>(0)?.cast_unsigned(),
                    run_id: RunId::from(r.get::<_, String>(1)?),
                    name: r.get(2)?,
                })
            },
        )
        .map_err(sqlite)?;
    rows.collect::<Result<_, _>>().map_err(sqlite)
}
