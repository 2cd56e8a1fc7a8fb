//! The writer: the one connection, and the group commit.
//!
//! A SQLite database has one writer at a time, and a commit's cost is its `fsync`, whatever it
//! holds. So one connection does every write, behind a lock, and whoever holds the lock
//! commits for everyone waiting:
//!
//! - A caller that finds the connection free commits on its own thread, at once, and takes
//!   every write queued meanwhile into the same transaction. A lone sequential run thus pays
//!   one commit per checkpoint and no thread hand-off: handing each write to another thread
//!   and being woken with the answer cost two thread wake-ups, as long as a whole commit with
//!   `synchronous = NORMAL` on the machine the benchmarks ran on. The price: that caller's
//!   thread (a tokio worker) is blocked for one commit, as any synchronous write would block
//!   it, and never longer: it does not wait for another connection's lock (`busy_timeout` is
//!   0 for its `BEGIN`), it hands its write to the writer thread instead. A service that
//!   cannot afford even that turns it off (`SqliteOptions::commit_on_caller(false)`): every
//!   write then takes the path below.
//! - A caller that finds the connection busy queues its write and awaits a oneshot. The
//!   writer thread, woken by the queue, takes every request that is waiting, applies all the
//!   writes in one `BEGIN IMMEDIATE` transaction (a write refused before it changed anything
//!   needs nothing undone; one that fails having changed rows sends the batch back to its
//!   start, to be applied again with each write in a savepoint, undone alone), commits once,
//!   and only then acknowledges each caller: many runs' checkpoints share one `fsync`, and no
//!   caller hears "recorded" before its write is durable. While a commit is in progress, new
//!   requests queue up for the next batch, so the batch grows exactly when the load does.
//! - While writes come in bursts (the last commit held several), callers queue them even when
//!   the connection is free, and the writer thread applies a burst's writes as they come,
//!   committing once a short pause brings no more (see `gather`).
//!
//! If the transaction as a whole fails (the commit fails, or SQLite rolls the transaction back
//! after an error such as a full disk), every write of the batch is applied again in a
//! transaction of its own, so a write that cannot be committed fails only its own caller. A
//! lock held past the busy timeout is the exception: it would hold for every retry too, so
//! the whole batch fails with [`StoreError::Busy`] at once rather than wait once per write.
//!
//! Each kind of write is a type of its own (an [`Op`]: creating a run, taking a lease,
//! recording a change, a machine's transition; see `ops`) with an answer type of its own. A
//! write waiting in a batch is a [`Pending`] behind the object-safe [`PendingOp`], which
//! applies it, keeps its typed answer and delivers it through the write's own reply, so
//! writes of every kind share a transaction and none can be answered as another. The
//! committing caller's own write stays typed on its stack and needs no reply at all.
//!
//! Reads of a database file have a connection and a thread of their own (`reader`); a
//! database in memory, and the rare requests that write outside a group commit (delivering a
//! signal, creating a machine), go through this thread's queue and run between batches, on
//! this connection. Their answers, like the writes', go out once the lock is let go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

mod gather;

use gather::Gathering;

use crate::SqliteOptions;
use crate::error::sqlite_error;
use crate::events::{Publisher, Publishing};
use crate::lease::Leases;
use crate::rows::ApplyError;
use sagaflow_core::runtime::error::StoreError;

/// The most writes one transaction takes; the rest wait for the next one. Bounds the work a
/// failed batch redoes and the time a read waits.
const MAX_BATCH: usize = 4096;

/// A kind of write: applied inside the writer's shared transaction, answered with a type of
/// its own. The writes are in `ops`.
pub(crate) trait Op: Send + 'static {
    /// What the write found, for its caller (and the events it logged, for the publisher).
    type Answer: Send + 'static;

    /// Applies the write inside the writer's open transaction (in a savepoint of its own when
    /// it shares the transaction). Errors are raw SQLite errors, which the writer maps to
    /// [`StoreError`]s naming the file, or the write's own refusal.
    fn apply(&self, conn: &Connection, label: &str) -> Result<Self::Answer, ApplyError>;

    /// Hands the events the write logged, as `answer` says, to the publisher, in the order it
    /// logged them.
    fn publish(&self, answer: &Self::Answer, to: &mut Publishing<'_>);
}

/// What a caller hears of its write `O`.
pub(crate) type Outcome<O> = Result<<O as Op>::Answer, StoreError>;

