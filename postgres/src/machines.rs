//! Persisted state machines (`fsm!`): one row per machine with its state and version, and an
//! append-only log of transitions. A transition is one statement: the `UPDATE ... WHERE
//! version = $expected` and, only if it changed the row, the log row. A writer that read an
//! older version changes nothing and hears [`Advanced::Conflict`] with the version now stored.
//!
//! A creation and a transition each commit by themselves: one statement, which the server
//! commits on its own (see [`write()`]). Under the `fault-injection` feature the statement runs
//! in a transaction of its own instead, so that a test can crash the process between the
//! statement and its `COMMIT` (`BeforeCommit`) and after the `COMMIT`, before the caller hears
//! (`AfterCommit`): `tests/crash_points.rs`.

use tokio_postgres::{Client, Row};

use crate::error::pg_error;
use crate::session::{Link, Param, Session};
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::{Advanced, MachineStep, MachineTransition, StoredMachine};

fn version_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn version_param(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn machine_of(row: &Row) -> StoredMachine {
    StoredMachine {
        id: row.get(0),
        machine: row.get(1),
        state: row.get(2),
        version: version_of(row.get(3)),
        created_at: row.get(4),
        updated_at: row.get(5),
    }
}

const COLUMNS: &str = "machine_id, machine, state, version, created_at, updated_at";

pub(crate) async fn load(
    client: &Link<'_>,
    label: &str,
    id: &str,
) -> Result<Option<StoredMachine>, StoreError> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM machines WHERE machine_id = $1"),
            &[&id],
        )
        .await
        .map(|row| row.as_ref().map(machine_of))
        .map_err(|e| pg_error(label, &e))
}

/// Runs `sql`, a statement that writes, so that it commits by itself: on its own in a build
/// that ships (the server commits it, no round trip more); under the `fault-injection`
/// feature in a transaction of its own, with the crash points around its `COMMIT`.
async fn write(
    client: &mut Client,
    session: &Session,
    sql: &str,
    params: &[&dyn Param],
) -> Result<Option<Row>, tokio_postgres::Error> {
    #[cfg(not(feature = "fault-injection"))]
    {
        session.on(client).query_opt(sql, params).await
    }
    #[cfg(feature = "fault-injection")]
    {
        use sagaflow_core::fault::{Point, hit};
        let tx = session.transaction(client).await?;
        let row = tx.query_opt(sql, params).await?;
        hit(Point::BeforeCommit);
        tx.commit().await?;
        hit(Point::AfterCommit);
        Ok(row)
    }
}

pub(crate) async fn insert(
    client: &mut Client,
    session: &Session,
    label: &str,
    (id, machine, state): (&str, &str, &str),
) -> Result<(StoredMachine, bool), StoreError> {
    let sql = format!(
        "INSERT INTO machines ({COLUMNS}) \
         SELECT $1, $2, $3, 0, at, at FROM (SELECT now_ms() AS at) now \
         ON CONFLICT (machine_id) DO NOTHING RETURNING {COLUMNS}"
    );
    let inserted = write(client, session, &sql, &[&id, &machine, &state])
        .await
        .map_err(|e| pg_error(label, &e))?;
    if let Some(row) = inserted {
        return Ok((machine_of(&row), true));
    }
    // Inserted before, by this store or another: read it (a statement of its own, whose
    // snapshot sees a concurrent insert that made this one do nothing).
    match load(&session.on(client), label, id).await? {
        Some(found) => Ok((found, false)),
        None => Err(StoreError::Backend(format!(
            "database `{label}`: machine `{id}` was neither created nor found"
        ))),
    }
}

pub(crate) async fn advance(
    client: &mut Client,
    session: &Session,
    label: &str,
    id: &str,
    step: &MachineStep,
) -> Result<Advanced, StoreError> {
    let pg = |e: tokio_postgres::Error| pg_error(label, &e);
    let expected = version_param(step.expected_version);
    let applied = write(
        client,
        session,
        "WITH up AS (
             UPDATE machines SET state = $2, version = version + 1, updated_at = now_ms()
             WHERE machine_id = $1 AND version = $3 RETURNING version, updated_at
         ),
         log AS (
             INSERT INTO machine_transitions (machine_id, seq, from_state, event, to_state, at)
             SELECT $1, version, $4, $5, $6, updated_at FROM up
         )
         SELECT version, updated_at FROM up",
        &[
            &id,
            &step.state,
            &expected,
            &step.from,
            &step.event,
            &step.to,
        ],
    )
    .await
    .map_err(pg)?;
    if let Some(row) = applied {
        return Ok(Advanced::Applied {
            version: version_of(row.get(0)),
            at: row.get(1),
        });
    }
    // A statement of its own, so that it sees the transition that won.
    let found = session
        .on(client)
        .query_opt("SELECT version FROM machines WHERE machine_id = $1", &[&id])
        .await
        .map_err(pg)?;
    Ok(Advanced::Conflict {
        found: found.map(|row| version_of(row.get(0))),
    })
}

pub(crate) async fn ids(
    client: &Link<'_>,
    label: &str,
    machine: &str,
) -> Result<Vec<String>, StoreError> {
    client
        .query(
            "SELECT machine_id FROM machines WHERE machine = $1 ORDER BY machine_id",
            &[&machine],
        )
        .await
        .map(|rows| rows.iter().map(|row| row.get(0)).collect())
        .map_err(|e| pg_error(label, &e))
}

pub(crate) async fn log(
    client: &Link<'_>,
    label: &str,
    id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<MachineTransition>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    client
        .query(
            "SELECT seq, from_state, event, to_state, at FROM machine_transitions \
             WHERE machine_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&id, &version_param(after), &limit],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|row| MachineTransition {
                    seq: version_of(row.get(0)),
                    from: row.get(1),
                    event: row.get(2),
                    to: row.get(3),
                    at: row.get(4),
                })
                .collect()
        })
        .map_err(|e| pg_error(label, &e))
}
