//! The one seam through which every change of a run's state passes.
//!
//! The engine never writes state anywhere else: it awaits [`RunStore::record`] before it goes on,
//! so a checkpoint is acknowledged only once the store has it. That keeps the durable SQLite
//! store a drop-in replacement for [`MemoryStore`]: whatever the in-memory engine does, the
//! durable one will have recorded, in the same order.
//!
//! Changes borrow from the engine (`&str` names, `&dyn Any` outputs) so that recording costs
//! nothing the store does not ask for: the in-memory store never encodes an output, the durable
//! one encodes it with the [`Codec`] it is handed.

use std::any::Any;
use std::time::Duration;

use crate::runtime::definition::Codec;
use crate::runtime::error::{RunError, StepError, StoreError};
use crate::runtime::events::feed::{Event, EventSink};
use crate::runtime::id::RunId;

/// A run about to be created.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    /// The run's id, also its idempotency key.
    pub run_id: &'a RunId,
    /// The workflow's name.
    pub workflow: &'a str,
    /// The workflow graph's [`fingerprint`](crate::Graph::fingerprint), so that a run resumed
    /// under a changed graph can be refused.
    pub graph_fingerprint: u64,
    /// The run's input.
    pub input: &'a (dyn Any + Send + Sync),
    /// Encodes [`input`](Self::input) for a store that persists it.
    pub input_codec: Codec,
    /// The workflow's graph as JSON, `{"nodes": [...], "edges": [[from, to], ...]}` (nodes
    /// in declaration order), kept by a durable store so that tools can draw the run; `None`
    /// when unknown.
    pub graph: Option<&'a str>,
    /// The step the run begins with, if the engine starts it at once: a new run is created
    /// with that step's first attempt recorded as started ([`Change::StepStarted`], attempt
    /// 1), in the same write, so that a run costs one commit fewer. `None` (a run of several
    /// first steps, of a guarded one, a run put on a queue): the engine records every start
    /// itself. A run that exists already is left as it is.
    pub first_step: Option<&'a str>,
}

/// What [`RunStore::create_run`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The run is new and now recorded.
    New,
    /// A run with this id exists already.
    Existing {
        /// The workflow of the existing run.
        workflow: String,
    },
}

/// One change of a run's state, as the engine reports it to the [`Store`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// An attempt of a step is about to call the step's function.
    StepStarted {
        /// The step.
        step: &'a str,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// An attempt failed and another follows after `delay`.
    StepRetrying {
        /// The step.
        step: &'a str,
        /// The attempt that failed.
        attempt: u32,
        /// Its error.
        error: &'a StepError,
        /// The wait before the next attempt.
        delay: Duration,
    },
    /// A step returned its output. Its dependents start only once this is recorded.
    StepCompleted {
        /// The step.
        step: &'a str,
        /// The attempt that succeeded.
        attempt: u32,
        /// The output, of the step's output type.
        output: &'a (dyn Any + Send + Sync),
        /// Encodes `output`, for a store that persists it.
        codec: Codec,
    },
    /// A step failed for good: its error was permanent, its attempts or its deadline ran out.
    StepFailed {
        /// The step.
        step: &'a str,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: &'a StepError,
    },
    /// A step's guard returned `false`.
    StepSkipped {
        /// The step.
        step: &'a str,
    },
    /// Every step finished and the run produced its output.
    RunCompleted,
    /// The run failed.
    RunFailed {
        /// Why.
        error: &'a RunError,
    },
    /// The run was cancelled.
    RunCancelled,
}

/// Runs and checkpoints: the capability every store has. Every method is required: a store
/// states what it keeps, and nothing answers "nothing" by default.
#[async_trait::async_trait]
pub trait RunStore: Any + Send + Sync {
    /// Creates a run, or reports the one that has this id (the id is the idempotency key).
    /// A new run with a [`first_step`](NewRun::first_step) is created with that step's start
    /// recorded, as [`record`](Self::record) would record it, atomically where the store can.
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError>;

