//! The writer thread: the one owner of the connection, and the group commit.
//!
//! A SQLite database has one writer at a time, and a commit's cost is its `fsync`, whatever it
//! holds. So one thread owns the connection; callers send it requests and await a oneshot.
//! The thread takes every request that is waiting, applies all the writes in one
//! `BEGIN IMMEDIATE` transaction (each inside a savepoint, so one refused write is undone
//! alone), commits once, and only then acknowledges each caller: many runs' checkpoints share
//! one `fsync`, and no caller hears "recorded" before its write is durable. While it commits,
//! new requests queue up for the next batch, so the batch grows exactly when the load does.
//!
//! If the transaction as a whole fails (the commit fails, or SQLite rolls the transaction back
//! after an error such as a full disk), every write of the batch is applied again in a
//! transaction of its own, so a write that cannot be committed fails only its own caller. A
//! lock held past the busy timeout is the exception: it would hold for every retry too, so
//! the whole batch fails with [`StoreError::Busy`] at once rather than wait once per write.
//!
//! Reads go through this thread as well, between batches, on the same connection. Reads are
//! rare (recovery, inspection) and short, and one connection means a caller always reads its
//! own acknowledged writes, the in-memory database needs no shared cache, and there is one
//! place where locks and errors are handled. A read-only connection beside it is the upgrade
//! if reads ever compete with checkpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::runtime::error::StoreError;
use crate::sqlite::events::Publisher;
use crate::sqlite::lease::Leases;
use crate::sqlite::rows::{self, Applied, ApplyError, WriteOp};

/// The most writes one transaction takes; the rest wait for the next one. Bounds the work a
/// failed batch redoes and the time a read waits.
const MAX_BATCH: usize = 4096;

/// What a caller asks of the writer.
pub(crate) enum Request {
    /// Apply a write and report after its commit.
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    },
    /// Run a read on the connection, outside any write transaction. The closure sends its own
    /// reply.
    Read(ReadFn),
}

/// A read on the writer's connection; it is handed the connection and the file's label.
pub(crate) type ReadFn = Box<dyn FnOnce(&Connection, &str) + Send>;

/// A write waiting for its commit.
struct Pending {
    op: WriteOp,
    reply: oneshot::Sender<Result<Applied, StoreError>>,
}

/// Counters the writer keeps, shared with the store.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Transactions committed.
    pub(crate) commits: AtomicU64,
    /// Writes acknowledged as applied.
    pub(crate) writes: AtomicU64,
}

/// The writer: the connection and what it reports to.
pub(crate) struct Writer {
    conn: Connection,
    label: Arc<str>,
    stats: Arc<Stats>,
    /// Where committed events go live.
    publisher: Arc<Publisher>,
    /// The leases this store holds, which the writer renews between batches.
    leases: Arc<Leases>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        label: Arc<str>,
        stats: Arc<Stats>,
        publisher: Arc<Publisher>,
        leases: Arc<Leases>,
    ) -> Self {
        Self {
            conn,
            label,
            stats,
            publisher,
            leases,
        }
    }

    /// Serves requests until every sender is gone, then gives up the leases still held and
    /// returns, closing the connection (which checkpoints the WAL into the database file).
    /// Between batches, every [`Leases::heartbeat_period`], it renews the leases it holds.
    pub(crate) fn run(self, requests: Receiver<Request>) {
        let period = self.leases.heartbeat_period();
        let mut beat = Instant::now() + period;
        loop {
            if Instant::now() >= beat {
                self.leases.renew(&self.conn, &self.label);
                beat = Instant::now() + period;
            }
            let wait = beat.saturating_duration_since(Instant::now());
            let first = match requests.recv_timeout(wait) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut writes = Vec::new();
            let mut reads = Vec::new();
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Write { op, reply } => writes.push(Pending { op, reply }),
                    Request::Read(read) => reads.push(read),
                }
                if writes.len() >= MAX_BATCH {
                    break;
                }
                // Empty or disconnected alike: the batch is what is here now.
                next = requests.try_recv().ok();
            }
            if !writes.is_empty() {
                self.commit_group(writes);
            }
            for read in reads {
                read(&self.conn, &self.label);
            }
        }
        self.leases.give_up(&self.conn, &self.label);
    }

    /// Commits `batch` in one transaction, publishes its events and acknowledges each write,
    /// or, if the transaction as a whole fails, commits each write on its own. Events go out
    /// before the acknowledgements, so a caller whose write is acknowledged knows its event
    /// has been published.
    fn commit_group(&self, batch: Vec<Pending>) {
        match self.try_batch(&batch) {
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
                    // A caller that stopped waiting has nothing to hear.
                    let _ = pending.reply.send(result);
                }
            }
            Err(error) if batch.len() == 1 || error.is_busy() => {
                for pending in batch {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
            Err(error) => {
                tracing::debug!(
                    %error,
                    writes = batch.len(),
                    "group commit failed; committing its writes one by one"
                );
                for pending in batch {
                    self.commit_group(vec![pending]);
                }
            }
        }
    }

    /// One transaction for `batch`: each write's own result, or the error that lost the
    /// transaction (nothing of the batch is then committed).
    fn try_batch(&self, batch: &[Pending]) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
        let result = self.try_batch_inner(batch);
        if result.is_err() && !self.conn.is_autocommit() {
            // The error at hand says what failed; if the rollback fails too, SQLite has
            // rolled back already or the connection is gone, which the next write will report.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    fn try_batch_inner(
        &self,
        batch: &[Pending],
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
        self.exec("BEGIN IMMEDIATE")?;
        let mut results = Vec::with_capacity(batch.len());
        // A write alone in its batch needs no savepoint: if it fails, the whole transaction
        // is rolled back, which undoes exactly that write.
        if let [pending] = batch {
            let result = rows::apply(&self.conn, &self.label, &pending.op);
            return match result {
                Ok(outcome) => {
                    #[cfg(feature = "fault-injection")]
                    crate::fault::hit(crate::fault::Point::BeforeCommit);
                    self.exec("COMMIT")?;
                    #[cfg(feature = "fault-injection")]
                    crate::fault::hit(crate::fault::Point::AfterCommit);
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
            crate::fault::hit(crate::fault::Point::BeforeCommit);
            self.exec("COMMIT")?;
            #[cfg(feature = "fault-injection")]
            crate::fault::hit(crate::fault::Point::AfterCommit);
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
            .map_err(|e| rows::sqlite_error(&self.label, &e))
    }

    fn store_error(&self, error: ApplyError) -> StoreError {
        match error {
            ApplyError::Sqlite(e) => rows::sqlite_error(&self.label, &e),
            ApplyError::Refused(e) => e,
        }
    }
}