/// What a caller asks of the writer thread.
pub(crate) enum Request {
    /// Apply a write and report after its commit ([`Request::write`]).
    Write(Box<dyn PendingOp>),
    /// Run a read on the connection, outside any write transaction. The closure sends its own
    /// reply.
    Read(ReadFn),
}

impl Request {
    /// The request to commit `op`, and where its answer will come.
    pub(crate) fn write<O: Op>(op: O) -> (Request, oneshot::Receiver<Outcome<O>>) {
        let (pending, answer) = Pending::queued(op);
        (Request::Write(pending), answer)
    }
}

/// A read on the writer's connection; it is handed the connection and the file's label, and
/// returns the delivery of its answer, which the writer makes once it has let go of the lock.
pub(crate) type ReadFn = Box<dyn FnOnce(&Connection, &str) -> Deliver + Send>;

/// Delivers a read's answer.
pub(crate) type Deliver = Box<dyn FnOnce() + Send>;

/// A write of any kind waiting for its commit: what a batch holds (see [`Pending`]).
pub(crate) trait PendingOp: Send {
    /// Applies the write inside the open transaction and keeps its answer. An error is the
    /// writer's to judge (the write refused alone, or the whole transaction lost): it becomes
    /// the answer only through [`refuse`](Self::refuse).
    fn apply(&mut self, conn: &Connection, label: &str) -> Result<(), ApplyError>;

    /// Makes `error` the write's answer.
    fn refuse(&mut self, error: StoreError);

    /// Whether the write was applied (its answer is not an error).
    fn applied(&self) -> bool;

    /// Publishes the events the write logged, if it was applied.
    fn publish(&self, to: &mut Publishing<'_>);

    /// Sends the answer to the caller awaiting it; made once the lock is let go.
    fn deliver(self: Box<Self>);
}

/// A write `O`, its answer once it has one, and the caller awaiting it.
struct Pending<O: Op> {
    op: O,
    /// `None` until the write is applied or refused.
    outcome: Option<Outcome<O>>,
    /// `None` for the committing caller's own write: its answer is the caller's return value.
    reply: Option<oneshot::Sender<Outcome<O>>>,
}

impl<O: Op> Pending<O> {
    /// The committing caller's own write.
    fn own(op: O) -> Self {
        Pending {
            op,
            outcome: None,
            reply: None,
        }
    }

    /// A write queued for another to commit, and where its answer will come.
    fn queued(op: O) -> (Box<dyn PendingOp>, oneshot::Receiver<Outcome<O>>) {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            op,
            outcome: None,
            reply: Some(reply),
        };
        (Box::new(pending), answer)
    }

    /// The answer. Every path of a commit answers every write of its batch, so `None` would
    /// be the writer's own bug, reported rather than panicked on.
    fn into_outcome(self) -> Outcome<O> {
        self.outcome.unwrap_or_else(|| {
            Err(StoreError::Backend(
                "internal: a committed write lost its answer".to_owned(),
            ))
        })
    }
}

impl<O: Op> PendingOp for Pending<O> {
    fn apply(&mut self, conn: &Connection, label: &str) -> Result<(), ApplyError> {
        // An answer kept from a transaction that was lost is no answer.
        self.outcome = None;
        self.outcome = Some(Ok(self.op.apply(conn, label)?));
        Ok(())
    }

    fn refuse(&mut self, error: StoreError) {
        self.outcome = Some(Err(error));
    }

    fn applied(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }

    fn publish(&self, to: &mut Publishing<'_>) {
        if let Some(Ok(answer)) = &self.outcome {
            self.op.publish(answer, to);
        }
    }

    fn deliver(self: Box<Self>) {
        let mut pending = *self;
        if let Some(reply) = pending.reply.take() {
            // A caller that stopped waiting has nothing to hear.
            let _ = reply.send(pending.into_outcome());
        }
    }
}

/// The writes of one transaction: the committing caller's own first, if any, then the queued
/// ones, in the order they are applied.
struct Batch<'a> {
    own: Option<&'a mut (dyn PendingOp + 'static)>,
    /// The queued writes; a batch of the writer thread's grows while it gathers a burst.
    queued: Option<&'a mut Vec<Box<dyn PendingOp>>>,
}

