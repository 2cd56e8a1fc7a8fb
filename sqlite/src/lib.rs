//! sagaflow's durable store: runs, steps and events in a SQLite file.
//!
//! ```
//! use sagaflow_core::runtime::{Builder, Engine, StepError, Store, StoredRunStatus};
//! use sagaflow_core::StepOptions;
//! use sagaflow_sqlite::SqliteEngine as _; // Engine::open
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("sagaflow.db");
//! let mut b = Builder::<u32>::new("Double");
//! let input = b.input();
//! let out = b.step("double", StepOptions::new(), (input,), |_, (x,)| async move {
//!     Ok::<_, StepError>(*x * 2)
//! });
//! let def = b.build_with_output(out);
//!
//! let engine = Engine::open(&path)?; // created, migrated, WAL, synchronous = FULL
//! engine.start(&def, "run-1", 21).await?.wait().await?;
//! let stored = engine.store().load_run(&"run-1".into()).await?.expect("stored");
//! assert_eq!(stored.status, StoredRunStatus::Completed);
//! assert_eq!(stored.steps[0].output.as_deref(), Some("42"));
//! # Ok(())
//! # }
//! ```
//!
//! What it guarantees: a checkpoint is acknowledged only after the transaction that holds it
//! has committed (with `synchronous = FULL`, after the `fsync`); the checkpoints of many runs
//! share one commit (see `writer`); every change is also a row of the `events` table, in
//! commit order, which [`EventLog::events`] replays and which is published to the engines'
//! subscribers ([`Engine::subscribe`]) once committed; a database written by a newer
//! sagaflow, a file that is not a database, a lock held past the busy timeout and a full disk
//! are each a [`StoreError`] naming the file, never a panic, and never lose what was committed
//! before.
//!
//! Several processes may share the file: a run is taken up under a lease with a fencing token
//! ([`LeaseStore::acquire`]), renewed by the store while the run lives here; a run whose lease
//! expired is taken over by another process, and the old owner's next write is refused with
//! [`StoreError::Fenced`]; a run taken up more than [`SqliteOptions::max_recoveries`] times is
//! parked (see `lease`).
//!
//! [`LeaseStore::acquire`]: sagaflow_core::runtime::LeaseStore::acquire

mod clock;
mod error;
mod events;
pub mod inspect;
mod lease;
mod machines;
mod ops;
mod options;
mod owner;
mod reader;
mod replicas;
mod retention;
mod rows;
mod schema;
mod signals;
mod writer;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::engine::Engine;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::events::{Event, EventSink};
use sagaflow_core::runtime::store::{
    Change, Created, DeliveredSignal, EventLog, FreeRun, KnownGraph, NewRun, RunStore, SignalStore,
    StoredRun, UnfinishedRun,
};

use error::sqlite_error;
use events::Publisher;
use lease::Leases;
use writer::{Inline, Op, Outcome, Request, Stats, Writer};

pub use machines::{Advanced, MachineStep, MachineTransition, StoredMachine};
pub use options::{SqliteOptions, Synchronous};
pub use schema::SCHEMA_VERSION;