    /// [`create_run`](Self::create_run) without waiting, for a store that can answer at once
    /// (the in-memory store): the engine then skips the boxed future of the call. A store that
    /// must wait (for a disk, a server) returns `None`, and the engine calls `create_run`.
    fn create_run_now(&self, run: &NewRun<'_>) -> Option<Result<Created, StoreError>>;

    /// The engine no longer keeps the run `run_id`: it ended, and the engine dropped it from
    /// its table. A store that keeps runs only for its engine (the in-memory store) drops
    /// what it holds of the run, so that its memory is bounded as the engine's is; a store
    /// that keeps runs for other processes and later reads keeps it.
    fn forget(&self, run_id: &RunId);

    /// Records one change of a run's state; the engine awaits it before going on (a checkpoint
    /// is acknowledged only once recorded).
    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError>;

    /// Records `first` and then `then`, atomically where the store can: both or neither. The
    /// engine records a step's completion together with the start of the step it runs next,
    /// so that a chain costs one commit per step. A store that cannot make the two atomic
    /// records them one after the other, and `then` not at all if `first` fails.
    async fn record_pair(
        &self,
        run_id: &RunId,
        first: &Change<'_>,
        then: &Change<'_>,
    ) -> Result<(), StoreError>;

    /// Whether the engine must call [`record`](Self::record) at all. A store that keeps no
    /// changes returns `false`, and the engine then skips every call (and the boxed future
    /// each one costs). Asked once, when the engine is built, so the answer must not change
    /// over the store's life.
    fn records_changes(&self) -> bool;

    /// Whether the engine must create each run in the store ([`create_run`](Self::create_run))
    /// before running it. A store that keeps nothing of a run for anyone to read back (no
    /// changes, no outcome, no lease: [`MemoryStore::without_history`], what
    /// [`Engine::ephemeral`](crate::runtime::Engine::ephemeral) uses) may return `false`: the
    /// engine's own table of runs is then the only record of which runs exist (a run id's
    /// idempotency is the engine's), the engine creates no run in the store, and it checks a
    /// signal's run against its table before delivering it. The engine still calls
    /// [`forget`](Self::forget) for every run it drops, so that the store drops that run's
    /// signals. Asked once, when the engine is built; a store that records changes is sent
    /// every run, whatever it answers here.
    ///
    /// [`MemoryStore::without_history`]: crate::runtime::MemoryStore::without_history
    fn records_runs(&self) -> bool;

    /// Whether the store keeps a finished run, with its outcome, where
    /// [`load_run`](Self::load_run) finds it: then an engine forgets a run once it has ended
    /// and reads it back when its id is started again, so that the engine's memory does not
    /// grow with the runs it finished. If not, the engine keeps the last finished runs itself,
    /// up to a bound (see
    /// [`EngineBuilder::keep_finished_runs`](crate::runtime::EngineBuilder::keep_finished_runs)).
    /// Asked once, when the engine is built.
    fn keeps_finished_runs(&self) -> bool;

    /// The run as stored, with each step's encoded output, so that an engine that did not
    /// start it (a new process after a crash) can resume it. A store that keeps no outputs
    /// returns `None`: its runs cannot outlive their engine.
    async fn load_run(&self, run_id: &RunId) -> Result<Option<StoredRun>, StoreError>;

    /// The runs that have not finished (no `RunCompleted`, `RunFailed` or `RunCancelled`
    /// recorded), oldest first, for recovery. A store whose runs cannot outlive their engine
    /// returns none.
    async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError>;

    /// The runs of `workflow` that ended failed or cancelled, oldest first. A saga lists them
    /// at start-up to find the ones whose compensation a crash kept from starting. A store
    /// that keeps no finished runs returns none.
    async fn stopped_runs(&self, workflow: &str) -> Result<Vec<RunId>, StoreError>;
}

/// Leases: what makes a run execute in one process at a time when several share a store.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes the lease on the run `run_id` before the engine takes it up. Called before
    /// [`RunStore::load_run`]. A store with leases refuses a run another owner holds under a
    /// live lease ([`StoreError::Leased`]) and parks a run taken up too many times
    /// ([`StoreError::Parked`]); from then on, the writes of an owner that lost the lease
    /// fail with [`StoreError::Fenced`]. A store only one process can use (the in-memory
    /// store) grants every lease, with token 0.
    async fn acquire(&self, run_id: &RunId) -> Result<Lease, StoreError>;

    /// The engine no longer runs `run_id` here (it ended, the store failed, or taking it up
    /// failed): a store with leases stops renewing the lease, which expires on its own, so
    /// that another process can take the run over after it.
    fn release(&self, run_id: &RunId);