impl<'a> Batch<'a> {
    /// A batch of `pending` alone.
    fn one(pending: &'a mut (dyn PendingOp + 'static)) -> Self {
        Batch {
            own: Some(pending),
            queued: None,
        }
    }

    fn len(&self) -> usize {
        usize::from(self.own.is_some()) + self.queued.as_ref().map_or(0, |queued| queued.len())
    }

    fn iter(&self) -> impl Iterator<Item = &dyn PendingOp> {
        let queued = self.queued.iter().flat_map(|queued| queued.iter());
        self.own
            .as_deref()
            .into_iter()
            .chain(queued.map(|pending| &**pending))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut (dyn PendingOp + 'static)> {
        let queued = self.queued.iter_mut().flat_map(|queued| queued.iter_mut());
        self.own
            .as_deref_mut()
            .into_iter()
            .chain(queued.map(|pending| &mut **pending))
    }
}

/// What [`Writer::commit_here`] did with a write.
pub(crate) enum Inline<O: Op> {
    /// Committed (or refused) on the caller's thread.
    Done(Outcome<O>),
    /// Another connection holds the database: the writer thread, which may wait for it, has
    /// the write now.
    Handed(oneshot::Receiver<Outcome<O>>),
    /// The connection is in use: the write is given back, to be queued.
    Busy(O),
}

/// Counters the writer keeps, shared with the store.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Transactions committed.
    pub(crate) commits: AtomicU64,
    /// Transactions committed on a caller's thread ([`Writer::commit_here`]).
    pub(crate) commits_on_caller: AtomicU64,
    /// Writes acknowledged as applied.
    pub(crate) writes: AtomicU64,
    /// Reads served.
    pub(crate) reads: AtomicU64,
}

/// The connection behind its lock, and the writer thread to wake.
pub(crate) struct Writer {
    core: Mutex<Core>,
    /// Bursts of writes gathered into one commit (see `gather`).
    gathering: Arc<Gathering>,
    thread: OnceLock<Thread>,
    /// Whether a caller may commit on its own thread (`SqliteOptions::commit_on_caller`).
    on_caller: bool,
}

/// Everything a commit needs; whoever holds the lock on it commits.
struct Core {
    conn: Connection,
    gathering: Arc<Gathering>,
    label: Arc<str>,
    stats: Arc<Stats>,
    /// Where committed events go live.
    publisher: Arc<Publisher>,
    /// The leases this store holds, which the writer thread renews between batches.
    leases: Arc<Leases>,
    /// The queue the writer thread serves; a caller committing drains it too.
    requests: Receiver<Request>,
    /// The busy timeout the store was opened with, which the writer thread waits.
    busy_timeout: Duration,
    /// Writes that the writer thread must commit before any other: handed over by a caller
    /// that found the database locked by another connection.
    handed: Vec<Box<dyn PendingOp>>,
    /// Reads that a committing caller took from the queue, left to the writer thread.
    reads: Vec<ReadFn>,
    /// Answered writes, delivered once the lock is let go: a caller woken by its answer then
    /// finds the connection free and commits its next write on its own thread, instead of
    /// queueing behind a writer thread that still holds the lock.
    outbox: Vec<Box<dyn PendingOp>>,
    /// The reads' answers, sent likewise.
    read_outbox: Vec<Deliver>,
}

