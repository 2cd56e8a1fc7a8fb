//! sagaflow's PostgreSQL store: runs, checkpoints, leases, signals, the event log and machines
//! in a schema that every replica of a service shares.
//!
//! ```no_run
//! use sagaflow_core::runtime::{Builder, Engine, StepError};
//! use sagaflow_core::StepOptions;
//! use sagaflow_postgres::PostgresEngine as _; // Engine::connect
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut b = Builder::<u32>::new("Double");
//! let input = b.input();
//! let out = b.step("double", StepOptions::new(), (input,), |_, (x,)| async move {
//!     Ok::<_, StepError>(*x * 2)
//! });
//! let def = b.build_with_output(out);
//!
//! // Connected, the schema `sagaflow` created and migrated.
//! let engine = Engine::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! engine.start(&def, "run-1", 21).await?.wait().await?;
//! # Ok(())
//! # }
//! ```
//!
//! What it guarantees, as the SQLite store does (the same conformance suite runs on both):
//! a checkpoint is acknowledged only once the transaction that holds it has committed; the
//! checkpoints of many runs share one transaction and one round trip (see `writer`); a run's
//! step completion and its next step's start commit together; every change is a row of the
//! `events` table, numbered in commit order, which [`EventLog::events`] replays and which is
//! published to the engines' subscribers once committed; a run is taken up under a lease with
//! a fencing token ([`LeaseStore::acquire`]) that every write checks, timed by the server's
//! clock; a database with a newer schema is refused; every error names the server by its URL
//! without the password.
//!
//! [`LeaseStore::acquire`]: sagaflow_core::runtime::LeaseStore::acquire
//!
//! Behind a connection pooler in transaction mode (PgBouncer), see
//! [`PgOptions::transaction_pooling`]: unnamed statements, the settings set per transaction,
//! and signals found by polling.
//!
//! Tests on a paused tokio clock (`start_paused`) should not use this store: tokio moves a
//! paused clock forward whenever every task waits, the server's answers included, and the
//! writer bounds its wait for an answer with tokio's time (the statement timeout and 2 s), so
//! under a paused clock that bound would pass at once.

mod change;
mod claims;
mod connect;
mod error;
pub mod inspect;
mod lease;
mod machines;
mod notices;
mod options;
mod owner;
mod reads;
mod replicas;
mod retention;
mod schema;
mod session;
mod tail;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod writer;

use crate::tail::Tail;
use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, watch};

use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::engine::Engine;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::events::{Event, EventSink, Publisher};
use sagaflow_core::runtime::store::{
    Advanced, Change, Created, DeliveredSignal, EventLog, MachineStep, MachineStore,
    MachineTransition, NewRun, RunStore, SignalStore, StoredMachine, StoredRun, UnfinishedRun,
};

use change::ChangeRow;
use error::pool_error;
use lease::Leases;
use schema::Locks;
use session::Session;
use writer::{CreateRow, RecordRow, Stats, StoredGraphs, Write, Writer};

pub use options::PgOptions;
pub use schema::SCHEMA_VERSION;
pub use writer::trace::{BATCH_TRACE, BatchEvent};

/// A [`Store`](sagaflow_core::runtime::Store) on a PostgreSQL database. Cheap to clone: clones
/// share the writer and the pool; the writer stops, and the leases still held are given up,
/// when the last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The server's URL without its password, for error messages.
    label: Arc<str>,
    /// The schema the tables are in.
    schema: String,
    writes: mpsc::UnboundedSender<Write>,
    /// The writes waiting for the writers, and the writers' state, for a caller that commits
    /// its own write (`PgOptions::commit_on_caller`; none when it is off).
    queue: writer::Shared,
    slots: Arc<[writer::Slot]>,
    pool: Pool,
    /// How statements go on the pool's connections.
    session: Session,
    leases: Arc<Leases>,
    /// What the queue claims took up, for the take-ups that follow them.
    claims: claims::Claims,
    /// The owner id the leases are held under, and whether the store holds it now.
    owner: owner::Owner,
    publisher: Arc<Publisher>,
    /// What the writers committed, for the task that publishes the log (`tail`).
    tail: Arc<Tail>,
    tailing: tokio::task::JoinHandle<()>,
    locks: Locks,
    stats: Arc<Stats>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// The channel deliveries notify, and the task that listens to it (none behind a pooler
    /// in transaction mode, which drops notifications).
    channel: String,
    notices: Option<Notices>,
}