    /// The engine hands `run_ids` over at once (it is shutting down, and these runs are left
    /// unfinished as the store has them, or were listed by [`free_runs`](Self::free_runs) and
    /// not taken up): a store with leases frees each lease it still holds on them in the store
    /// now (one it took as it listed the run included), fenced by its token (a lease taken
    /// over meanwhile is left alone), and forgets it, so that another process can take the
    /// run without waiting for the lease to run out. A hand-over is no crash: it does not count towards parking (the
    /// take-up that follows it is not counted either). A store without leases does nothing.
    async fn give_up(&self, run_ids: &[RunId]) -> Result<(), StoreError>;

    /// At most `limit` unfinished, unparked runs whose lease has run out or was given up, of
    /// the workflows and graphs in `known` (a graph of `None` matches every graph of its
    /// workflow), oldest first: the runs an engine may take over. Runs under a live lease
    /// (this store's own included) are never listed, nor are runs of a queue
    /// ([`QueueStore`]: only the engines that serve a queue take its runs). A store whose runs
    /// cannot outlive their engine lists none.
    ///
    /// A store may take the lease of each run it lists for its owner in the same step (the
    /// PostgreSQL store does: replicas listing at once are given different runs), as
    /// [`QueueStore::claim`] does; the engine's take-up that follows ([`acquire`](Self::acquire))
    /// is then answered from that. The runs listed that the engine does not take up because
    /// it began to drain are given up ([`give_up`](Self::give_up)), which frees them at once;
    /// any other run listed so and not taken up is free again once its lease runs out.
    async fn free_runs(
        &self,
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError>;

    /// What [`free_runs`](Self::free_runs) lists, for an engine that has just heard
    /// ([`freed_notices`](Self::freed_notices)) that another process handed `freed` runs
    /// over: every replica heard it at once and asks at once, so each takes at most its fair
    /// share, `freed` divided by the live replicas that run their workflows and did not hand
    /// them over (rounded up), and a drained replica's runs spread over the others rather
    /// than all going to the first to ask. A share left untaken (a replica that did not
    /// hear, or runs another version of the graph) is found by the engines' next polls. A store that hears of no hand-over lists as
    /// [`free_runs`](Self::free_runs) does (the default).
    async fn free_runs_shared(
        &self,
        known: &[KnownGraph],
        limit: usize,
        freed: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        let _ = freed;
        self.free_runs(known, limit).await
    }

    /// Notices of runs that other processes handed over ([`give_up`](Self::give_up)), for a
    /// store that hears of them as they happen (PostgreSQL's `LISTEN`): the value counts the
    /// runs handed over since the store began to listen, so an engine woken by a change takes
    /// its share of the difference ([`free_runs_shared`](Self::free_runs_shared)) at once
    /// instead of at its next poll. `None` (the default) for a store that hears of nothing by
    /// itself: polling alone finds such runs.
    fn freed_notices(&self) -> Option<SignalNotices> {
        None
    }

    /// Says that this store's owner lives, which workflows and graphs its engine runs
    /// (`graphs`) and which queues it serves with what bounds (`queues`), for tools to show:
    /// which replica holds which run, when each was last heard from, its version, the runs
    /// that no live replica can run (a version none of them knows), which wait rather than
    /// fail, and each queue's bounds. The engine calls it every
    /// [`HEARTBEAT_EVERY`](crate::runtime::HEARTBEAT_EVERY) once a definition is registered.
    /// It also forgets the replicas not heard from for
    /// [`FORGET_REPLICA_AFTER`](replicas::FORGET_REPLICA_AFTER).
    /// A store only one process can use (the in-memory store) has nobody to tell and does
    /// nothing.
    async fn heartbeat(
        &self,
        graphs: &[KnownGraph],
        queues: &[replicas::ServedQueue],
    ) -> Result<(), StoreError>;

    /// Whether this store surely still holds `run_id`'s lease by its own clock: taken or
    /// renewed less than a lease ago, and not found taken over. The engine asks before it
    /// starts a step (once the step's start is recorded): a replica cut off from its database
    /// starts nothing once its lease may have run out, even if the last write it sent was
    /// acknowledged late. A store only one process can use always holds.
    fn holds(&self, run_id: &RunId) -> bool;
}

/// A workflow graph an engine can run, as [`LeaseStore::free_runs`] filters by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KnownGraph {
    /// The workflow's name.
    pub workflow: String,
    /// The graph's [`fingerprint`](crate::Graph::fingerprint); `None` for every graph of the
    /// workflow (a saga's compensation rounds, whose graph depends on what they undo).
    pub fingerprint: Option<u64>,
}