/// What draining the queue found.
struct Drained {
    /// The queue's senders are gone: the store is closing.
    closed: bool,
    /// The batch is full; more may be waiting.
    full: bool,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        label: Arc<str>,
        stats: Arc<Stats>,
        publisher: Arc<Publisher>,
        leases: Arc<Leases>,
        requests: Receiver<Request>,
        options: &SqliteOptions,
    ) -> Self {
        let busy_timeout = options.busy_timeout;
        let gathering = Arc::new(Gathering::default());
        Self {
            on_caller: options.commit_on_caller,
            gathering: Arc::clone(&gathering),
            core: Mutex::new(Core {
                conn,
                gathering,
                label,
                stats,
                publisher,
                leases,
                requests,
                busy_timeout,
                handed: Vec::new(),
                reads: Vec::new(),
                outbox: Vec::new(),
                read_outbox: Vec::new(),
            }),
            thread: OnceLock::new(),
        }
    }

    /// Whether writes come in a burst, which the writer thread gathers: a caller then queues
    /// its write rather than commit it alone (see `gather`).
    pub(crate) fn burst(&self) -> bool {
        self.gathering.burst()
    }

    /// Names the thread [`wake`](Self::wake) unparks.
    pub(crate) fn set_thread(&self, thread: Thread) {
        let _ = self.thread.set(thread);
    }

    /// Tells the writer thread that there is something in the queue (or that it closed).
    pub(crate) fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    /// The lock, even if a thread panicked holding it: the connection has no invariant of
    /// ours that a panic could break (a transaction left open is rolled back by the next
    /// write's error path).
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread: serves the queue until every sender is gone, then gives up the
    /// leases still held. Between batches, every [`Leases::heartbeat_period`], it renews the
    /// leases it holds. The connection closes (checkpointing the WAL into the database file)
    /// when the store drops the writer, after this returns.
    ///
    /// `ready` is told once the thread has been through its first round and is about to wait:
    /// the store's `open` returns only then, so that the thread's first round, which holds the
    /// connection for a moment, never takes it from under a caller's first writes (a thread
    /// started late on a loaded machine did, and those writes went to the thread).
    pub(crate) fn run(&self, ready: std::sync::mpsc::Sender<()>) {
        let period = self.lock().leases.heartbeat_period();
        let mut beat = Instant::now() + period;
        let mut ready = Some(ready);
        loop {
            let mut core = self.lock();
            if Instant::now() >= beat {
                crate::lease::renew(&core.leases, &core.conn, &core.label);
                beat = Instant::now() + period;
            }
            let open = core.serve();
            let outbox = std::mem::take(&mut core.outbox);
            let read_outbox = std::mem::take(&mut core.read_outbox);
            drop(core);
            deliver_all(outbox);
            read_outbox.into_iter().for_each(|deliver| deliver());
            if !open {
                break;
            }
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            // An unpark that came while serving makes this return at once: none is lost.
            std::thread::park_timeout(beat.saturating_duration_since(Instant::now()));
        }
        let core = self.lock();
        crate::lease::give_up(&core.leases, &core.conn, &core.label);
    }

    /// Commits `op` on the caller's thread if the connection is free, with every write queued
    /// meanwhile; see the module's documentation.
    pub(crate) fn commit_here<O: Op>(&self, op: O) -> Inline<O> {
        if !self.on_caller {
            return Inline::Busy(op);
        }
        let mut core = match self.core.try_lock() {
            Ok(core) => core,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Inline::Busy(op),
        };
        if !core.handed.is_empty() {
            // The writer thread is behind another connection's lock; queue up behind it.
            return Inline::Busy(op);
        }
        if let Err(error) = core.begin_without_waiting() {
            if !error.is_busy() {
                return Inline::Done(Err(error));
            }
            let (pending, answer) = Pending::queued(op);
            core.handed.push(pending);
            drop(core);
            self.wake();
            return Inline::Handed(answer);
        }
        let mut own = Pending::own(op);
        let mut queued = Vec::new();
        // The caller's own write is the batch's first.
        let drained = core.drain(&mut queued, MAX_BATCH - 1);
        let before = core.stats.commits.load(Ordering::Relaxed);
        core.commit_group(
            Batch {
                own: Some(&mut own),
                queued: Some(&mut queued),
            },
            true,
            false,
        );
        let committed = core.stats.commits.load(Ordering::Relaxed) - before;
        core.stats
            .commits_on_caller
            .fetch_add(committed, Ordering::Relaxed);
        let more = drained.closed || drained.full || !core.reads.is_empty();
        drop(core);
        deliver_all(queued);
        if more {
            self.wake();
        }
        Inline::Done(own.into_outcome())
    }
}

/// Delivers the answers, once the lock is let go.
fn deliver_all(answered: Vec<Box<dyn PendingOp>>) {
    for pending in answered {
        pending.deliver();
    }
}

impl Core {
    /// Commits what was handed over and what is queued, batch after batch, then runs the
    /// reads. `false` once the store is closing and the queue is empty.
    fn serve(&mut self) -> bool {
        loop {
            let mut batch = std::mem::take(&mut self.handed);
            let drained = self.drain(&mut batch, MAX_BATCH);
            if !batch.is_empty() {
                let gather = self.gathering.burst();
                self.commit_group(
                    Batch {
                        own: None,
                        queued: Some(&mut batch),
                    },
                    false,
                    gather,
                );
                if self.outbox.is_empty() {
                    self.outbox = batch;
                } else {
                    self.outbox.append(&mut batch);
                }
            }
            for read in std::mem::take(&mut self.reads) {
                self.stats.reads.fetch_add(1, Ordering::Relaxed);
                let deliver = read(&self.conn, &self.label);
                self.read_outbox.push(deliver);
            }
            if drained.closed {
                return false;
            }
            if !drained.full {
                return true;
            }
        }
    }

