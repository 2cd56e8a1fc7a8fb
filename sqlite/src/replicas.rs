//! The replicas' heartbeats (schema version 7's `replicas`), and what tools read of them.

use rusqlite::{Connection, OptionalExtension};

use crate::clock::now_ms;
use crate::error::sqlite_error;
use sagaflow_core::runtime::KnownGraph;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::replicas::{
    Graph, HeldRun, Replica, ServedQueue, forget_after_ms,
};

/// Says that `owner` lives, on this host and process, running sagaflow's version and the
/// graphs `known`. A new process under an owner id starts its time afresh. The replicas not
/// heard from for `FORGET_REPLICA_AFTER` go first.
pub(crate) fn heartbeat(
    conn: &Connection,
    label: &str,
    owner: &str,
    known: &[KnownGraph],
    queues: &[ServedQueue],
) -> Result<(), StoreError> {
    let graphs = Graph::json_of(known);
    let queues = ServedQueue::json_of(queues);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let now = now_ms();
    // One commit for both.
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| sqlite_error(label, &e))?;
    tx.execute(
        "DELETE FROM replicas WHERE heartbeat_at < ?1 AND owner <> ?2",
        rusqlite::params![now.saturating_sub(forget_after_ms()), owner],
    )
    .map_err(|e| sqlite_error(label, &e))?;
    tx.execute(
        "INSERT INTO replicas (owner, host, pid, version, started_at, heartbeat_at, graphs, \
             queues) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7) \
         ON CONFLICT (owner) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
             version = excluded.version, heartbeat_at = excluded.heartbeat_at, \
             graphs = excluded.graphs, queues = excluded.queues, \
             started_at = CASE WHEN replicas.host = excluded.host \
                                AND replicas.pid = excluded.pid \
                           THEN replicas.started_at ELSE excluded.started_at END",
        rusqlite::params![
            owner,
            host,
            i64::from(std::process::id()),
            env!("CARGO_PKG_VERSION"),
            now,
            graphs,
            queues
        ],
    )
    .map_err(|e| sqlite_error(label, &e))?;
    tx.commit().map_err(|e| sqlite_error(label, &e))
}

/// Every replica heard from (none in a file without the table), and every unfinished run
/// with its lease.
pub(crate) fn read(conn: &Connection) -> rusqlite::Result<(Vec<Replica>, Vec<HeldRun>)> {
    let recorded = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'replicas'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    // The queues, if the column is there (schema version 10).
    let with_queues = recorded
        && conn
            .query_row(
                "SELECT 1 FROM pragma_table_info('replicas') WHERE name = 'queues'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
    let replicas = if recorded {
        let mut stmt = conn.prepare(if with_queues {
            "SELECT owner, host, pid, version, started_at, heartbeat_at, graphs, queues \
             FROM replicas ORDER BY owner"
        } else {
            "SELECT owner, host, pid, version, started_at, heartbeat_at, graphs, NULL \
             FROM replicas ORDER BY owner"
        })?;
        stmt.query_map([], |row| {
            Ok(Replica {
                owner: row.get(0)?,
                host: row.get(1)?,
                pid: u32::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                version: row.get(3)?,
                started_at: row.get(4)?,
                heartbeat_at: row.get(5)?,
                graphs: Graph::from_json(&row.get::<_, String>(6)?),
                queues: ServedQueue::from_json(row.get::<_, Option<String>>(7)?.as_deref()),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let mut stmt = conn.prepare(
        "SELECT run_id, workflow, graph_fingerprint, owner, lease_expires, parked FROM runs \
         WHERE status = 'running' ORDER BY created_at, rowid",
    )?;
    let runs = stmt
        .query_map([], |row| {
            Ok(HeldRun {
                run_id: row.get(0)?,
                workflow: row.get(1)?,
                fingerprint: row.get::<_, i64>(2)?.cast_unsigned(),
                owner: row.get(3)?,
                lease_expires: row.get(4)?,
                parked: row.get::<_, i64>(5)? != 0,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((replicas, runs))
}
