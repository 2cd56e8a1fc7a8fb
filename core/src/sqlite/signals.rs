//! Signals in the database: delivered once per run and name, read by the steps that wait.

use rusqlite::{Connection, OptionalExtension, params};

use crate::runtime::error::StoreError;
use crate::sqlite::rows::sqlite_error;

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
            "INSERT INTO signals (run_id, name, payload, at) VALUES (?1, ?2, ?3, ?4)
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