    /// Moves the queued writes into `batch` (until it holds `limit`) and the reads aside.
    fn drain(&mut self, batch: &mut Vec<Box<dyn PendingOp>>, limit: usize) -> Drained {
        loop {
            if batch.len() >= limit {
                return Drained {
                    closed: false,
                    full: true,
                };
            }
            match self.requests.try_recv() {
                Ok(Request::Write(pending)) => batch.push(pending),
                Ok(Request::Read(read)) => self.reads.push(read),
                Err(TryRecvError::Empty) => {
                    return Drained {
                        closed: false,
                        full: false,
                    };
                }
                Err(TryRecvError::Disconnected) => {
                    return Drained {
                        closed: true,
                        full: false,
                    };
                }
            }
        }
    }

    /// `BEGIN IMMEDIATE`, failing at once with [`StoreError::Busy`] if another connection
    /// holds the database, instead of waiting the busy timeout on a caller's thread.
    fn begin_without_waiting(&self) -> Result<(), StoreError> {
        // Setting a busy timeout cannot fail on an open connection; if it ever did, the
        // `BEGIN` would merely wait as the writer thread does.
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let begun = self.exec("BEGIN IMMEDIATE");
        let _ = self.conn.busy_timeout(self.busy_timeout);
        begun
    }

    /// Commits `batch` in one transaction (`begun`: already open), publishes its events and
    /// keeps each write's answer, or, if the transaction as a whole fails, commits each write
    /// on its own. Events go out before the answers (which the caller delivers once the lock
    /// is let go), so a caller whose write is acknowledged knows its event has been published.
    ///
    /// `gather`: a burst is on (see `gather`); the batch takes in the writes that come while
    /// it is applied, until a pause brings none.
    fn commit_group(&mut self, mut batch: Batch<'_>, begun: bool, gather: bool) {
        match self.try_batch(&mut batch, begun, gather) {
            Ok(()) => {
                let mut publishing = self.publisher.publishing();
                let mut applied = 0;
                for pending in batch.iter() {
                    pending.publish(&mut publishing);
                    applied += u64::from(pending.applied());
                }
                drop(publishing);
                self.stats.writes.fetch_add(applied, Ordering::Relaxed);
            }
            Err(error) if batch.len() == 1 || error.is_busy() => {
                for pending in batch.iter_mut() {
                    pending.refuse(error.clone());
                }
            }
            Err(error) => {
                tracing::debug!(
                    %error,
                    writes = batch.len(),
                    "group commit failed; committing its writes one by one"
                );
                for pending in batch.iter_mut() {
                    self.commit_group(Batch::one(pending), false, false);
                }
            }
        }
    }

