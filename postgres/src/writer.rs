//! The writer: one connection of its own, and the group commit.
//!
//! A commit's cost on PostgreSQL is a round trip and the server's WAL flush, whatever the
//! transaction holds. So every checkpoint goes to one task with a connection of its own,
//! which takes every write waiting and sends them together, and only then acknowledges each
//! caller: many runs' checkpoints share one transaction and one flush, and no caller hears
//! "recorded" before its write is durable. A batch of one write is one statement that commits
//! by itself (`sql::ONE_SQL`). Any other batch is one transaction: `BEGIN`, the batch's
//! number, one statement for every creation, and the fence of every change write
//! (`sql::FENCE_SQL`), all written before the first answer is read; once the fence has
//! answered, the events of the writes that passed it are copied in (`COPY`, which inserts
//! them by pages), the leases half spent renewed and the runs that end ended (`sql::RENEW_SQL`),
//! then `COMMIT`, all sent without waiting. (Behind a pooler the changes are one call of the schema's
//! `record_v2` instead, which fences and appends them in one statement.) While a batch is in
//! flight, new writes queue for the next one, so the batch grows exactly when the load does;
//! and before a batch goes, the tasks the last answers woke are let run while their writes keep
//! coming, so that runs moving together stay in one batch. A batch of many writes is cut into
//! shares for the store's other writers that are free, which commit side by side, so that
//! several server processes do its work (see `queue`). In a compact log
//! (`PgOptions::compact_log`, schema 10) a write that completes a step and starts the next is
//! one row whose `next_step` names the started step, which keeps the number it would have had
//! (see [`RecordRow::next_step`]); so is a run's creation with its first step's start.
//!
//! A write that comes alone while no writer is busy, after a batch of one, is committed by its
//! caller (`PgOptions::commit_on_caller`, [`commit_here`]): the caller takes the writer's
//! state ([`Slot`]) and runs the writer's own commit of a batch of one, so that a sequential
//! run's checkpoint does not cross to the writer's task and back. Everything below holds for
//! it as for any batch.
//!
//! Each write fences itself: its events are appended only if the run's row still has the
//! writer's lease token. That read is enough because the batch reads it under a `FOR KEY
//! SHARE` lock on the row, held to its commit, and every change of a token (a take-up, a
//! hand-over, a parking) locks the row `FOR UPDATE` first: no take-up can commit between the
//! check and the batch's commit (schema version 7). Events are numbered by transaction, not
//! under a lock, so batches of several writers commit side by side and share WAL flushes. The run's row itself
//! is written only when the change ends the run or the lease is more than half spent (then it
//! is renewed), as on SQLite: most checkpoints write their events alone. A fenced write
//! therefore writes nothing and fails alone: the rest of its batch commits. A write that fails
//! in the server (an error, not a fence) fails the batch's statement; then every write of the
//! batch is applied again on its own, so that it fails only its own caller.
//!
//! If the connection dies with a batch in flight, the writer cannot tell from the client
//! whether the batch committed. Each batch therefore writes its number into the `writers`
//! table, in the same transaction; the writer reconnects and reads it back: the batch
//! committed (its writes are acknowledged as they were answered) or it did not (it is sent
//! again on the new connection). A batch of one write (schema 9) marks its first event with a
//! random number instead, which costs no row of its own; the writer in doubt locks the run's
//! row (waiting out the batch if the server still runs it) and looks for that event. A
//! checkpoint is thus neither lost nor written twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_postgres::Row;

use crate::change::ChangeRow;
use crate::connect::connect;
use crate::error::pg_error;
use crate::session::{Kept, Session};
use crate::tail::Tail;
pub(crate) use create::CreateRow;
use doubt::committed_batch;
pub(crate) use graphs::StoredGraphs;
pub(crate) use queue::Queue;
use record::{Answered, Numbered, distribute, record_all, split};
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::events::EventKind;
use sagaflow_core::runtime::events::Publisher;
use sagaflow_core::runtime::store::Created;
use sql::{
    COPY_SQL, CREATE_ONE_SQL, CREATE_SQL, FENCE_SQL, MARK_SQL, ONE_RENEW_SQL, ONE_SQL, RECORD_SQL,
    REFUSED_SQL, RENEW_SQL,
};

