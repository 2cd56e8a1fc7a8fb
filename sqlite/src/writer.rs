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
//!   writes in one `BEGIN IMMEDIATE` transaction (each inside a savepoint, so one refused
//!   write is undone alone), commits once, and only then acknowledges each caller: many runs'
//!   checkpoints share one `fsync`, and no caller hears "recorded" before its write is
//!   durable. While a commit is in progress, new requests queue up for the next batch, so the
//!   batch grows exactly when the load does.
//!
//! If the transaction as a whole fails (the commit fails, or SQLite rolls the transaction back
//! after an error such as a full disk), every write of the batch is applied again in a
//! transaction of its own, so a write that cannot be committed fails only its own caller. A
//! lock held past the busy timeout is the exception: it would hold for every retry too, so
//! the whole batch fails with [`StoreError::Busy`] at once rather than wait once per write.
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

use crate::SqliteOptions;
use crate::error::sqlite_error;
use crate::events::Publisher;
use crate::lease::Leases;
use crate::rows::{self, Applied, ApplyError, WriteOp};
use sagaflow_core::runtime::error::StoreError;

/// The most writes one transaction takes; the rest wait for the next one. Bounds the work a
/// failed batch redoes and the time a read waits.
const MAX_BATCH: usize = 4096;

/// The answer to one write.
pub(crate) type Answer = Result<Applied, StoreError>;

/// What a caller asks of the writer thread.
pub(crate) enum Request {
    /// Apply a write and report after its commit.
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Answer>,
    },
    /// Run a read on the connection, outside any write transaction. The closure sends its own
    /// reply.
    Read(ReadFn),
}

/// A read on the writer's connection; it is handed the connection and the file's label, and
/// returns the delivery of its answer, which the writer makes once it has let go of the lock.
pub(crate) type ReadFn = Box<dyn FnOnce(&Connection, &str) -> Deliver + Send>;

/// Delivers a read's answer.
pub(crate) type Deliver = Box<dyn FnOnce() + Send>;

/// Who hears a write's answer.
enum Reply {
    /// A caller awaiting it.
    Caller(oneshot::Sender<Answer>),
    /// The caller committing the batch itself: the answer is its return value.
    Leader,
}

/// A write waiting for its commit.
struct Pending {
    op: WriteOp,
    reply: Reply,
}

/// What [`Writer::commit_here`] did with a write.
pub(crate) enum Inline {
    /// Committed (or refused) on the caller's thread.
    Done(Answer),
    /// Another connection holds the database: the writer thread, which may wait for it, has
    /// the write now.
    Handed(oneshot::Receiver<Answer>),
    /// The connection is in use: the write is given back, to be queued.
    Busy(WriteOp),
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
    thread: OnceLock<Thread>,
    /// Whether a caller may commit on its own thread (`SqliteOptions::commit_on_caller`).
    on_caller: bool,
}

/// Everything a commit needs; whoever holds the lock on it commits.
struct Core {
    conn: Connection,
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
    handed: Vec<Pending>,
    /// Reads that a committing caller took from the queue, left to the writer thread.
    reads: Vec<ReadFn>,
    /// Answers to callers, sent once the lock is let go: a caller woken by its answer then
    /// finds the connection free and commits its next write on its own thread, instead of
    /// queueing behind a writer thread that still holds the lock.
    outbox: Vec<(oneshot::Sender<Answer>, Answer)>,
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
        Self {
            on_caller: options.commit_on_caller,
            core: Mutex::new(Core {
                conn,
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
                core.leases.renew(&core.conn, &core.label);
                beat = Instant::now() + period;
            }
            let open = core.serve();
            let outbox = std::mem::take(&mut core.outbox);
            let read_outbox = std::mem::take(&mut core.read_outbox);
            drop(core);
            send_all(outbox);
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
        core.leases.give_up(&core.conn, &core.label);
    }

    /// Commits `op` on the caller's thread if the connection is free, with every write queued
    /// meanwhile; see the module's documentation.
    pub(crate) fn commit_here(&self, op: WriteOp) -> Inline {
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
            let (reply, answer) = oneshot::channel();
            core.handed.push(Pending {
                op,
                reply: Reply::Caller(reply),
            });
            drop(core);
            self.wake();
            return Inline::Handed(answer);
        }
        let mut batch = vec![Pending {
            op,
            reply: Reply::Leader,
        }];
        let drained = core.drain(&mut batch);
        let before = core.stats.commits.load(Ordering::Relaxed);
        let answer = core.commit_group(batch, true);
        let committed = core.stats.commits.load(Ordering::Relaxed) - before;
        core.stats
            .commits_on_caller
            .fetch_add(committed, Ordering::Relaxed);
        let more = drained.closed || drained.full || !core.reads.is_empty();
        let outbox = std::mem::take(&mut core.outbox);
        drop(core);
        send_all(outbox);
        if more {
            self.wake();
        }
        Inline::Done(answer.unwrap_or_else(|| {
            Err(StoreError::Backend(
                "internal: a committed write lost its answer".to_owned(),
            ))
        }))
    }
}

impl Reply {
    /// Delivers `answer`: into `outbox` for the caller awaiting it, or back, for the leader.
    fn send(
        self,
        answer: Answer,
        outbox: &mut Vec<(oneshot::Sender<Answer>, Answer)>,
    ) -> Option<Answer> {
        match self {
            Reply::Caller(reply) => {
                outbox.push((reply, answer));
                None
            }
            Reply::Leader => Some(answer),
        }
    }
}