/// A run [`LeaseStore::free_runs`] found free to take over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeRun {
    /// The run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow: String,
    /// The fingerprint of the graph it was started under.
    pub graph_fingerprint: u64,
}

/// Signals: payloads delivered to a run, kept until a step waiting for them reads them.
#[async_trait::async_trait]
pub trait SignalStore: Send + Sync + 'static {
    /// Keeps the signal `name` for run `run_id`, with its payload (JSON), unless a signal of
    /// that name was delivered to that run already. Returns whether this call delivered it.
    async fn deliver_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &str,
    ) -> Result<bool, StoreError>;

    /// The payload of the signal `name` delivered to run `run_id`, if it has been.
    async fn signal(&self, run_id: &RunId, name: &str) -> Result<Option<String>, StoreError>;

    /// The position of the newest signal delivered, in the order the store kept them (0 if
    /// none was), or `None` if the store does not number its signals (then each waiting step
    /// asks for its own signal). With [`signals_after`](Self::signals_after), it lets an
    /// engine ask one question a poll for every step it has waiting, however many there are.
    async fn signal_position(&self) -> Result<Option<u64>, StoreError>;

    /// At most `limit` signals delivered after position `after`, oldest first. Positions must
    /// grow in the order deliveries become visible, so that nothing delivered after a
    /// [`signal_position`](Self::signal_position) has a position at or below it. A store that
    /// does not number its signals returns none.
    async fn signals_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeliveredSignal>, StoreError>;

    /// Notices of signals delivered by other processes, for a store that hears of them as
    /// they happen (PostgreSQL's `LISTEN`): the value changes whenever the store learns that
    /// a signal may have been delivered elsewhere, and an engine's poller, woken by the change,
    /// asks [`signals_after`](Self::signals_after) at once instead of at its next poll. `None`
    /// for a store that hears of nothing by itself: polling alone finds such signals.
    fn signal_notices(&self) -> Option<SignalNotices>;
}

/// What [`SignalStore::signal_notices`] hands an engine: a value that changes whenever the
/// store hears of a delivery by another process.
pub type SignalNotices = tokio::sync::watch::Receiver<u64>;

/// The event log: every change of every run, in commit order, to replay and to publish.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Up to `limit` events of the store's log with a `seq` past `after`, in `seq` order: of
    /// the run `run_id`, or of every run for `None`. `after = 0` reads from the start; the
    /// last `seq` read is where the next page starts. A store that keeps no log returns none.
    ///
    /// Every event committed before the call, by any process on the store's database, is in
    /// the answer unless it lies past the page. A store that numbers its log by transaction
    /// (PostgreSQL) waits for that until the transactions that took lower numbers end, up to
    /// a second; past that it answers with the part of the log that is final, which a later
    /// read from its last `seq` completes.
    async fn events(
        &self,
        run_id: Option<&RunId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;

    /// Called by each engine built on this store with the sink its live subscribers listen
    /// on. A store with an event log keeps the sink and, once each event is committed,
    /// publishes it there ([`EventSink::publish`], in `seq` order, events of every run and
    /// every engine on the store alike), and returns `true`. A store without one returns
    /// `false`: the engine's subscriptions then yield nothing.
    fn attach_events(&self, sink: EventSink) -> bool;
}

/// Where the engine records runs: every capability the engine uses, each a trait of its own
/// ([`RunStore`], [`LeaseStore`], [`SignalStore`], [`EventLog`], [`Retention`],
/// [`QueueStore`]). Implemented for every type
/// that has them all: [`MemoryStore`] here, the SQLite store in `sagaflow-sqlite`. A store
/// that lacks one does not compile as a store, and the error names the trait it lacks.
/// Machines are a capability of their own ([`MachineStore`]), which the engine does not use;
/// so is reading a database as tools do ([`inspect::Inspect`]).
pub trait Store: RunStore + LeaseStore + SignalStore + EventLog + Retention + QueueStore {}