mod answers;
mod caller;
mod create;
mod doubt;
mod graphs;
mod queue;
mod record;
mod sql;
pub(crate) mod trace;
pub(crate) use caller::{commit_here, free_writer};

/// A change of a run to record, fenced by `token` (-1: this store holds no lease on it), and
/// `then` with it in the same transaction when given.
#[derive(Debug)]
pub(crate) struct RecordRow {
    pub(crate) run_id: RunId,
    pub(crate) change: ChangeRow,
    pub(crate) then: Option<ChangeRow>,
    pub(crate) token: i64,
    pub(crate) lease_ms: i64,
    /// Whether the write may renew the run's lease (once half spent): `false` for a lease
    /// this store took or renewed less than half a lease ago, which the write would not
    /// renew anyway (a run's end is written whatever this says).
    pub(crate) renew: bool,
}

impl RecordRow {
    /// The step whose start this write's first row may log too, in a compact log (see
    /// `PgOptions::compact_log`): `then`'s, when it is a first attempt's plain start and
    /// neither change ends the run.
    pub(crate) fn next_step(&self) -> Option<&str> {
        let then = self.then.as_ref()?;
        (then.kind == EventKind::StepStarted
            && then.attempt == Some(1)
            && then.detail.is_none()
            && then.end.is_none()
            && self.change.end.is_none())
        .then_some(then.step.as_deref())
        .flatten()
    }
}

/// A write and where its answer goes: each kind of write has its own answer.
// Unboxed: nearly every write is a `Record`, so boxing it would cost an allocation per write
// to save space on the rare creations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Write {
    /// Creates a run; answered with what was found.
    Create(CreateRow, oneshot::Sender<Result<Created, StoreError>>),
    /// Records a change; answered once durable, or with why not.
    Record(RecordRow, oneshot::Sender<Result<(), StoreError>>),
}

/// The writer's connection, and the statements it keeps (see `session`).
struct Conn {
    client: tokio_postgres::Client,
    create: Kept,
    create_one: Kept,
    record: Kept,
    fence: Kept,
    renew: Kept,
    /// The `COPY` of a batch's events ([`COPY_SQL`]), prepared; none behind a pooler, where a
    /// statement prepared by name may not survive the transaction (tokio-postgres prepares a
    /// `COPY` by name), and the batch is one call of `record_v2` instead.
    copy: Option<tokio_postgres::Statement>,
    one: Kept,
    refused: Kept,
    one_renew: Kept,
    mark: Kept,
}

/// What the writer has done, for [`PgStore::commits`](crate::PgStore::commits) and [`PgStore::writes`](crate::PgStore::writes).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) commits: AtomicU64,
    pub(crate) writes: AtomicU64,
    /// Writes their callers took to the server themselves (see [`commit_here`]).
    pub(crate) on_caller: AtomicU64,
}

/// The writes waiting, which the store's writers take (see [`Queue`]).
pub(crate) type Shared = Arc<Queue>;

/// A writer's state, held by its task while it commits a batch, or by a caller that commits
/// its own write (see [`commit_here`]).
pub(crate) type Slot = Arc<tokio::sync::Mutex<Writer>>;

/// The writer task's state.
pub(crate) struct Writer {
    config: crate::connect::Target,
    session: Session,
    label: Arc<str>,
    /// The key of this writer's batch number in `writers`: the store's owner id, and for
    /// the second writer on `<owner>/w1`, ...
    owner: String,
    publisher: Arc<Publisher>,
    tail: Arc<Tail>,
    stats: Arc<Stats>,
    /// The graphs the store's writers have seen committed into `graphs`.
    graphs: Arc<StoredGraphs>,
    conn: Option<Conn>,
    /// How long to keep trying to reconnect before failing the writes waiting.
    reconnect_timeout: Duration,
    /// How long a batch may wait for the server's answers before its connection is given
    /// up as lost: the statement timeout and a margin.
    answer_timeout: Duration,
    /// The number of the last batch sent.
    batch: i64,
    /// The number of the last batch committed, as read when the connection was made.
    committed: i64,
    /// The run and the mark of the last batch sent if it was one write marked on its event
    /// (see [`ONE_SQL`]): what a writer in doubt looks for.
    marked: Option<(RunId, i64)>,
    /// Whether a write's completion and next start go in one row, and a creation and its first
    /// start (`PgOptions::compact_log`).
    compact: bool,
}

