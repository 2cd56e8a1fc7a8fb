//! The replicas' heartbeats (schema version 3's `replicas`), and what tools read of them.

use tokio_postgres::Client;

use crate::session::{Link, Session};
use sagaflow_core::runtime::KnownGraph;
use sagaflow_core::runtime::store::replicas::{
    Graph, HeldRun, Replica, ServedQueue, forget_after_ms,
};

/// Says that `owner` lives, on this host and process, running sagaflow's version and the
/// graphs `known` (by the server's clock). A new process under an owner id starts its time
/// afresh. The replicas not heard from for `FORGET_REPLICA_AFTER` go in the same statement.
pub(crate) async fn heartbeat(
    client: &Client,
    session: &Session,
    owner: &str,
    known: &[KnownGraph],
    queues: &[ServedQueue],
) -> Result<(), tokio_postgres::Error> {
    let graphs = Graph::json_of(known);
    let queues = ServedQueue::json_of(queues);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let pid = i64::from(std::process::id());
    session
        .on(client)
        .execute(
            "WITH forgotten AS (DELETE FROM replicas WHERE heartbeat_at < now_ms() - $6 \
                 AND owner <> $1) \
             INSERT INTO replicas (owner, host, pid, version, started_at, heartbeat_at, graphs, \
                 queues) \
             SELECT $1, $2, $3, $4, at, at, $5, $7 FROM (SELECT now_ms() AS at) now \
             ON CONFLICT (owner) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
                 version = excluded.version, heartbeat_at = excluded.heartbeat_at, \
                 graphs = excluded.graphs, queues = excluded.queues, \
                 started_at = CASE WHEN replicas.host = excluded.host \
                                    AND replicas.pid = excluded.pid \
                               THEN replicas.started_at ELSE excluded.started_at END",
            &[
                &owner,
                &host,
                &pid,
                &env!("CARGO_PKG_VERSION"),
                &graphs,
                &forget_after_ms(),
                &queues,
            ],
        )
        .await
        .map(|_| ())
}

/// The server's time, every replica heard from (none before schema version 3), and every
/// unfinished run with its lease.
pub(crate) async fn read(
    link: Link<'_>,
) -> Result<(i64, Vec<Replica>, Vec<HeldRun>), tokio_postgres::Error> {
    let now: i64 = link
        .query_one("SELECT now_ms()", &[])
        .await
        .map(|row| row.get(0))?;
    let recorded: bool = link
        .query_one("SELECT to_regclass('replicas') IS NOT NULL", &[])
        .await?
        .get(0);
    let replicas = if recorded {
        link.query(
            // The queues by name, if the column is there (schema version 8).
            "SELECT owner, host, pid, version, started_at, heartbeat_at, graphs, \
             to_jsonb(r) ->> 'queues' FROM replicas r ORDER BY owner",
            &[],
        )
        .await?
        .iter()
        .map(|row| Replica {
            owner: row.get(0),
            host: row.get(1),
            pid: u32::try_from(row.get::<_, i64>(2)).unwrap_or(0),
            version: row.get(3),
            started_at: row.get(4),
            heartbeat_at: row.get(5),
            graphs: Graph::from_json(row.get::<_, &str>(6)),
            queues: ServedQueue::from_json(row.get::<_, Option<&str>>(7)),
        })
        .collect()
    } else {
        Vec::new()
    };
    let runs = link
        .query(
            "SELECT run_id, workflow, graph_fingerprint, owner, lease_expires, parked FROM runs \
             WHERE status = 'running' ORDER BY created_at, created_seq",
            &[],
        )
        .await?
        .iter()
        .map(|row| HeldRun {
            run_id: row.get(0),
            workflow: row.get(1),
            fingerprint: row.get::<_, i64>(2).cast_unsigned(),
            owner: row.get(3),
            lease_expires: row.get(4),
            parked: row.get(5),
        })
        .collect();
    Ok((now, replicas, runs))
}