impl<S: RunStore + LeaseStore + SignalStore + EventLog + Retention + QueueStore> Store for S {}

/// A signal a store kept, as [`SignalStore::signals_after`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredSignal {
    /// Its position in the store's order of deliveries.
    pub position: u64,
    /// The run it was delivered to.
    pub run_id: RunId,
    /// Its name.
    pub name: String,
}

/// A lease on a run, as [`LeaseStore::acquire`] granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The fencing token: bumped by every acquisition, so that a write carrying an older one
    /// is refused. 0 from a store without leases.
    pub token: u64,
    /// How many times the run has been taken up (not counting its start).
    pub recoveries: u32,
}

/// Where a stored run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredRunStatus {
    /// Created, not finished: running now, or interrupted by a crash.
    Running,
    /// Finished with its output.
    Completed,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Parked: taken up too many times (it kept crashing its process), so it is not
    /// retried; the run's error says why.
    Parked,
}

impl StoredRunStatus {
    /// The status's name, as stores and tools write it: `running`, `completed`, `failed`,
    /// `cancelled`, `parked`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredRunStatus::Running => "running",
            StoredRunStatus::Completed => "completed",
            StoredRunStatus::Failed => "failed",
            StoredRunStatus::Cancelled => "cancelled",
            StoredRunStatus::Parked => "parked",
        }
    }

    /// The status named `name` as [`as_str`](Self::as_str) writes it; `None` for another.
    pub fn parse(name: &str) -> Option<StoredRunStatus> {
        [
            StoredRunStatus::Running,
            StoredRunStatus::Completed,
            StoredRunStatus::Failed,
            StoredRunStatus::Cancelled,
            StoredRunStatus::Parked,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }
}

/// A run as a durable store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// The run's workflow.
    pub workflow: String,
    /// The fingerprint of the graph the run was started under.
    pub graph_fingerprint: u64,
    /// The input, encoded by the input codec.
    pub input: String,
    /// Where the run stands.
    pub status: StoredRunStatus,
    /// The run's error as text, when it failed.
    pub error: Option<String>,
    /// When the run was first started, by the clock of the process that started it, if the
    /// store knows. Whatever counts from a run's start (a saga's deadline) counts from this,
    /// so that a restart does not give the run its whole time again.
    pub created_at: Option<std::time::SystemTime>,
    /// The steps that have started, completed, failed or been skipped; a step never started
    /// may be missing.
    pub steps: Vec<StoredStep>,
}

/// A step as a durable store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStep {
    /// The step's name.
    pub name: String,
    /// `Running` for a step whose start was recorded but not its end: on resume, it was
    /// interrupted.
    pub status: crate::runtime::report::StepStatus,
    /// Attempts started.
    pub attempts: u32,
    /// The output encoded by the step's codec, once completed.
    pub output: Option<String>,
    /// The last error, as text.
    pub error: Option<String>,
    /// When its first attempt began, by the clock of the process that ran it, if the store
    /// knows. A step taken up after a crash counts its deadline from it, so that a restart
    /// does not give the step its whole time again.
    pub started_at: Option<std::time::SystemTime>,
}

/// A run that has not finished, as [`RunStore::unfinished_runs`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedRun {
    /// The run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow: String,
}

pub mod inspect;
mod leases;
mod machines;
mod memory;
pub mod queues;
pub mod replicas;
pub mod retention;

pub use leases::HeldLeases;
pub use machines::{Advanced, MachineStep, MachineStore, MachineTransition, StoredMachine};
pub use memory::{MemoryStore, RecordedChange};
pub use queues::{Admission, Admitted, AdmittedFirst, QueueStanding, QueueStore, Queueing, Queues};
pub use retention::{Deleted, FinishedCursor, FinishedQuery, FinishedRun, Retention};

#[cfg(test)]
mod tests {
    use super::StoredRunStatus;

    #[test]
    fn a_run_status_reads_back_as_written() {
        for status in [
            StoredRunStatus::Running,
            StoredRunStatus::Completed,
            StoredRunStatus::Failed,
            StoredRunStatus::Cancelled,
            StoredRunStatus::Parked,
        ] {
            assert_eq!(StoredRunStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(StoredRunStatus::parse("compensating"), None);
    }
}
