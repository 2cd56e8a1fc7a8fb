//! Retention on PostgreSQL: finished runs listed by the time they finished (the
//! `runs_finished` index), and deleted with their events and signals, explicitly (schema
//! version 2 has no foreign keys from them to `runs`, and `steps` is a view over `events`),
//! in one statement per batch on a connection of the pool, never the writer's, and without
//! the log lock: checkpoints of other runs go on while a batch deletes.
//!
//! Positions: `events.seq` and `signals.position` are identity columns, whose sequences never
//! go back, so deleting the newest rows hands no number out twice. A delivery to a run locks
//! the run's row (`FOR KEY SHARE`), so a signal is never kept for a run a batch deleted.
//!
//! Deleted rows are dead tuples until a vacuum makes their room reusable: the engine's policy
//! runs a plain `VACUUM` of these tables every `RECLAIM_AFTER_RUNS` runs it deleted
//! ([`Retention::reclaim`]), and schema version 5 has autovacuum visit them once 2% of their
//! rows are dead; the tables stop growing once pruning and vacuum keep up, and do not shrink
//! (`VACUUM FULL` would, under an exclusive lock; sagaflow does not run it).

use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::StoredRunStatus;
use sagaflow_core::runtime::store::retention::{Deleted, FinishedQuery, FinishedRun, Retention};

use crate::PgStore;
use crate::error::pg_error;

/// The statuses `query` lists, as stored.
fn statuses(query: &FinishedQuery) -> Vec<&'static str> {
    query
        .statuses
        .iter()
        .filter(|s| {
            matches!(
                s,
                StoredRunStatus::Completed | StoredRunStatus::Failed | StoredRunStatus::Cancelled
            )
        })
        .map(|s| s.as_str())
        .collect()
}

/// Finished runs listed and deleted on a connection of the pool, each a statement of its own.
#[async_trait::async_trait]
impl Retention for PgStore {
    async fn finished_runs(&self, query: &FinishedQuery) -> Result<Vec<FinishedRun>, StoreError> {
        let label = &*self.inner.label;
        let pg = |e: tokio_postgres::Error| pg_error(label, &e);
        let client = self.client().await?;
        let link = self.inner.session.on(&client);
        let statuses = statuses(query);
        // The newest `keep` stay: the list ends below the `keep`-th newest.
        let (end_at, end_id) = if query.keep == 0 {
            (i64::MAX, String::new())
        } else {
            let offset = i64::try_from(query.keep - 1).unwrap_or(i64::MAX);
            let boundary = link
                .query_opt(
                    "SELECT updated_at, run_id FROM runs \
                     WHERE status <> 'running' AND status = ANY($1) \
                     ORDER BY updated_at DESC, run_id DESC LIMIT 1 OFFSET $2",
                    &[&statuses, &offset],
                )
                .await
                .map_err(pg)?;
            match boundary {
                Some(row) => (row.get::<_, i64>(0), row.get::<_, String>(1)),
                None => return Ok(Vec::new()),
            }
        };
        let age: Option<i64> = query
            .older_than
            .map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let (after_at, after_id) = query.after.as_ref().map_or((i64::MIN, String::new()), |c| {
            (c.finished_at, c.run_id.as_str().to_owned())
        });
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let rows = link
            .query(
                "SELECT run_id, workflow, status, updated_at FROM runs \
                 WHERE status <> 'running' AND status = ANY($1) \
                     AND ($2::bigint IS NULL OR updated_at < now_ms() - $2::bigint) \
                     AND (updated_at, run_id) < ($3, $4) AND (updated_at, run_id) > ($5, $6) \
                 ORDER BY updated_at, run_id LIMIT $7",
                &[
                    &statuses, &age, &end_at, &end_id, &after_at, &after_id, &limit,
                ],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|row| {
                let run_id: String = row.get(0);
                let status: String = row.get(2);
                let status = StoredRunStatus::parse(&status).ok_or_else(|| {
                    StoreError::Backend(format!(
                        "database `{label}`: run `{run_id}` has a status this sagaflow does not know: `{status}`"
                    ))
                })?;
                Ok(FinishedRun {
                    run_id: RunId::from(run_id),
                    workflow: row.get(1),
                    status,
                    finished_at: row.get(3),
                })
            })
            .collect()
    }

    async fn delete_runs(&self, run_ids: &[RunId]) -> Result<Deleted, StoreError> {
        if run_ids.is_empty() {
            return Ok(Deleted::default());
        }
        let label = &*self.inner.label;
        let client = self.client().await?;
        let ids: Vec<&str> = run_ids.iter().map(RunId::as_str).collect();
        // One statement, so one transaction: the finished runs' rows locked first, then
        // their events, signals and rows deleted.
        let row = self
            .inner
            .session
            .on(&client)
            .query_one(
                "WITH doomed AS (
                     SELECT run_id FROM runs WHERE run_id = ANY($1) AND status <> 'running'
                     FOR UPDATE
                 ),
                 e AS (DELETE FROM events WHERE run_id IN (SELECT run_id FROM doomed)
                       RETURNING CASE WHEN next_step IS NULL THEN 1 ELSE 2 END AS n),
                 s AS (DELETE FROM signals WHERE run_id IN (SELECT run_id FROM doomed)
                       RETURNING 1),
                 r AS (DELETE FROM runs WHERE run_id IN (SELECT run_id FROM doomed)
                       RETURNING 1)
                 SELECT (SELECT count(*) FROM r), (SELECT coalesce(sum(n), 0)::bigint FROM e),
                        (SELECT count(*) FROM s)",
                &[&ids],
            )
            .await
            .map_err(|e| pg_error(label, &e))?;
        let count = |i: usize| row.get::<_, i64>(i).cast_unsigned();
        Ok(Deleted {
            runs: count(0),
            events: count(1),
            signals: count(2),
        })
    }

    async fn workflows(&self) -> Result<Vec<String>, StoreError> {
        let label = &*self.inner.label;
        let client = self.client().await?;
        let rows = self
            .inner
            .session
            .on(&client)
            .query("SELECT DISTINCT workflow FROM runs", &[])
            .await
            .map_err(|e| pg_error(label, &e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// A plain `VACUUM` of the tables runs are deleted from, on a connection of the pool (in
    /// the simple protocol, outside any transaction, so behind a pooler too), skipping a table
    /// another vacuum holds. It takes no lock that stops reads or writes: checkpoints go on.
    async fn reclaim(&self) -> Result<(), StoreError> {
        let label = &*self.inner.label;
        let schema = self.inner.schema.replace('"', "\"\"");
        let client = self.client().await?;
        client
            .batch_execute(&format!(
                "VACUUM (SKIP_LOCKED) \"{schema}\".runs, \"{schema}\".events, \"{schema}\".signals"
            ))
            .await
            .map_err(|e| pg_error(label, &e))
    }
}
