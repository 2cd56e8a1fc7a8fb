//! A batch in doubt: the writer's connection failed with it in flight, and the writer learns
//! whether it committed before it answers its writes or sends it again.

use std::sync::Arc;

use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::Created;

use super::record::Answered;
use super::sql::MARKED_SQL;
use super::{CreateRow, Ran, Write, Writer, fail};
use crate::error::pg_error;
use crate::session::Link;

impl Writer {
    /// The connection failed with `batch` in flight: reconnects, and learns from the batch
    /// number whether it committed. Committed, it is answered as it was found (or, if some
    /// answers were lost with the connection, see [`Writer::answer_unseen`]); not committed,
    /// it is sent once more.
    pub(super) async fn settle(
        &mut self,
        batch: Vec<Write>,
        error: &str,
        rows: Option<Vec<Answered>>,
    ) {
        tracing::warn!(
            database = %self.label,
            %error,
            "the writer's connection failed with a batch in flight; reconnecting"
        );
        self.conn = None;
        let sent = self.batch;
        if let Err(error) = self.reconnect().await {
            return fail(batch, &error);
        }
        // A batch of one write committed if its marked event is there; any other if `connect`
        // read its number (or a later one) as the last batch committed.
        let committed = match self.marked.take() {
            Some((run_id, mark)) => match self.was_marked(&run_id, mark).await {
                Ok(found) => found,
                Err(error) => return fail(batch, &error),
            },
            None => self.committed >= sent,
        };
        match (committed, rows) {
            (true, Some(rows)) => self.answer(batch, rows).await,
            (true, None) => self.answer_unseen(batch).await,
            (false, _) => match self.attempt(&batch).await {
                Ok(Ran::Committed(rows)) => self.answer(batch, rows).await,
                Ok(Ran::RolledBack(error)) => {
                    let error = pg_error(&self.label, &error);
                    fail(batch, &error);
                }
                Ok(Ran::Unknown(error, _)) => {
                    self.conn = None;
                    let error = StoreError::Backend(format!(
                        "database `{}`: the connection failed twice with the same writes in flight: {error}",
                        self.label
                    ));
                    fail(batch, &error);
                }
                Err(error) => fail(batch, &error),
            },
        }
    }

    /// Whether the batch of one write marked `mark` on `run_id` committed: its marked event is
    /// there. Asked after the run's row is locked `FOR UPDATE`, which waits for that batch's
    /// transaction if the server still runs it (it holds the row `FOR KEY SHARE` to its end),
    /// so that the answer is final.
    async fn was_marked(&mut self, run_id: &RunId, mark: i64) -> Result<bool, StoreError> {
        let label = Arc::clone(&self.label);
        let Some(conn) = self.conn.as_mut() else {
            return Err(StoreError::Backend(format!(
                "database `{label}`: the writer has no connection"
            )));
        };
        let pg = |e: tokio_postgres::Error| pg_error(&label, &e);
        let tx = self
            .session
            .transaction(&mut conn.client)
            .await
            .map_err(pg)?;
        tx.query_opt(
            "SELECT 1 FROM runs WHERE run_id = $1 FOR UPDATE",
            &[&run_id.as_str()],
        )
        .await
        .map_err(pg)?;
        let found: bool = tx
            .query_one(MARKED_SQL, &[&run_id.as_str(), &mark])
            .await
            .map_err(pg)?
            .get(0);
        tx.commit().await.map_err(pg)?;
        Ok(found)
    }

    /// The batch committed, and the answers to some of its statements were lost with the
    /// connection. A change is answered as recorded: it committed, or it was fenced, and a
    /// fenced run's next write is refused anyway. A creation is answered from the run's row
    /// as it now stands. Their events are in the log, not published live.
    async fn answer_unseen(&mut self, batch: Vec<Write>) {
        for write in batch {
            match write {
                Write::Create(row, reply) => {
                    let answer = self.creation_of(&row).await;
                    let _ = reply.send(answer);
                }
                Write::Record(_, reply) => {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    /// Whether the run of `row` is the one `row` created: its owner is this store's and
    /// nothing has happened to it since.
    async fn creation_of(&mut self, row: &CreateRow) -> Result<Created, StoreError> {
        let label = Arc::clone(&self.label);
        let Some(conn) = self.conn.as_ref() else {
            return Err(StoreError::Backend(format!(
                "database `{label}`: the writer has no connection"
            )));
        };
        let found = self
            .session
            .on(&conn.client)
            .query_opt(
                "SELECT workflow, owner, version FROM runs WHERE run_id = $1",
                &[&row.run_id.as_str()],
            )
            .await
            .map_err(|e| pg_error(&label, &e))?;
        let Some(found) = found else {
            return Err(StoreError::Backend(format!(
                "database `{label}`: the run `{}` was not created",
                row.run_id
            )));
        };
        let (workflow, owner, version): (String, Option<String>, i64) =
            (found.get(0), found.get(1), found.get(2));
        Ok(
            // A queued run has no owner until it is taken: `None` is then what this write set.
            if owner == row.owner && version == 1 {
                Created::New
            } else {
                Created::Existing { workflow }
            },
        )
    }
}

/// The number of the last batch `owner`'s writer committed (0 if none). Read `FOR UPDATE`:
/// a batch still running on the server, on a connection the writer lost (its `COMMIT` in
/// flight), holds the row from its mark to its end, so the read waits for it and then sees
/// whether it committed; a plain read could come first, and the batch be sent again and
/// committed twice.
pub(super) async fn committed_batch(
    client: Link<'_>,
    owner: &str,
) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT batch FROM writers WHERE owner = $1 FOR UPDATE",
            &[&owner],
        )
        .await?
        .map_or(0, |row| row.get(0)))
}