/// A [`Store`](sagaflow_core::runtime::Store) on a SQLite database. Cheap to clone: clones share the writer thread, which
/// stops, closing the database, when the last clone is dropped; that drop waits for the batch
/// in hand (at most the busy timeout), so the file is released when the drop returns.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The file as the user named it, for error messages.
    label: Arc<str>,
    /// `None` only while dropping: closing the channel is what stops the writer thread.
    requests: Option<Sender<Request>>,
    /// The connection, shared by the callers that commit on their own thread and the writer
    /// thread.
    writer: Arc<Writer>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
    /// The engines' event sinks, which the writer publishes committed events to.
    publisher: Arc<Publisher>,
    /// The leases this store holds, shared with the writer, which renews them.
    leases: Arc<Leases>,
    /// The read connection of a database file; `None` in memory (reads then go to the
    /// writer's thread).
    reader: Option<reader::Reader>,
    /// Whether a step's completion and the next start share a row (`compact_log`).
    compact: bool,
    /// Holds the owner id for the store's life; dropped after the writer has given up the
    /// leases and closed its connection, so no other store takes the id before then.
    _owner: Option<owner::OwnerLock>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The read connection first, so that the writer's is the last one to close and
        // checkpoints the WAL into the file. Then close the channel and wait for the writer to
        // finish the batch in hand and close its connection, so the file is released when
        // the store is.
        self.reader = None;
        self.requests = None;
        self.writer.wake();
        if let Some(thread) = self.thread.take() {
            // The writer never panics by design; if it did, its callers have already been
            // told (their replies were dropped), and a drop has no one to report to.
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.label)
            .field("commits", &self.commits())
            .field("reads", &self.reads())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens or creates the database at `path`, sets its pragmas (WAL, `synchronous`, busy
    /// timeout, foreign keys), applies the migrations it lacks, and starts the writer thread.
    ///
    /// Errors: [`StoreError::Open`] for a file that cannot be opened or is not a database,
    /// [`StoreError::SchemaTooNew`] for a database written by a newer sagaflow,
    /// [`StoreError::Busy`] if another connection holds it locked past the busy timeout.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref();
        let label: Arc<str> = path.display().to_string().into();
        let conn = schema::open(Some(path), &label, &options)?;
        let (owner, lock) = owner::claim(path, &label, options.owner.as_deref())?;
        Self::start(conn, label, &options, Some(path), owner, lock)
    }

    /// A store on a new, private SQLite database in memory: the real schema and SQL, no file.
    /// Its runs end with it. `synchronous` does not apply.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::in_memory_with(SqliteOptions::default())
    }

    /// [`in_memory`](Self::in_memory) with `options`; `synchronous` and `owner` do not apply
    /// (the owner is random).
    pub fn in_memory_with(options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let label: Arc<str> = ":memory:".into();
        let conn = schema::open(None, &label, &options)?;
        Self::start(conn, label, &options, None, lease::random_owner(), None)
    }

    /// Starts the writer on `conn` and, for a file at `path`, the reader; leases are held
    /// under `owner`, which `lock` holds.
    fn start(
        conn: rusqlite::Connection,
        label: Arc<str>,
        options: &SqliteOptions,
        path: Option<&Path>,
        owner: String,
        lock: Option<owner::OwnerLock>,
    ) -> Result<SqliteStore, StoreError> {
        let stats = Arc::new(Stats::default());
        // Opened after the writer's connection has brought the schema up to date. A reader
        // that cannot open is not fatal: reads go to the writer's thread, as in memory.
        let reader = path.and_then(|path| {
            reader::Reader::open(path, Arc::clone(&label), options, Arc::clone(&stats))
                .inspect_err(
                    |error| tracing::warn!(%error, "reads will share the writer's connection"),
                )
                .ok()
        });
        let leases = Arc::new(Leases::new(owner, options.lease, options.max_recoveries));
        let publisher = Arc::new(Publisher::new(events::head(&conn, &label)?));
        let (requests, receiver) = mpsc::channel();
        let writer = Arc::new(Writer::new(
            conn,
            Arc::clone(&label),
            Arc::clone(&stats),
            Arc::clone(&publisher),
            Arc::clone(&leases),
            receiver,
            options,
        ));
        let serving = Arc::clone(&writer);
        let (ready_sender, ready) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("sagaflow-sqlite".to_owned())
            .spawn(move || serving.run(ready_sender))
            .map_err(|e| StoreError::Open {
                path: label.to_string(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        writer.set_thread(handle.thread().clone());
        // The writer's first round done (or the thread gone: its error shows at the first
        // write); bounded, so a thread that never runs cannot hang the open.
        let _ = ready.recv_timeout(Duration::from_secs(5));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                label,
                requests: Some(requests),
                writer,
                thread: Some(handle),
                stats,
                publisher,
                leases,
                reader,
                compact: options.compact_log,
                _owner: lock,
            }),
        })
    }

    /// The id this store holds leases under.
    pub fn owner(&self) -> &str {
        self.inner.leases.owner()
    }

    /// How many runs' leases this store holds: the runs it runs. A run's lease is let go when
    /// the run ends, however it ends, so this does not grow with the runs finished.
    pub fn leases_held(&self) -> usize {
        self.inner.leases.len()
    }

    /// Stops renewing this store's leases, as a process stalled (a long GC pause, a stopped
    /// VM) would: they expire, other processes may take the runs over, and this store's next
    /// write of such a run is refused with [`StoreError::Fenced`]. Writes still renew their
    /// own run's lease once it is more than half spent. For tests and drills; [`resume_heartbeats`](Self::resume_heartbeats)
    /// undoes it.
    pub fn pause_heartbeats(&self) {
        self.inner.leases.pause(true);
    }

    /// Renews this store's leases again after [`pause_heartbeats`](Self::pause_heartbeats).
    pub fn resume_heartbeats(&self) {
        self.inner.leases.pause(false);
    }

    /// The database file as it was named when opened (`:memory:` for an in-memory one).
    pub fn path(&self) -> &str {
        &self.inner.label
    }

    /// Transactions committed so far. With many writers at once it grows slower than
    /// [`writes`](Self::writes): that is the group commit at work.
    pub fn commits(&self) -> u64 {
        self.inner.stats.commits.load(Ordering::Relaxed)
    }

    /// Transactions committed on a caller's thread so far (see
    /// [`SqliteOptions::commit_on_caller`]); the rest of [`commits`](Self::commits) were
    /// committed by the writer thread.
    pub fn commits_on_caller(&self) -> u64 {
        self.inner.stats.commits_on_caller.load(Ordering::Relaxed)
    }

    /// Writes (run creations and recorded changes) committed so far.
    pub fn writes(&self) -> u64 {
        self.inner.stats.writes.load(Ordering::Relaxed)
    }

    /// Requests served on the writer's thread outside group commits so far: reads (loading
    /// runs, listing events, asking for signals) and the rare writes that go the same way
    /// (delivering a signal, creating a machine).
    pub fn reads(&self) -> u64 {
        self.inner.stats.reads.load(Ordering::Relaxed)
    }

    fn closed(&self) -> StoreError {
        StoreError::Backend(format!(
            "database `{}`: the store's writer has stopped",
            self.inner.label
        ))
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.inner
            .requests
            .as_ref()
            .ok_or_else(|| self.closed())?
            .send(request)
            .map_err(|_| self.closed())?;
        self.inner.writer.wake();
        Ok(())
    }

    /// Commits `op`: here and now if the connection is free and no burst of writes is on,
    /// else through the writer thread's next batch (see `writer` and `writer::gather`).
    async fn write<O: Op>(&self, op: O) -> Outcome<O> {
        let writer = &self.inner.writer;
        let op = if writer.burst() {
            op
        } else {
            match writer.commit_here(op) {
                Inline::Done(answer) => return answer,
                Inline::Handed(answer) => return answer.await.map_err(|_| self.closed())?,
                Inline::Busy(op) => op,
            }
        };
        let (request, answer) = Request::write(op);
        self.send(request)?;
        answer.await.map_err(|_| self.closed())?
    }

    /// Records `change`, and `then` with it in the same savepoint when given.
    async fn record_changes(
        &self,
        run_id: &RunId,
        change: &Change<'_>,
        then: Option<&Change<'_>>,
    ) -> Result<(), StoreError> {
        let leases = &self.inner.leases;
        let op = ops::Record::new(
            run_id,
            (change, then),
            leases.token(run_id),
            leases.lease_ms(),
            self.inner.compact,
        )?;
        let sent = std::time::Instant::now();
        let result = self.write(op).await.map(drop);
        match &result {
            Err(StoreError::Fenced { .. }) => leases.lost(run_id),
            Ok(())
                if matches!(
                    then.unwrap_or(change),
                    Change::RunCompleted | Change::RunFailed { .. } | Change::RunCancelled
                ) =>
            {
                leases.forget(run_id);
            }
            Ok(()) => leases.written(run_id, sent),
            Err(_) => {}
        }
        result
    }

    /// Runs `read` on the read connection of a file (see `reader`), or on the writer's
    /// between two batches in memory. `read` must not write.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Connection, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.queue(read, true).await
    }

    /// Runs `exclusive` on the writer's connection, between two batches: for the rare
    /// requests that write outside a group commit, in a transaction of their own.
    async fn exclusive<T: Send + 'static>(
        &self,
        exclusive: impl FnOnce(&rusqlite::Connection, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.queue(exclusive, false).await
    }

    /// Queues `work` for the reader (if `on_reader` and there is one) or the writer's thread,
    /// and awaits its answer.
    async fn queue<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection, &str) -> Result<T, StoreError> + Send + 'static,
        on_reader: bool,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let work: writer::ReadFn = Box::new(move |conn, label| {
            let answer = work(conn, label);
            Box::new(move || {
                let _ = reply.send(answer);
            })
        });
        let queued = match self.inner.reader.as_ref().filter(|_| on_reader) {
            Some(reader) => reader.send(work),
            None => Err(work),
        };
        if let Err(work) = queued {
            self.send(Request::Read(work))?;
        }
        answer.await.map_err(|_| self.closed())?
    }
}