type Pending<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// How a batch's transaction ended.
enum Ran {
    /// Committed; what each write got back.
    Committed(Vec<Answered>),
    /// Rolled back: a statement failed in the server.
    RolledBack(tokio_postgres::Error),
    /// The connection failed: the `COMMIT` may or may not have reached the server. What each
    /// write got back, if every answer arrived.
    Unknown(String, Option<Vec<Answered>>),
}

impl Writer {
    pub(crate) fn new(
        config: crate::connect::Target,
        label: Arc<str>,
        owner: String,
        (publisher, tail): (Arc<Publisher>, Arc<Tail>),
        stats: Arc<Stats>,
        graphs: Arc<StoredGraphs>,
        options: &crate::PgOptions,
    ) -> Writer {
        Writer {
            session: Session::new(&config, options),
            config,
            label,
            owner,
            publisher,
            tail,
            stats,
            graphs,
            reconnect_timeout: options.reconnect_timeout,
            answer_timeout: options
                .statement_timeout
                .saturating_add(Duration::from_secs(2)),
            conn: None,
            batch: 0,
            committed: 0,
            marked: None,
            compact: options.compact_log,
        }
    }

    /// Serves `writes` until every sender is gone: the writes gathered while this writer holds
    /// the queue, and the shares of the batches other writers gathered (see [`Queue`]).
    ///
    /// The writer `own` of `slots` commits each batch with its own state, or, while a caller
    /// holds it ([`commit_here`]), with another writer's that is free, or else with the first
    /// to be free: a caller's write held up in the server holds up no batch while another
    /// connection is free, and a share waits for no more than the shortest commit in flight.
    pub(crate) async fn run(own: usize, slots: Arc<[Slot]>, writes: Shared) {
        let Some(slot) = slots.get(own) else {
            return;
        };
        while let Some(batch) = writes.next().await {
            let free = std::iter::once(slot)
                .chain(slots.iter())
                .find_map(|slot| Arc::clone(slot).try_lock_owned().ok());
            let mut writer = match free {
                Some(writer) => writer,
                // Every writer busy (a caller's, another task's share): the first to be free.
                None => {
                    let waits = slots
                        .iter()
                        .map(|slot| Box::pin(Arc::clone(slot).lock_owned()));
                    futures_util::future::select_all(waits).await.0
                }
            };
            writer.commit(batch).await;
        }
        // The store is gone and every write answered: no batch of this owner can be in
        // doubt any more, so its number goes too, and `writers` holds only live owners (and
        // those of processes that died).
        let this = slot.lock().await;
        if let Some(conn) = &this.conn
            && let Err(error) = this
                .session
                .on(&conn.client)
                .execute("DELETE FROM writers WHERE owner = $1", &[&this.owner])
                .await
        {
            tracing::debug!(database = %this.label, error = %crate::error::describe(&error), "the writer's batch number stays");
        }
    }