/// What the store's `LISTEN` connection hears (see `notices`), and its task.
struct Notices {
    signals: watch::Receiver<u64>,
    queues: watch::Receiver<u64>,
    freed: watch::Receiver<u64>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.heartbeat.abort();
        self.tailing.abort();
        if let Some(notices) = &self.notices {
            notices.listener.abort();
        }
        // Give the leases up, so that another replica need not wait for them to expire; on a
        // task, since a drop cannot wait. Without a runtime they expire on their own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pool, leases) = (self.pool.clone(), Arc::clone(&self.leases));
            let session = self.session.clone();
            let channel = std::mem::take(&mut self.channel);
            runtime.spawn(async move {
                if let Ok(mut client) = pool.get().await
                    && let Err(error) =
                        lease::give_up(&leases, &mut client, &session, &channel).await
                {
                    tracing::warn!(error = %error::describe(&error), "the leases could not be given up; they will expire");
                }
            });
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.inner.label)
            .field("owner", &self.inner.leases.owner())
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the server at `url` (`postgres://user:password@host:port/database`, or
    /// key=value pairs), creates the store's schema if missing, applies the migrations it
    /// lacks under an advisory lock, and starts the writer and the lease renewals.
    ///
    /// Errors: [`StoreError::Open`] for a URL that does not parse, a server that cannot be
    /// reached or refuses the login, or a schema name sagaflow does not use;
    /// [`StoreError::SchemaTooNew`] for a schema written by a newer sagaflow. Each names the
    /// URL without its password.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let config = options::parse(url)?;
        let label: Arc<str> = options::label(&config).into();
        options::check_schema(&label, &options.schema)?;
        let config = connect::configure(config, &options);
        let session = Session::new(&config, &options);
        let locks = Locks::of(&options.schema);

        let client = connect::connect(&config, &label).await?;
        schema::migrate(&client, &session, &label, &options.schema, locks).await?;
        let publisher = Arc::new(Publisher::sparse(
            reads::head(&session.on(&client), &label).await?,
        ));
        drop(client);

        let manager = connect::manager(&config);
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .build()
            .map_err(|e| StoreError::Open {
                path: label.to_string(),
                message: format!("cannot make the pool of connections: {e}"),
            })?;

        let channel = notices::channel(&options.schema);
        let notices = (!session.pooled()).then(|| {
            let (signals, heard) = watch::channel(0);
            let (queues, queued) = watch::channel(0);
            let (freed, handed) = watch::channel(0);
            let listener = tokio::spawn(notices::listen(
                config.clone(),
                Arc::clone(&label),
                channel.clone(),
                Arc::new(notices::Notify {
                    signals,
                    queues,
                    freed,
                }),
            ));
            Notices {
                signals: heard,
                queues: queued,
                freed: handed,
                listener,
            }
        });

        let owner = owner::claim(
            &config,
            &label,
            &options.schema,
            options.owner.as_deref(),
            options.lease,
        )
        .await?;
        let leases = Arc::new(Leases::new(
            owner.id().to_owned(),
            options.lease,
            options.max_recoveries,
        ));
        let stats = Arc::new(Stats::default());
        let tail = Arc::new(Tail::default());
        let tailing = tokio::spawn(tail::run(
            Arc::clone(&tail),
            Arc::clone(&publisher),
            pool.clone(),
            session.clone(),
            Arc::clone(&label),
        ));
        let (writes, queue) = mpsc::unbounded_channel();
        let queue: writer::Shared = Arc::new(writer::Queue::new(queue));
        let graphs = Arc::new(StoredGraphs::default());
        let mut writers = Vec::with_capacity(options.writers.max(1));
        for i in 0..options.writers.max(1) {
            let key = match i {
                0 => owner.id().to_owned(),
                i => format!("{}/w{i}", owner.id()),
            };
            let mut writer = Writer::new(
                config.clone(),
                Arc::clone(&label),
                key,
                (Arc::clone(&publisher), Arc::clone(&tail)),
                Arc::clone(&stats),
                Arc::clone(&graphs),
                &options,
            );
            writer.connect().await?;
            writers.push(writer);
        }
        let writers: Arc<[writer::Slot]> = writers
            .into_iter()
            .map(|writer| Arc::new(tokio::sync::Mutex::new(writer)))
            .collect();
        for own in 0..writers.len() {
            tokio::spawn(Writer::run(own, Arc::clone(&writers), Arc::clone(&queue)));
        }
        let slots = if options.commit_on_caller {
            writers
        } else {
            Arc::from([])
        };
        let heartbeat = tokio::spawn(heartbeat(
            Arc::downgrade(&leases),
            owner.held(),
            pool.clone(),
            session.clone(),
            Arc::clone(&label),
        ));
        Ok(PgStore {
            inner: Arc::new(Inner {
                label,
                schema: options.schema.clone(),
                writes,
                queue,
                slots,
                pool,
                session,
                leases,
                claims: claims::Claims::default(),
                owner,
                publisher,
                tail,
                tailing,
                locks,
                stats,
                heartbeat,
                channel,
                notices,
            }),
        })
    }

    /// The server, as the store's errors name it: its URL without the password.
    pub fn url(&self) -> &str {
        &self.inner.label
    }

    /// The id this store holds leases under.
    pub fn owner(&self) -> &str {
        self.inner.leases.owner()
    }

    /// How many runs' leases this store holds: the runs it runs.
    pub fn leases_held(&self) -> usize {
        self.inner.leases.len()
    }

    /// Stops renewing this store's leases, as a stalled process would: they expire, other
    /// replicas may take the runs over, and this store's next write of such a run is refused
    /// with [`StoreError::Fenced`]. For tests and drills; [`resume_heartbeats`](Self::resume_heartbeats)
    /// undoes it.
    pub fn pause_heartbeats(&self) {
        self.inner.leases.pause(true);
    }

    /// Renews this store's leases again after [`pause_heartbeats`](Self::pause_heartbeats).
    pub fn resume_heartbeats(&self) {
        self.inner.leases.pause(false);
    }

    /// Transactions the writer committed so far. With many runs writing at once it grows
    /// slower than [`writes`](Self::writes): that is the group commit at work.
    pub fn commits(&self) -> u64 {
        self.inner.stats.commits.load(Ordering::Relaxed)
    }

    /// Runs taken up from a claim so far: their lease (and, for a run that had not started,
    /// what a take-up reads) came back with the claim, with no statement of their own. A
    /// claim is a queue's (`QueueStore::claim`) or the listing of the runs free to take over
    /// (`LeaseStore::free_runs`).
    pub fn take_ups_from_claims(&self) -> u64 {
        self.inner.claims.answered()
    }

    /// Writes their callers took to the server themselves, in their own tasks
    /// ([`PgOptions::commit_on_caller`]); the rest went through the writers' tasks.
    pub fn writes_on_caller(&self) -> u64 {
        self.inner.stats.on_caller.load(Ordering::Relaxed)
    }

    /// Writes (run creations and recorded changes) the writer committed so far.
    pub fn writes(&self) -> u64 {
        self.inner.stats.writes.load(Ordering::Relaxed)
    }

    fn closed(&self) -> StoreError {
        StoreError::Backend(format!(
            "database `{}`: the store's writer has stopped",
            self.inner.label
        ))
    }

    /// Hands `write` to the writers and awaits its answer; or, when no writer is busy and the
    /// writes come one at a time, commits it in this task (`PgOptions::commit_on_caller`).
    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let inner = &self.inner;
        match writer::free_writer(&inner.slots, &inner.queue) {
            Some(writer) => writer::commit_here(writer, make(reply), &inner.queue).await,
            None => {
                inner.queue.sent();
                inner.writes.send(make(reply)).map_err(|_| self.closed())?;
            }
        }
        answer.await.map_err(|_| self.closed())?
    }

    /// A connection of the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| pool_error(&self.inner.label, &e))
    }

    /// Records `change`, and `then` with it in the same transaction when given.
    async fn record_changes(
        &self,
        run_id: &RunId,
        change: &Change<'_>,
        then: Option<&Change<'_>>,
    ) -> Result<(), StoreError> {
        let leases = &self.inner.leases;
        let (token, fresh) = leases.for_write(run_id);
        let row = RecordRow {
            run_id: run_id.clone(),
            change: ChangeRow::of(run_id, change)?,
            then: then.map(|then| ChangeRow::of(run_id, then)).transpose()?,
            token: lease::write_token(token),
            lease_ms: leases.lease_ms(),
            renew: !fresh,
        };
        let ends = row.then.as_ref().unwrap_or(&row.change).ends_run();
        let sent = std::time::Instant::now();
        let result = self.write(|reply| Write::Record(row, reply)).await;
        match &result {
            Err(StoreError::Fenced { .. }) => leases.lost(run_id),
            Ok(()) if ends => leases.forget(run_id),
            Ok(()) => leases.written(run_id, sent),
            Err(_) => {}
        }
        result
    }
}