/// Runs in the `runs` table, steps and their outputs as events of the `events` log (which the
/// `steps` view reads); a checkpoint is acknowledged once its group commit is.
#[async_trait::async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError> {
        let leases = &self.inner.leases;
        let op = ops::CreateRun::new(run, leases.owner(), leases.lease_ms(), self.inner.compact)?;
        let (created, ..) = self.write(op).await?;
        if created == Created::New {
            leases.hold(run.run_id, 1);
        }
        Ok(created)
    }

    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError> {
        self.record_changes(run_id, change, None).await
    }

    async fn record_pair(
        &self,
        run_id: &RunId,
        first: &Change<'_>,
        then: &Change<'_>,
    ) -> Result<(), StoreError> {
        self.record_changes(run_id, first, Some(then)).await
    }

    fn records_changes(&self) -> bool {
        true
    }

    /// Every creation is a write of the writer: nothing is answered without waiting.
    fn create_run_now(&self, _: &NewRun<'_>) -> Option<Result<Created, StoreError>> {
        None
    }

    /// A finished run stays in the file, where [`RunStore::load_run`] finds it.
    fn forget(&self, _: &RunId) {}

    fn records_runs(&self) -> bool {
        true
    }

    fn keeps_finished_runs(&self) -> bool {
        true
    }

    async fn load_run(&self, run_id: &RunId) -> Result<Option<StoredRun>, StoreError> {
        let run_id = run_id.clone();
        self.read(move |conn, label| {
            // One read transaction, so the run and its steps are one snapshot even while
            // another process writes.
            conn.execute_batch("BEGIN DEFERRED")
                .map_err(|e| sqlite_error(label, &e))?;
            let result = rows::load_run(conn, label, run_id.as_str());
            let _ = conn.execute_batch("COMMIT");
            result
        })
        .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        self.read(rows::unfinished_runs).await
    }

    async fn stopped_runs(&self, workflow: &str) -> Result<Vec<RunId>, StoreError> {
        let workflow = workflow.to_owned();
        self.read(move |conn, label| rows::stopped_runs(conn, label, &workflow))
            .await
    }
}

