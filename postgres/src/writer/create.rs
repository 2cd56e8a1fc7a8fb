//! Runs created: what a creation writes, and the one statement that creates every run of a
//! batch (see [`CREATE_SQL`](super::sql::CREATE_SQL); a run alone, [`CREATE_ONE_SQL`](super::sql::CREATE_ONE_SQL)).

use tokio_postgres::{Client, Row};

use super::graphs::StoredGraphs;
use crate::session::Kept;
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;

/// A run to create, leased to `owner` with token 1; or, with no owner, waiting on `queue`
/// at `priority` under no lease.
#[derive(Debug)]
pub(crate) struct CreateRow {
    pub(crate) run_id: RunId,
    pub(crate) workflow: String,
    pub(crate) graph_fingerprint: i64,
    pub(crate) input: String,
    pub(crate) graph: Option<String>,
    pub(crate) owner: Option<String>,
    pub(crate) lease_ms: Option<i64>,
    pub(crate) queue: Option<String>,
    pub(crate) priority: i32,
    pub(crate) key: Option<String>,
    /// The channel to notify once the run is committed, if one is listened to: a run put on
    /// a queue wakes the engines serving it (see `notices`), with its creation's commit.
    pub(crate) notify: Option<String>,
    /// The step the run begins with, whose start (attempt 1) is logged with a new run's
    /// creation (`NewRun::first_step`; never for a run put on a queue).
    pub(crate) first: Option<String>,
}

impl CreateRow {
    /// The creation of `run`, with its input encoded (a codec failure is
    /// [`StoreError::Input`]): leased to `owner` (with its lease) or, with none, on `queue`.
    pub(crate) fn of(
        run: &sagaflow_core::runtime::store::NewRun<'_>,
        owner: Option<(String, i64)>,
        queue: Option<sagaflow_core::runtime::store::Queueing<'_>>,
    ) -> Result<CreateRow, StoreError> {
        let input = (run.input_codec.encode)(run.input).map_err(|message| StoreError::Input {
            run_id: run.run_id.clone(),
            message,
        })?;
        let (owner, lease_ms) = owner.map_or((None, None), |(o, l)| (Some(o), Some(l)));
        let owner_first = owner.as_ref().and(run.first_step).map(str::to_owned);
        let (queue, priority, key) = queue.map_or((None, 0, None), |on| {
            (
                Some(on.queue.to_owned()),
                on.priority,
                on.key.map(str::to_owned),
            )
        });
        Ok(CreateRow {
            run_id: run.run_id.clone(),
            workflow: run.workflow.to_owned(),
            graph_fingerprint: run.graph_fingerprint.cast_signed(),
            input,
            graph: run.graph.map(str::to_owned),
            owner,
            lease_ms,
            queue,
            priority,
            key,
            notify: None,
            first: owner_first,
        })
    }
}

/// The statement that creates every run of a batch (see [`CREATE_SQL`](super::sql::CREATE_SQL); one run alone,
/// [`CREATE_ONE_SQL`](super::sql::CREATE_ONE_SQL)): a row back for each, in the batch's order. Sent when first polled.
/// A creation's graph goes with it only while `stored` does not know it stored; in a
/// `compact` log its first step's start is named by its row, not a row of its own.
pub(super) async fn create_all(
    client: &Client,
    (statement, one): (&Kept, &Kept),
    rows: Vec<&CreateRow>,
    (stored, compact): (&StoredGraphs, bool),
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if let [row] = rows[..] {
        return one
            .query(
                client,
                &[
                    &row.run_id.as_str(),
                    &row.workflow,
                    &row.graph_fingerprint,
                    &row.input,
                    &row.owner,
                    &row.lease_ms,
                    &sent_graph(row, stored),
                    &row.queue,
                    &row.priority,
                    &row.key,
                    &row.notify,
                    &crate::notices::QUEUED,
                    &row.first,
                    &compact,
                ],
            )
            .await;
    }
    let run_ids: Vec<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
    let workflows: Vec<&str> = rows.iter().map(|r| r.workflow.as_str()).collect();
    let fingerprints: Vec<i64> = rows.iter().map(|r| r.graph_fingerprint).collect();
    let inputs: Vec<&str> = rows.iter().map(|r| r.input.as_str()).collect();
    let owners: Vec<Option<&str>> = rows.iter().map(|r| r.owner.as_deref()).collect();
    let leases: Vec<Option<i64>> = rows.iter().map(|r| r.lease_ms).collect();
    let graphs: Vec<Option<&str>> = rows.iter().map(|r| sent_graph(r, stored)).collect();
    let queues: Vec<Option<&str>> = rows.iter().map(|r| r.queue.as_deref()).collect();
    let priorities: Vec<Option<i32>> = rows.iter().map(|r| Some(r.priority)).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.key.as_deref()).collect();
    let notify: Vec<Option<&str>> = rows.iter().map(|r| r.notify.as_deref()).collect();
    let firsts: Vec<Option<&str>> = rows.iter().map(|r| r.first.as_deref()).collect();
    statement
        .query(
            client,
            &[
                &run_ids,
                &workflows,
                &fingerprints,
                &inputs,
                &owners,
                &leases,
                &graphs,
                &queues,
                &priorities,
                &keys,
                &notify,
                &crate::notices::QUEUED,
                &firsts,
                &compact,
            ],
        )
        .await
}

/// The graph `row` sends: its own, unless `stored` knows it stored.
fn sent_graph<'a>(row: &'a CreateRow, stored: &StoredGraphs) -> Option<&'a str> {
    row.graph
        .as_deref()
        .filter(|_| !stored.has(&row.workflow, row.graph_fingerprint))
}