/// Renews the leases every third of the lease, until the store is gone; not while the store
/// does not hold its owner id (see `owner`).
async fn heartbeat(
    leases: Weak<Leases>,
    held: owner::Held,
    pool: Pool,
    session: Session,
    label: Arc<str>,
) {
    let Some(period) = leases.upgrade().map(|l| l.heartbeat_period()) else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(leases) = leases.upgrade() else {
            return;
        };
        if !held.get() {
            tracing::debug!(
                owner = leases.owner(),
                "the owner id is not held: no renewal"
            );
            continue;
        }
        if let Err(error) = lease::renew(&leases, &pool, &session, &label).await {
            // Not renewed this time; the next tick tries again, well before the expiry.
            tracing::warn!(%error, "the leases could not be renewed");
        }
    }
}

/// Runs in the `runs` table, steps and their outputs in the event log (the `steps` view reads
/// them off it); a checkpoint is acknowledged once its group commit is.
#[async_trait::async_trait]
impl RunStore for PgStore {
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError> {
        let leases = &self.inner.leases;
        let owner = (leases.owner().to_owned(), leases.lease_ms());
        let row = CreateRow::of(run, Some(owner), None)?;
        let created = self.write(|reply| Write::Create(row, reply)).await?;
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

    /// A finished run stays in the database, where [`RunStore::load_run`] finds it.
    fn forget(&self, _: &RunId) {}

    fn records_runs(&self) -> bool {
        true
    }

    fn keeps_finished_runs(&self) -> bool {
        true
    }

    async fn load_run(&self, run_id: &RunId) -> Result<Option<StoredRun>, StoreError> {
        // The take-up of a run this store's claim read whole (it had no step yet).
        if let Some(run) = self.inner.claims.load(run_id) {
            return Ok(Some(run));
        }
        let client = self.client().await?;
        reads::load_run(
            &client,
            &self.inner.session,
            &self.inner.label,
            run_id.as_str(),
        )
        .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        let client = self.client().await?;
        reads::unfinished_runs(&self.inner.session.on(&client), &self.inner.label).await
    }

    async fn stopped_runs(&self, workflow: &str) -> Result<Vec<RunId>, StoreError> {
        let client = self.client().await?;
        reads::stopped_runs(&self.inner.session.on(&client), &self.inner.label, workflow).await
    }
}

/// Signals in the `signals` table, numbered in commit order.
#[async_trait::async_trait]
impl SignalStore for PgStore {
    async fn deliver_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &str,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        reads::deliver_signal(
            &mut client,
            &self.inner.session,
            &self.inner.label,
            self.inner.locks,
            &self.inner.channel,
            (run_id.as_str(), name, payload),
        )
        .await
    }