/// Queues in the `runs` table: a queued run is a run with a queue and no owner (schema
/// version 9).
#[async_trait::async_trait]
impl sagaflow_core::runtime::QueueStore for SqliteStore {
    async fn enqueue(
        &self,
        run: &NewRun<'_>,
        on: sagaflow_core::runtime::store::Queueing<'_>,
    ) -> Result<Created, StoreError> {
        let op = ops::CreateRun::queued(run, on)?;
        let (created, ..) = self.write(op).await?;
        Ok(created)
    }

    async fn queued_runs(
        &self,
        queues: &[String],
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        if queues.is_empty() || known.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (queues, known) = (queues.to_vec(), known.to_vec());
        self.read(move |conn, label| lease::queued_runs(conn, label, &queues, &known, limit))
            .await
    }

    async fn claim(
        &self,
        queue: &str,
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        if known.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let leases = &self.inner.leases;
        let op = ops::Claim {
            queue: queue.to_owned(),
            known: known.to_vec(),
            owner: leases.owner().to_owned(),
            lease_ms: leases.lease_ms(),
            limit,
        };
        self.write(op).await
    }

    async fn admit(
        &self,
        run_id: &RunId,
        queue: &str,
        bounds: &sagaflow_core::runtime::store::Admission,
    ) -> Result<sagaflow_core::runtime::store::Admitted, StoreError> {
        let leases = &self.inner.leases;
        let op = ops::Admit {
            run_id: run_id.as_str().to_owned(),
            queue: queue.to_owned(),
            owner: leases.owner().to_owned(),
            lease_ms: leases.lease_ms(),
            bounds: *bounds,
        };
        self.write(op).await
    }

    /// None: processes on one file have no channel between them; the serving engines poll.
    fn queue_notices(&self) -> Option<sagaflow_core::runtime::store::SignalNotices> {
        None
    }
}

