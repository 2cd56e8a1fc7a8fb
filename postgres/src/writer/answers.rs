//! What a writer does once a batch has committed: it publishes the batch's events and answers
//! each write, from the rows its statements gave back (see `record::distribute`).

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tokio_postgres::Row;

use super::record::{Answered, Outcome};
use super::{CreateRow, RecordRow, Write, Writer};
use crate::error::pg_error;
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::Created;

impl Writer {
    /// Publishes the events of a committed batch, then answers each write.
    pub(super) async fn answer(&self, batch: Vec<Write>, rows: Vec<Answered>) {
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut events = Vec::new();
        let mut answers = Vec::with_capacity(batch.len());
        for (write, answered) in batch.into_iter().zip(rows) {
            match (write, answered) {
                (Write::Create(row, reply), Answered::Created(rows)) => {
                    if row.graph.is_some() {
                        self.graphs.stored(&row.workflow, row.graph_fingerprint);
                    }
                    let answer = self.created(&row, &rows, &mut events);
                    answers.push(Answer::Create(reply, answer, row.run_id));
                }
                (Write::Create(row, reply), Answered::Recorded(_)) => {
                    let answer = Err(self.unreadable(&row.run_id));
                    answers.push(Answer::Create(reply, answer, row.run_id));
                }
                (Write::Record(row, reply), Answered::Recorded(outcome)) => {
                    let answer = self.recorded(&row, outcome, &mut events);
                    answers.push(Answer::Record(reply, answer));
                }
                (Write::Record(row, reply), Answered::Created(_)) => {
                    answers.push(Answer::Record(reply, Err(self.unreadable(&row.run_id))));
                }
            }
        }
        // Published by the tail, which reads them back once nothing can come before them: only
        // their numbers are kept here.
        self.tail.committed(&self.publisher, events);
        for answer in answers {
            match answer {
                Answer::Create(reply, answer, run_id) => {
                    // `None`: created by a transaction that committed while this one waited for
                    // it; its workflow is read now.
                    let answer = match answer {
                        Ok(Some(created)) => Ok(created),
                        Ok(None) => self.workflow_of(&run_id).await,
                        Err(error) => Err(error),
                    };
                    let _ = reply.send(answer);
                }
                Answer::Record(reply, answer) => {
                    let _ = reply.send(answer);
                }
            }
        }
    }

    /// The workflow of the run `run_id`, which another transaction created.
    async fn workflow_of(&self, run_id: &RunId) -> Result<Created, StoreError> {
        let label = &self.label;
        let conn = self.conn.as_ref().ok_or_else(|| {
            StoreError::Backend(format!("database `{label}`: the writer has no connection"))
        })?;
        let row = self
            .session
            .on(&conn.client)
            .query_one(
                "SELECT workflow FROM runs WHERE run_id = $1",
                &[&run_id.as_str()],
            )
            .await
            .map_err(|e| pg_error(label, &e))?;
        Ok(Created::Existing {
            workflow: row.get(0),
        })
    }

    /// What a committed create found, and the numbers of its events; `None` for a run another
    /// transaction created while this one waited for it, whose workflow this statement could
    /// not see.
    fn created(
        &self,
        row: &CreateRow,
        rows: &[Row],
        events: &mut Vec<u64>,
    ) -> Result<Option<Created>, StoreError> {
        let (seq, at, workflow, began) = rows
            .first()
            .and_then(|r| {
                Some((
                    r.try_get::<_, Option<i64>>(0).ok()?,
                    r.try_get::<_, Option<i64>>(1).ok()?,
                    r.try_get::<_, Option<String>>(2).ok()?,
                    r.try_get::<_, Option<i64>>(4).ok()?,
                ))
            })
            .ok_or_else(|| self.unreadable(&row.run_id))?;
        match (seq, at, workflow) {
            (Some(seq), Some(_), _) => {
                events.push(seq.cast_unsigned());
                match (began, row.first.as_deref()) {
                    (Some(began), Some(_)) => events.push(began.cast_unsigned()),
                    (None, None) => {}
                    // The start was asked for and not logged, or the other way round.
                    _ => return Err(self.unreadable(&row.run_id)),
                }
                Ok(Some(Created::New))
            }
            (_, _, Some(workflow)) => Ok(Some(Created::Existing { workflow })),
            (_, _, None) => Ok(None),
        }
    }

    /// What a committed record found, and the numbers of its events.
    fn recorded(
        &self,
        row: &RecordRow,
        outcome: Option<Outcome>,
        events: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        match outcome.ok_or_else(|| self.unreadable(&row.run_id))? {
            Outcome::Applied(seqs, _) => {
                events.extend(seqs.into_iter().map(i64::cast_unsigned));
                Ok(())
            }
            Outcome::Fenced => Err(StoreError::Fenced {
                run_id: row.run_id.clone(),
                token: row.token.max(0).cast_unsigned(),
            }),
            Outcome::NoRun => Err(StoreError::Backend(format!(
                "database `{}`: no run `{}` to record a change of",
                self.label, row.run_id
            ))),
        }
    }

    fn unreadable(&self, run_id: &RunId) -> StoreError {
        StoreError::Backend(format!(
            "database `{}`: the server's answer to a write of run `{run_id}` has an unexpected shape",
            self.label
        ))
    }
}

/// An answer to send once the batch's events are published.
enum Answer {
    Create(
        oneshot::Sender<Result<Created, StoreError>>,
        Result<Option<Created>, StoreError>,
        RunId,
    ),
    Record(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
}