    /// Notices from the store's `LISTEN` connection (see `notices`); none behind a pooler in
    /// transaction mode, where the engine polls.
    fn signal_notices(&self) -> Option<sagaflow_core::runtime::store::SignalNotices> {
        self.inner
            .notices
            .as_ref()
            .map(|notices| notices.signals.clone())
    }

    async fn signal(&self, run_id: &RunId, name: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        reads::signal(
            &self.inner.session.on(&client),
            &self.inner.label,
            run_id.as_str(),
            name,
        )
        .await
    }

    async fn signal_position(&self) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        reads::signal_position(&self.inner.session.on(&client), &self.inner.label)
            .await
            .map(Some)
    }

    async fn signals_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeliveredSignal>, StoreError> {
        let client = self.client().await?;
        reads::signals_after(
            &self.inner.session.on(&client),
            &self.inner.label,
            after,
            limit,
        )
        .await
    }
}

/// How long [`EventLog::events`] (and the inspector's `events`) waits for the events committed
/// before it to come below the horizon.
pub(crate) const COMMITTED_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The `events` table, published to every engine on the store once committed.
#[async_trait::async_trait]
impl EventLog for PgStore {
    async fn events(
        &self,
        run_id: Option<&RunId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        // Read what was committed: what this store or any other committed before the call is
        // below the horizon as soon as the transactions that took their numbers before it end
        // (milliseconds); a transaction that stays open longer (on any database of the
        // server) is not waited for past `COMMITTED_WAIT`, and the answer is then the part of
        // the log that is final.
        let mine = self.inner.tail.mine();
        let deadline = tokio::time::Instant::now() + COMMITTED_WAIT;
        loop {
            let reads::Page {
                events,
                horizon,
                latest,
            } = reads::events(
                &self.inner.session.on(&client),
                &self.inner.label,
                run_id.map(RunId::as_str),
                after,
                limit,
            )
            .await?;
            if horizon > mine.max(latest)
                || events.len() == limit
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(events);
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    fn attach_events(&self, sink: EventSink) -> bool {
        self.inner.publisher.attach(sink);
        true
    }
}

/// Machines in the `machines` and `machine_transitions` tables.
#[async_trait::async_trait]
impl MachineStore for PgStore {
    async fn load_machine(&self, id: &str) -> Result<Option<StoredMachine>, StoreError> {
        let client = self.client().await?;
        machines::load(&self.inner.session.on(&client), &self.inner.label, id).await
    }

    async fn insert_machine(
        &self,
        id: &str,
        machine: &str,
        state: &str,
    ) -> Result<(StoredMachine, bool), StoreError> {
        let mut client = self.client().await?;
        machines::insert(
            &mut client,
            &self.inner.session,
            &self.inner.label,
            (id, machine, state),
        )
        .await
    }

    async fn advance_machine(&self, id: &str, step: MachineStep) -> Result<Advanced, StoreError> {
        let mut client = self.client().await?;
        machines::advance(
            &mut client,
            &self.inner.session,
            &self.inner.label,
            id,
            &step,
        )
        .await
    }

    async fn machine_ids(&self, machine: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        machines::ids(&self.inner.session.on(&client), &self.inner.label, machine).await
    }

    async fn machine_log(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MachineTransition>, StoreError> {
        let client = self.client().await?;
        machines::log(
            &self.inner.session.on(&client),
            &self.inner.label,
            id,
            after,
            limit,
        )
        .await
    }
}

/// The engine's PostgreSQL constructors: `Engine::connect(url)` and its kin, as
/// `SqliteEngine` gives `Engine::open`: the engine lives in `sagaflow-core`, which knows no
/// store but its in-memory one. The facade's prelude brings this trait into scope.
pub trait PostgresEngine: sealed::Sealed + Sized {
    /// An engine on the PostgreSQL server at `url`, with the default [`PgOptions`] (the
    /// schema `sagaflow`).
    fn connect(url: &str) -> impl Future<Output = Result<Self, StoreError>> + Send;

    /// An engine on the server at `url`, connected with `options`.
    fn connect_with(
        url: &str,
        options: PgOptions,
    ) -> impl Future<Output = Result<Self, StoreError>> + Send;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sagaflow_core::runtime::Engine {}
}

impl PostgresEngine for Engine {
    fn connect(url: &str) -> impl Future<Output = Result<Engine, StoreError>> + Send {
        Engine::connect_with(url, PgOptions::default())
    }

    async fn connect_with(url: &str, options: PgOptions) -> Result<Engine, StoreError> {
        let store = PgStore::connect(url, options).await?;
        Ok(Engine::builder().store(Arc::new(store)).build())
    }
}