/// Sends the answers, once the lock is let go. A caller that stopped waiting has nothing to
/// hear.
fn send_all(outbox: Vec<(oneshot::Sender<Answer>, Answer)>) {
    for (reply, answer) in outbox {
        let _ = reply.send(answer);
    }
}

impl Core {
    /// Commits what was handed over and what is queued, batch after batch, then runs the
    /// reads. `false` once the store is closing and the queue is empty.
    fn serve(&mut self) -> bool {
        loop {
            let mut batch = std::mem::take(&mut self.handed);
            let drained = self.drain(&mut batch);
            if !batch.is_empty() {
                self.commit_group(batch, false);
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

    /// Moves the queued writes into `batch` (up to [`MAX_BATCH`]) and the reads aside.
    fn drain(&mut self, batch: &mut Vec<Pending>) -> Drained {
        loop {
            if batch.len() >= MAX_BATCH {
                return Drained {
                    closed: false,
                    full: true,
                };
            }
            match self.requests.try_recv() {
                Ok(Request::Write { op, reply }) => batch.push(Pending {
                    op,
                    reply: Reply::Caller(reply),
                }),
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
    /// answers each write, or, if the transaction as a whole fails, commits each write on its
    /// own. Events go out before the answers, so a caller whose write is acknowledged knows
    /// its event has been published. Returns the leader's answer, if it is in the batch.
    fn commit_group(&mut self, batch: Vec<Pending>, begun: bool) -> Option<Answer> {
        let mut leader = None;
        match self.try_batch(&batch, begun) {
            Ok(results) => {
                self.publisher.publish(
                    batch
                        .iter()
                        .zip(&results)
                        .map(|(pending, result)| (&pending.op, result.as_ref().ok())),
                );
                for (pending, result) in batch.into_iter().zip(results) {
                    if result.is_ok() {
                        self.stats.writes.fetch_add(1, Ordering::Relaxed);
                    }
                    leader = leader.or(pending.reply.send(result, &mut self.outbox));
                }
            }
            Err(error) if batch.len() == 1 || error.is_busy() => {
                for pending in batch {
                    leader = leader.or(pending.reply.send(Err(error.clone()), &mut self.outbox));
                }
            }
            Err(error) => {
                tracing::debug!(
                    %error,
                    writes = batch.len(),
                    "group commit failed; committing its writes one by one"
                );
                for pending in batch {
                    leader = leader.or(self.commit_group(vec![pending], false));
                }
            }
        }
        leader
    }

    /// One transaction for `batch` (`begun`: already open): each write's own result, or the
    /// error that lost the transaction (nothing of the batch is then committed).
    fn try_batch(&self, batch: &[Pending], begun: bool) -> Result<Vec<Answer>, StoreError> {
        let result = self.try_batch_inner(batch, begun);
        if result.is_err() && !self.conn.is_autocommit() {
            // The error at hand says what failed; if the rollback fails too, SQLite has
            // rolled back already or the connection is gone, which the next write will report.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    fn try_batch_inner(&self, batch: &[Pending], begun: bool) -> Result<Vec<Answer>, StoreError> {
        if !begun {
            self.exec("BEGIN IMMEDIATE")?;
        }
        let mut results = Vec::with_capacity(batch.len());
        // A write alone in its batch needs no savepoint: if it fails, the whole transaction
        // is rolled back, which undoes exactly that write.
        if let [pending] = batch {
            let result = rows::apply(&self.conn, &self.label, &pending.op);
            return match result {
                Ok(outcome) => {
                    #[cfg(feature = "fault-injection")]
                    sagaflow_core::fault::hit(sagaflow_core::fault::Point::BeforeCommit);
                    self.exec("COMMIT")?;
                    #[cfg(feature = "fault-injection")]
                    sagaflow_core::fault::hit(sagaflow_core::fault::Point::AfterCommit);
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    results.push(Ok(outcome));
                    Ok(results)
                }
                Err(error) => {
                    let error = self.store_error(error);
                    if self.conn.is_autocommit() {
                        return Err(error);
                    }
                    self.exec("ROLLBACK")?;
                    results.push(Err(error));
                    Ok(results)
                }
            };
        }
        let mut applied = 0_usize;
        for pending in batch {
            self.exec("SAVEPOINT write")?;
            match rows::apply(&self.conn, &self.label, &pending.op) {
                Ok(outcome) => {
                    self.exec("RELEASE write")?;
                    applied += 1;
                    results.push(Ok(outcome));
                }
                Err(error) => {
                    let error = self.store_error(error);
                    if self.conn.is_autocommit() {
                        // SQLite rolled the whole transaction back (a full disk, an I/O
                        // error): the writes before this one are gone too.
                        return Err(error);
                    }
                    self.exec("ROLLBACK TO write")?;
                    self.exec("RELEASE write")?;
                    results.push(Err(error));
                }
            }
        }
        if applied == 0 {
            self.exec("ROLLBACK")?;
        } else {
            #[cfg(feature = "fault-injection")]
            sagaflow_core::fault::hit(sagaflow_core::fault::Point::BeforeCommit);
            self.exec("COMMIT")?;
            #[cfg(feature = "fault-injection")]
            sagaflow_core::fault::hit(sagaflow_core::fault::Point::AfterCommit);
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(results)
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