/// Signals in the `signals` table, numbered in the order they were committed.
#[async_trait::async_trait]
impl SignalStore for SqliteStore {
    async fn deliver_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &str,
    ) -> Result<bool, StoreError> {
        let (run_id, name, payload) = (run_id.clone(), name.to_owned(), payload.to_owned());
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        // Rare and small: its own transaction, on the writer's connection between batches.
        self.exclusive(move |conn, label| {
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| sqlite_error(label, &e))?;
            let result = signals::deliver(conn, label, run_id.as_str(), &name, &payload, at_ms);
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            conn.execute_batch(end)
                .map_err(|e| sqlite_error(label, &e))?;
            result
        })
        .await
    }

    /// SQLite tells no one of a commit: signals from other processes are found by polling.
    fn signal_notices(&self) -> Option<sagaflow_core::runtime::store::SignalNotices> {
        None
    }

    async fn signal(&self, run_id: &RunId, name: &str) -> Result<Option<String>, StoreError> {
        let (run_id, name) = (run_id.clone(), name.to_owned());
        self.read(move |conn, label| signals::read(conn, label, run_id.as_str(), &name))
            .await
    }

    async fn signal_position(&self) -> Result<Option<u64>, StoreError> {
        self.read(|conn, label| signals::position(conn, label).map(Some))
            .await
    }

    async fn signals_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeliveredSignal>, StoreError> {
        self.read(move |conn, label| signals::after(conn, label, after, limit))
            .await
    }
}

/// The `events` table, published to every engine on the store once committed.
#[async_trait::async_trait]
impl EventLog for SqliteStore {
    async fn events(
        &self,
        run_id: Option<&RunId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let run_id = run_id.cloned();
        self.read(move |conn, label| {
            events::read(
                conn,
                label,
                run_id.as_ref().map(RunId::as_str),
                after,
                limit,
            )
        })
        .await
    }

    fn attach_events(&self, sink: EventSink) -> bool {
        self.inner.publisher.attach(sink);
        true
    }
}

/// The engine's SQLite constructors: `Engine::open(path)` and its kin.
///
/// The engine lives in `sagaflow-core`, which knows no store but its in-memory one, so the
/// constructors that open a SQLite database come with this crate, as a trait that only
/// [`Engine`] implements. The facade's prelude (`use sagaflow::prelude::*`) brings it into
/// scope; without the prelude, `use sagaflow::SqliteEngine` (or `sagaflow_sqlite::SqliteEngine`).
///
/// Every constructor of an engine, with what it makes:
///
/// | constructor | store |
/// | --- | --- |
/// | `Engine::ephemeral()` | none kept: a [`MemoryStore`](sagaflow_core::runtime::MemoryStore) without history; runs live in memory |
/// | [`Engine::open`](SqliteEngine::open), [`open_with`](SqliteEngine::open_with) | a SQLite file ([`SqliteStore::open`]) |
/// | [`Engine::open_in_memory`](SqliteEngine::open_in_memory) | a SQLite database in memory ([`SqliteStore::in_memory`]) |
/// | `Engine::builder().store(store).build()` | any store, with the engine's limits set |
pub trait SqliteEngine: sealed::Sealed + Sized {
    /// An engine whose runs are recorded in the SQLite database at `path`, created if missing,
    /// with the default [`SqliteOptions`] (`synchronous = FULL`, a 5 s busy timeout).
    fn open(path: impl AsRef<Path>) -> Result<Self, StoreError>;

    /// An engine on the SQLite database at `path`, opened with `options`.
    fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError>;

    /// An engine on a real SQLite database in memory, not a mock: the durable engine's
    /// schema, checkpoints, event log and signals, with nothing on disk and nothing kept once
    /// it is dropped. For tests of the durable code paths (sagas need them);
    /// `Engine::ephemeral()` is the lighter engine that records nothing.
    fn open_in_memory() -> Result<Self, StoreError>;

    /// The old name of [`open_in_memory`](Self::open_in_memory).
    #[deprecated(
        since = "0.2.0",
        note = "renamed `Engine::open_in_memory`: a SQLite database in memory, not the in-memory store of `Engine::ephemeral`"
    )]
    fn in_memory() -> Result<Self, StoreError> {
        Self::open_in_memory()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sagaflow_core::runtime::Engine {}
}

impl SqliteEngine for Engine {
    fn open(path: impl AsRef<Path>) -> Result<Engine, StoreError> {
        Engine::open_with(path, SqliteOptions::default())
    }

    fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Engine, StoreError> {
        let store = SqliteStore::open(path, options)?;
        Ok(Engine::builder().store(Arc::new(store)).build())
    }

    fn open_in_memory() -> Result<Engine, StoreError> {
        let store = SqliteStore::in_memory()?;
        Ok(Engine::builder().store(Arc::new(store)).build())
    }
}