    /// Connects, unless connected: the connection is made (again) if there is none, and its
    /// statements prepared.
    pub(crate) async fn connect(&mut self) -> Result<(), StoreError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let client = connect(&self.config, &self.label).await?;
        let pg = |e: tokio_postgres::Error| pg_error(&self.label, &e);
        // The writer's statements are the same few, run again and again.
        let session = &self.session;
        session.plan_once(&client).await.map_err(pg)?;
        let conn = Conn {
            create: session.keep(&client, CREATE_SQL).await.map_err(pg)?,
            create_one: session.keep(&client, CREATE_ONE_SQL).await.map_err(pg)?,
            record: session.keep(&client, RECORD_SQL).await.map_err(pg)?,
            fence: session.keep(&client, FENCE_SQL).await.map_err(pg)?,
            renew: session.keep(&client, RENEW_SQL).await.map_err(pg)?,
            copy: if session.pooled() {
                None
            } else {
                Some(client.prepare(COPY_SQL).await.map_err(pg)?)
            },
            one: session.keep(&client, ONE_SQL).await.map_err(pg)?,
            refused: session.keep(&client, REFUSED_SQL).await.map_err(pg)?,
            one_renew: session.keep(&client, ONE_RENEW_SQL).await.map_err(pg)?,
            mark: session.keep(&client, MARK_SQL).await.map_err(pg)?,
            client,
        };
        self.committed = committed_batch(session.on(&conn.client), &self.owner)
            .await
            .map_err(pg)?;
        self.batch = self.batch.max(self.committed);
        self.conn = Some(conn);
        Ok(())
    }

    /// Connects, retrying with a growing pause (from 50 ms to 1 s) for as long as the
    /// reconnect timeout allows: a restarted server or a link back up is waited for.
    async fn reconnect(&mut self) -> Result<(), StoreError> {
        let began = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.connect().await {
                Ok(()) => return Ok(()),
                Err(error) if began.elapsed() + pause > self.reconnect_timeout => {
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(database = %self.label, %error, "the writer cannot reconnect yet; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Commits `batch` and answers each of its writes.
    async fn commit(&mut self, batch: Vec<Write>) {
        let timed = trace::begin(&batch);
        let ran = self.attempt(&batch).await;
        let server_us = timed.as_ref().map_or(0, trace::Timed::server_us);
        let outcome = match ran {
            Ok(Ran::Committed(rows)) => {
                self.answer(batch, rows).await;
                "committed"
            }
            Ok(Ran::RolledBack(error)) if batch.len() == 1 => {
                let error = pg_error(&self.label, &error);
                fail(batch, &error);
                "rolled back"
            }
            Ok(Ran::RolledBack(_)) => {
                // One write failed in the server: each goes again on its own, so that it
                // fails alone.
                for write in batch {
                    Box::pin(self.commit(vec![write])).await;
                }
                "rolled back"
            }
            Ok(Ran::Unknown(error, rows)) => {
                self.settle(batch, &error, rows).await;
                "in doubt"
            }
            Err(error) => {
                fail(batch, &error);
                "failed"
            }
        };
        if let Some(timed) = timed {
            timed.end(&self.owner, outcome, server_us);
        }
    }

    /// Sends `batch`: a batch of one change write as the one statement that records it (it
    /// commits by itself); any other in one pipelined transaction, every statement written
    /// before the first answer is read, and the events of several change writes copied in
    /// once their fence has answered, before the `COMMIT`.
    async fn attempt(&mut self, batch: &[Write]) -> Result<Ran, StoreError> {
        self.reconnect().await?;
        self.batch += 1;
        self.marked = None;
        let number = self.batch;
        let owner = self.owner.as_str();
        let Some(conn) = self.conn.as_ref() else {
            return Err(StoreError::Backend(format!(
                "database `{}`: the writer has no connection",
                self.label
            )));
        };
        // With crash points (a test build), every batch is a transaction of its own, so that
        // a crash can come between its statements and its `COMMIT`; behind a pooler too, so
        // that its settings (the search path that finds the statement's function) are set.
        // Several changes go as a transaction of their own too: their events are copied in
        // once their fence has answered (see `record::copy_all`).
        let alone = !cfg!(feature = "fault-injection")
            && !self.session.pooled()
            && matches!(batch, [Write::Record(..)]);
        if alone {
            // A batch of one write marks its first event, with a number no other batch of
            // the run's will carry (random; 0 and below are never drawn).
            let mark = match batch {
                [Write::Record(row, _)] => {
                    let mark = fastrand::i64(1..);
                    self.marked = Some((row.run_id.clone(), mark));
                    Some(mark)
                }
                _ => None,
            };
            let numbered = Numbered {
                owner,
                number,
                mark,
                compact: self.compact,
            };
            let (_, records) = split(batch);
            let answered = {
                let mut call: Pending<'_> = Box::pin(record_all(conn, numbered, records));
                match poll_once(&mut call).await {
                    // Not even sent (a parameter the client could not encode): nothing to settle.
                    Some(Err(error))
                        if error.as_db_error().is_none() && !conn.client.is_closed() =>
                    {
                        return Ok(Ran::RolledBack(error));
                    }
                    Some(result) => Ok(result),
                    None => tokio::time::timeout(self.answer_timeout, call).await,
                }
            };
            return Ok(match answered {
                Ok(Ok(rows)) => Ran::Committed(distribute(batch, vec![rows], false)),
                Ok(Err(error)) if !lost(&error, &conn.client) => Ran::RolledBack(error),
                Ok(Err(error)) => Ran::Unknown(crate::error::describe(&error), None),
                Err(_) => {
                    self.conn = None;
                    Ran::Unknown(format!("no answer within {:?}", self.answer_timeout), None)
                }
            });
        }
        let client = &conn.client;
        let begin = self.session.begin();
        let mut pending: Vec<Pending<'_>> = Vec::with_capacity(batch.len() + 4);
        pending.push(Box::pin(async move {
            client.batch_execute(begin).await.map(|()| Vec::new())
        }));
        pending.push(Box::pin(async move {
            conn.mark
                .query(client, &[&owner, &number])
                .await
                .map(|_| Vec::new())
        }));
        // Every creation in one statement, then every change in one.
        let mut statements = 0;
        let (creations, records) = split(batch);
        if !creations.is_empty() {
            pending.push(Box::pin(create::create_all(
                &conn.client,
                (&conn.create, &conn.create_one),
                creations,
                (&self.graphs, self.compact),
            )));
            statements += 1;
        }
        // Several changes behind no pooler: their fence is sent with the rest, their events
        // copied in once it answers, and the `COMMIT` sent after that.
        let copied = records.len() > 1 && conn.copy.is_some();
        if !records.is_empty() {
            let batch = Numbered {
                owner,
                number,
                mark: None,
                compact: self.compact,
            };
            pending.push(Box::pin(record_all(conn, batch, records.clone())));
            statements += 1;
        }
        // With crash points (a test build), the `COMMIT` waits for the batch's answers, so
        // that a crash before it leaves a transaction the server has applied, uncommitted.
        // Every statement is sent (a future of tokio-postgres writes its request when first
        // polled) before the `COMMIT` is: polled once each, in order. A statement the client
        // could not even encode (a parameter of the wrong type) was not sent; then the batch
        // must not commit without it, so it is rolled back instead.
        let mut sent: Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>> =
            Vec::with_capacity(pending.len() + 1);
        for future in &mut pending {
            sent.push(poll_once(future).await);
        }
        let unsent = !client.is_closed()
            && sent
                .iter()
                .any(|r| matches!(r, Some(Err(e)) if e.as_db_error().is_none()));
        if unsent {
            let _ = client.batch_execute("ROLLBACK").await;
            let mut error = None;
            for (future, early) in pending.into_iter().zip(sent) {
                match early {
                    Some(Err(e)) if e.as_db_error().is_none() => {
                        error.get_or_insert(e);
                    }
                    Some(_) => {}
                    // Sent: its answer comes before the rollback's.
                    None => {
                        let _ = future.await;
                    }
                }
            }
            return match error {
                Some(error) => Ok(Ran::RolledBack(error)),
                None => Err(StoreError::Backend(format!(
                    "database `{}`: a statement of the batch was not sent",
                    self.label
                ))),
            };
        }
        // The events' `COPY` is started with the rest, behind the fence: its start is answered
        // once the fence has been, and the rows follow the fence's answer with no round trip
        // of their own.
        let copy = if copied && let Some(statement) = conn.copy.as_ref() {
            let mut start: record::CopyStart<'_> = Box::pin(client.copy_in(statement));
            let early = poll_once(&mut start).await;
            Some((start, early))
        } else {
            None
        };
        let split = cfg!(feature = "fault-injection");
        if !split && !copied {
            let mut commit: Pending<'_> =
                Box::pin(async move { client.batch_execute("COMMIT").await.map(|()| Vec::new()) });
            sent.push(poll_once(&mut commit).await);
            pending.push(commit);
        }
        // A server that stops answering (a link that drops packets, a stuck machine) must
        // not hang the writer: past the statement timeout and a margin, the connection is
        // given up as lost, and the batch settled as if it had been cut.
        let answers = async {
            let mut results = Vec::with_capacity(pending.len() + 1);
            for (future, early) in pending.into_iter().zip(sent) {
                results.push(answer(future, early).await);
            }
            // The fence answered last (no `COMMIT` was sent): the events of the writes that
            // passed it are copied in, unless a statement failed (the copy is then abandoned,
            // and the `COMMIT` rolls back). The `COMMIT` goes as soon as the copy's end is sent.
            let mut unshaped = false;
            let mut committed = false;
            let started = copy;
            if let Some((start, early)) = started
                && results.iter().all(Result::is_ok)
                && let Some(Ok(fence)) = results.last()
            {
                let sink = answer(start, early).await;
                match record::copy_all(sink, &records, fence, self.compact).await {
                    Ok((mut writer, fence)) => {
                        let mut finish = Box::pin(writer.as_mut().finish());
                        let finished = poll_once(&mut finish).await;
                        // The renewals and ends of the writes that passed, right behind the
                        // copy's end (none if no write renews or ends its run).
                        let renewals = fence.renewals(&records);
                        let mut renew =
                            (!renewals.is_empty()).then(|| Box::pin(renewals.send(conn)));
                        let renew_sent = match renew.as_mut() {
                            Some(renew) => poll_once(renew).await,
                            None => None,
                        };
                        // Right behind them; with crash points, below, once they have been
                        // answered.
                        let mut commit = (!split).then(|| Box::pin(client.batch_execute("COMMIT")));
                        let sent = match commit.as_mut() {
                            Some(commit) => poll_once(commit).await,
                            None => None,
                        };
                        if let Err(error) = answer(finish, finished).await {
                            results.push(Err(error));
                        }
                        if let Some(renew) = renew
                            && let Err(error) = answer(renew, renew_sent).await
                        {
                            results.push(Err(error));
                        }
                        if let Some(commit) = commit {
                            results.push(answer(commit, sent).await.map(|()| Vec::new()));
                            committed = true;
                        }
                    }
                    Err(record::CopyError::Pg(error)) => results.push(Err(error)),
                    Err(record::CopyError::Answer) => unshaped = true,
                }
            }
            if unshaped {
                results.push(client.batch_execute("ROLLBACK").await.map(|()| Vec::new()));
            } else if (split || copied) && !committed {
                #[cfg(feature = "fault-injection")]
                sagaflow_core::fault::hit(sagaflow_core::fault::Point::BeforeCommit);
                results.push(client.batch_execute("COMMIT").await.map(|()| Vec::new()));
            }
            (results, unshaped)
        };
        let Ok((results, unshaped)) = tokio::time::timeout(self.answer_timeout, answers).await
        else {
            self.conn = None;
            return Ok(Ran::Unknown(
                format!("no answer within {:?}", self.answer_timeout),
                None,
            ));
        };
        let mut gone = None;
        let mut failed = None;
        let mut rows = Vec::with_capacity(statements);
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(found) if (2..2 + statements).contains(&i) => rows.push(found),
                Ok(_) => {}
                Err(e) if lost(&e, client) => {
                    gone.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if unshaped && gone.is_none() {
            return Err(StoreError::Backend(format!(
                "database `{}`: the fence of a batch of {} writes answered with a row of another shape; rolled back",
                self.label,
                batch.len()
            )));
        }
        let complete = rows.len() == statements;
        let rows = distribute(batch, rows, copied);
        Ok(match (gone, failed) {
            (Some(gone), _) => {
                Ran::Unknown(crate::error::describe(&gone), complete.then_some(rows))
            }
            // The transaction was aborted; the server answered `COMMIT` with a rollback.
            (None, Some(failed)) => Ran::RolledBack(failed),
            (None, None) => {
                #[cfg(feature = "fault-injection")]
                sagaflow_core::fault::hit(sagaflow_core::fault::Point::AfterCommit);
                Ran::Committed(rows)
            }
        })
    }
}

/// What `future` gives: `early` if a first poll ([`poll_once`]) finished it, else what it
/// gives once awaited.
async fn answer<F: Future + Unpin>(future: F, early: Option<F::Output>) -> F::Output {
    match early {
        Some(output) => output,
        None => future.await,
    }
}

/// Polls `future` once, in the caller's task (which writes its request, if it has one), and
/// gives its result if that finished it.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match Pin::new(&mut *future).poll(cx) {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// Whether `error` lost the connection, so that what was sent may or may not have committed:
/// no answer from the server, or its answer ended the session (a `FATAL` error: the server
/// shutting down or restarting, `57P01` and its kin), or the connection is closed since.
fn lost(error: &tokio_postgres::Error, client: &tokio_postgres::Client) -> bool {
    client.is_closed()
        || error
            .as_db_error()
            .is_none_or(|db| matches!(db.severity(), "FATAL" | "PANIC"))
}

/// Fails every write of `batch` with `error`.
fn fail(batch: Vec<Write>, error: &StoreError) {
    for write in batch {
        match write {
            Write::Create(_, reply) => {
                let _ = reply.send(Err(error.clone()));
            }
            Write::Record(_, reply) => {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