    /// One transaction for `batch` (`begun`: already open), each write keeping its own answer;
    /// or the error that lost the transaction (nothing of the batch is then committed, and the
    /// answers kept are void).
    fn try_batch(
        &mut self,
        batch: &mut Batch<'_>,
        begun: bool,
        gather: bool,
    ) -> Result<(), StoreError> {
        let result = self.try_batch_inner(batch, begun, gather);
        if result.is_err() && !self.conn.is_autocommit() {
            // The error at hand says what failed; if the rollback fails too, SQLite has
            // rolled back already or the connection is gone, which the next write will report.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    fn try_batch_inner(
        &mut self,
        batch: &mut Batch<'_>,
        begun: bool,
        gather: bool,
    ) -> Result<(), StoreError> {
        if !begun {
            self.exec("BEGIN IMMEDIATE")?;
            // The writes that came while the `BEGIN` waited (for another connection's lock,
            // say) share its commit rather than wait for the next.
            if let Some(queued) = batch.queued.as_deref_mut() {
                self.drain(queued, MAX_BATCH);
            }
        }
        // A write alone in its batch needs no savepoint: if it fails, the whole transaction
        // is rolled back, which undoes exactly that write.
        let applied = if batch.len() == 1 && !gather {
            self.apply_each(batch, false)?
        } else {
            // Writes that share the transaction go in one pass with no savepoint of their own
            // (a savepoint each copied every page a write touched into the statement journal
            // first: a tenth of the concurrent bench's time). A write refused before it changed
            // anything needs nothing undone; should one fail after changing rows, the batch
            // goes back to its savepoint and is applied again, each write in a savepoint.
            // In a burst, the writes that come meanwhile are applied as they come, until a
            // pause brings none: the SQL of the first ones overlaps the others' coming.
            self.exec("SAVEPOINT batch")?;
            let (mut applied, mut from, mut pauses) = (0, 0, 0);
            let clean = loop {
                match self.apply_all(batch, from)? {
                    Some(more) => applied += more,
                    None => break false,
                }
                from = batch.len();
                if !gather || !self.more(batch, &mut pauses) {
                    break true;
                }
            };
            if !clean {
                self.exec("ROLLBACK TO batch")?;
                applied = self.apply_each(batch, true)?;
            }
            self.exec("RELEASE batch")?;
            applied
        };
        if applied == 0 {
            self.exec("ROLLBACK")?;
        } else {
            #[cfg(feature = "fault-injection")]
            sagaflow_core::fault::hit(sagaflow_core::fault::Point::BeforeCommit);
            self.exec("COMMIT")?;
            #[cfg(feature = "fault-injection")]
            sagaflow_core::fault::hit(sagaflow_core::fault::Point::AfterCommit);
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            self.gathering.committed(batch.len());
        }
        Ok(())
    }

    /// In a burst: pauses once, and takes the writes that came meanwhile into `batch` (`true`
    /// if any did), unless the batch has had its [`gather::PAUSES`] pauses (counted in
    /// `pauses`) or is full.
    fn more(&mut self, batch: &mut Batch<'_>, pauses: &mut usize) -> bool {
        let Some(queued) = batch.queued.as_deref_mut() else {
            return false;
        };
        if *pauses >= gather::PAUSES || queued.len() >= MAX_BATCH {
            return false;
        }
        *pauses += 1;
        std::thread::sleep(gather::PAUSE);
        let before = queued.len();
        self.drain(queued, MAX_BATCH);
        queued.len() > before
    }

    /// Applies every write of `batch` from its `from`th with no savepoint between them: how
    /// many applied, or `None` if one failed having changed rows (which only its own savepoint
    /// could undo).
    fn apply_all(&self, batch: &mut Batch<'_>, from: usize) -> Result<Option<usize>, StoreError> {
        let mut applied = 0_usize;
        for pending in batch.iter_mut().skip(from) {
            let before = self.conn.total_changes();
            match pending.apply(&self.conn, &self.label) {
                Ok(()) => applied += 1,
                Err(error) => {
                    if self.conn.is_autocommit() {
                        // SQLite rolled the whole transaction back (a full disk, an I/O
                        // error): the writes before this one are gone too.
                        return Err(self.store_error(error));
                    }
                    if self.conn.total_changes() != before {
                        return Ok(None);
                    }
                    pending.refuse(self.store_error(error));
                }
            }
        }
        Ok(Some(applied))
    }

    /// Applies every write of `batch`, each in a savepoint of its own when `savepoints`, so
    /// that a write that fails is undone alone: how many applied.
    fn apply_each(&self, batch: &mut Batch<'_>, savepoints: bool) -> Result<usize, StoreError> {
        let mut applied = 0_usize;
        for pending in batch.iter_mut() {
            if savepoints {
                self.exec("SAVEPOINT write")?;
            }
            match pending.apply(&self.conn, &self.label) {
                Ok(()) => {
                    if savepoints {
                        self.exec("RELEASE write")?;
                    }
                    applied += 1;
                }
                Err(error) => {
                    let error = self.store_error(error);
                    if self.conn.is_autocommit() {
                        // SQLite rolled the whole transaction back (a full disk, an I/O
                        // error): the writes before this one are gone too.
                        return Err(error);
                    }
                    if savepoints {
                        self.exec("ROLLBACK TO write")?;
                        self.exec("RELEASE write")?;
                    }
                    pending.refuse(error);
                }
            }
        }
        Ok(applied)
    }

    /// Runs one of the writer's fixed statements, prepared once and kept.
    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .map_err(|e| sqlite_error(&self.label, &e))
    }

    fn store_error(&self, error: ApplyError) -> StoreError {
        match error {
            ApplyError::Sqlite(e) => sqlite_error(&self.label, &e),
            ApplyError::Refused(e) => e,
        }
    }
}
