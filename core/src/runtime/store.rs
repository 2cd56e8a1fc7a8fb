//! The one seam through which every change of a run's state passes.
//!
//! The engine never writes state anywhere else: it awaits [`Store::record`] before it goes on,
//! so a checkpoint is acknowledged only once the store has it. That keeps the durable SQLite
//! store a drop-in replacement for [`MemoryStore`]: whatever the in-memory engine does, the
//! durable one will have recorded, in the same order.
//!
//! Changes borrow from the engine (`&str` names, `&dyn Any` outputs) so that recording costs
//! nothing the store does not ask for: the in-memory store never encodes an output, the durable
//! one encodes it with the [`Codec`] it is handed.

use std::any::Any;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use crate::runtime::definition::Codec;
use crate::runtime::error::{RunError, StepError, StoreError};
use crate::runtime::events::{Event, EventSink};
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
}

/// What [`Store::create_run`] found.
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

/// Where the engine records runs. Implemented by [`MemoryStore`] here, and by the durable
/// SQLite store.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a run, or reports the one that has this id (the id is the idempotency key).
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError>;

    /// Records one change of a run's state; the engine awaits it before going on (a checkpoint
    /// is acknowledged only once recorded).
    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError>;

    /// Records `first` and then `then`, atomically where the store can: both or neither. The
    /// engine records a step's completion together with the start of the step it runs next,
    /// so that a chain costs one commit per step. The default records them one after the
    /// other, and `then` not at all if `first` fails.
    async fn record_pair(
        &self,
        run_id: &RunId,
        first: &Change<'_>,
        then: &Change<'_>,
    ) -> Result<(), StoreError> {
        self.record(run_id, first).await?;
        self.record(run_id, then).await
    }

    /// Whether the engine must call [`record`](Self::record) at all; `true` unless the store
    /// overrides it. A store that keeps no changes returns `false`, and the engine then skips
    /// every call (and the boxed future each one costs). Asked once, when the engine is built,
    /// so the answer must not change over the store's life.
    fn records_changes(&self) -> bool {
        true
    }

    /// Whether the store keeps a finished run, with its outcome, where
    /// [`load_run`](Self::load_run) finds it: then an engine forgets a run once it has ended
    /// and reads it back when its id is started again, so that the engine's memory does not
    /// grow with the runs it finished. `false` by default: the engine then keeps the last
    /// finished runs itself, up to a bound (see
    /// [`EngineBuilder::keep_finished_runs`](crate::runtime::EngineBuilder::keep_finished_runs)).
    /// Asked once, when the engine is built.
    fn keeps_finished_runs(&self) -> bool {
        false
    }

    /// Takes the lease on the run `run_id` before the engine takes it up: what makes a run
    /// execute in one process at a time when several share a store. Called before
    /// [`load_run`](Self::load_run). A store with leases refuses a run another owner holds
    /// under a live lease ([`StoreError::Leased`]) and parks a run taken up too many times
    /// ([`StoreError::Parked`]); from then on, the writes of an owner that lost the lease
    /// fail with [`StoreError::Fenced`]. The default, for stores without leases (one
    /// process), grants a lease with token 0.
    async fn acquire(&self, run_id: &RunId) -> Result<Lease, StoreError> {
        let _ = run_id;
        Ok(Lease {
            token: 0,
            recoveries: 0,
        })
    }

    /// The engine no longer runs `run_id` here, though its end was not recorded (the store
    /// failed, or taking it up failed): a store with leases stops renewing its lease, so
    /// that it expires and another process can take the run over. The default does nothing.
    fn release(&self, run_id: &RunId) {
        let _ = run_id;
    }

    /// The run as stored, with each step's encoded output, so that an engine that did not
    /// start it (a new process after a crash) can resume it. A store that keeps no outputs
    /// returns `None`: its runs cannot outlive their engine.
    async fn load_run(&self, run_id: &RunId) -> Result<Option<StoredRun>, StoreError> {
        let _ = run_id;
        Ok(None)
    }

    /// The runs that have not finished (no `RunCompleted`, `RunFailed` or `RunCancelled`
    /// recorded), oldest first, for recovery.
    async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        Ok(Vec::new())
    }

    /// The runs of `workflow` that ended failed or cancelled, oldest first. A saga lists them
    /// at start-up to find the ones whose compensation a crash kept from starting. A store
    /// that keeps no finished runs (the default) returns none.
    async fn stopped_runs(&self, workflow: &str) -> Result<Vec<RunId>, StoreError> {
        let _ = workflow;
        Ok(Vec::new())
    }

    /// Up to `limit` events of the store's log with a `seq` past `after`, in `seq` order: of
    /// the run `run_id`, or of every run for `None`. `after = 0` reads from the start; the
    /// last `seq` read is where the next page starts. A store that keeps no event log (the
    /// default) returns none.
    async fn events(
        &self,
        run_id: Option<&RunId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let _ = (run_id, after, limit);
        Ok(Vec::new())
    }

    /// Called by each engine built on this store with the sink its live subscribers listen
    /// on. A store with an event log keeps the sink and, once each event is committed,
    /// publishes it there ([`EventSink::publish`], in `seq` order, events of every run and
    /// every engine on the store alike), and returns `true`. The default keeps nothing and
    /// returns `false`: the engine's subscriptions then yield nothing.
    fn attach_events(&self, sink: EventSink) -> bool {
        let _ = sink;
        false
    }

    /// Keeps the signal `name` for run `run_id`, with its payload (JSON), unless a signal of
    /// that name was delivered to that run already. Returns whether this call delivered it.
    /// A store that keeps no signals refuses them.
    async fn deliver_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &str,
    ) -> Result<bool, StoreError> {
        let _ = (name, payload);
        Err(StoreError::Backend(format!(
            "this store keeps no signals (run `{run_id}`)"
        )))
    }

    /// The payload of the signal `name` delivered to run `run_id`, if it has been.
    async fn signal(&self, run_id: &RunId, name: &str) -> Result<Option<String>, StoreError> {
        let _ = (run_id, name);
        Ok(None)
    }

    /// The position of the newest signal delivered, in the order the store kept them (0 if
    /// none was), or `None` if the store does not number its signals. With
    /// [`Store::signals_after`], it lets an engine ask one question a poll for every step it
    /// has waiting, however many there are, instead of one question per waiting step. The
    /// default: `None`, and each waiting step asks for its own signal.
    async fn signal_position(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// At most `limit` signals delivered after position `after`, oldest first. Positions must
    /// grow in the order deliveries become visible, so that nothing delivered after a
    /// [`Store::signal_position`] has a position at or below it.
    async fn signals_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeliveredSignal>, StoreError> {
        let _ = (after, limit);
        Ok(Vec::new())
    }
}

/// A signal a store kept, as [`Store::signals_after`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredSignal {
    /// Its position in the store's order of deliveries.
    pub position: u64,
    /// The run it was delivered to.
    pub run_id: RunId,
    /// Its name.
    pub name: String,
}

/// A lease on a run, as [`Store::acquire`] granted it.
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

/// A run that has not finished, as [`Store::unfinished_runs`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedRun {
    /// The run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow: String,
}

/// An owned copy of a [`Change`], as [`MemoryStore::changes`] returns it. Outputs are not
/// kept: the in-memory store never encodes them.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordedChange {
    /// See [`Change::StepStarted`].
    StepStarted {
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
    },
    /// See [`Change::StepRetrying`].
    StepRetrying {
        /// The step.
        step: String,
        /// The attempt that failed.
        attempt: u32,
        /// Its error.
        error: StepError,
        /// The wait before the next attempt.
        delay: Duration,
    },
    /// See [`Change::StepCompleted`].
    StepCompleted {
        /// The step.
        step: String,
        /// The attempt that succeeded.
        attempt: u32,
    },
    /// See [`Change::StepFailed`].
    StepFailed {
        /// The step.
        step: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: StepError,
    },
    /// See [`Change::StepSkipped`].
    StepSkipped {
        /// The step.
        step: String,
    },
    /// See [`Change::RunCompleted`].
    RunCompleted,
    /// See [`Change::RunFailed`].
    RunFailed {
        /// The run error, as text.
        error: String,
    },
    /// See [`Change::RunCancelled`].
    RunCancelled,
}

impl From<&Change<'_>> for RecordedChange {
    fn from(change: &Change<'_>) -> Self {
        match *change {
            Change::StepStarted { step, attempt } => RecordedChange::StepStarted {
                step: step.to_owned(),
                attempt,
            },
            Change::StepRetrying {
                step,
                attempt,
                error,
                delay,
            } => RecordedChange::StepRetrying {
                step: step.to_owned(),
                attempt,
                error: error.clone(),
                delay,
            },
            Change::StepCompleted { step, attempt, .. } => RecordedChange::StepCompleted {
                step: step.to_owned(),
                attempt,
            },
            Change::StepFailed {
                step,
                attempts,
                error,
            } => RecordedChange::StepFailed {
                step: step.to_owned(),
                attempts,
                error: error.clone(),
            },
            Change::StepSkipped { step } => RecordedChange::StepSkipped {
                step: step.to_owned(),
            },
            Change::RunCompleted => RecordedChange::RunCompleted,
            Change::RunFailed { error } => RecordedChange::RunFailed {
                error: error.to_string(),
            },
            Change::RunCancelled => RecordedChange::RunCancelled,
        }
    }
}

#[derive(Debug)]
struct MemoryRun {
    /// Shared by the runs of one workflow, so that a run costs no copy of its name.
    workflow: Arc<str>,
    fingerprint: u64,
    changes: Vec<RecordedChange>,
}

/// What a [`MemoryStore`]'s lock guards.
#[derive(Debug, Default)]
struct MemoryRuns {
    by_id: HashMap<RunId, MemoryRun>,
    /// Signals delivered, by run and name: payloads as JSON.
    signals: HashMap<RunId, HashMap<String, String>>,
    /// The workflow names seen last, most recent last, for runs to share.
    names: Vec<Arc<str>>,
}

/// Workflow names a [`MemoryStore`] keeps for its runs to share; a store that sees more
/// workflows copies the others' names.
const SHARED_NAMES: usize = 16;

/// `workflow`'s name from `names` if it is there, else a new one, kept for the next runs.
fn shared_name(names: &mut Vec<Arc<str>>, workflow: &str) -> Arc<str> {
    if let Some(name) = names.iter().rev().find(|n| ***n == *workflow) {
        return Arc::clone(name);
    }
    let name: Arc<str> = Arc::from(workflow);
    if names.len() >= SHARED_NAMES {
        names.remove(0);
    }
    names.push(Arc::clone(&name));
    name
}

/// Where the [`MemoryStore`] an engine makes for itself finds the engine's runs.
pub(crate) trait RunIndex: Send + Sync {
    /// The workflow of the run `run_id`, if the engine has that run.
    fn workflow_of(&self, run_id: &RunId) -> Option<Arc<str>>;
}

/// A store that keeps runs in memory, for tests and for runs that need no durability. Made
/// with [`new`](Self::new) it keeps every change, so a test can check the exact sequence a
/// run went through.
pub struct MemoryStore {
    runs: Mutex<MemoryRuns>,
    history: bool,
    /// Set in the store an engine made for itself ([`Engine::ephemeral`]), which nothing
    /// else can record in: the engine's own table already keeps every run it started, by
    /// id, so this store finds them there instead of keeping each run a second time.
    ///
    /// [`Engine::ephemeral`]: crate::runtime::Engine::ephemeral
    engine: OnceLock<Weak<dyn RunIndex>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("runs", &self.runs)
            .field("history", &self.history)
            .field("engine_owned", &self.engine.get().is_some())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store that keeps every change.
    pub fn new() -> Self {
        Self {
            runs: Mutex::default(),
            history: true,
            engine: OnceLock::new(),
        }
    }

    /// An empty store that keeps runs (their ids and workflows, for idempotency) but not their
    /// changes: recording is free. What [`Engine::ephemeral`](crate::runtime::Engine::ephemeral)
    /// uses, since nothing could read its history; that engine's own runs are kept once, in
    /// the engine's table, where this store finds them.
    pub fn without_history() -> Self {
        Self {
            runs: Mutex::default(),
            history: false,
            engine: OnceLock::new(),
        }
    }

    /// The store of an engine, which finds the engine's runs in `engine` (see
    /// [`create_engine_run`](Self::create_engine_run)).
    pub(crate) fn attach_engine(&self, engine: Weak<dyn RunIndex>) {
        let _ = self.engine.set(engine);
    }

    /// The workflow of the engine's run `run_id`, if this is an engine's store and the engine
    /// has that run.
    fn engine_run(&self, run_id: &RunId) -> Option<Arc<str>> {
        self.engine
            .get()
            .and_then(Weak::upgrade)
            .and_then(|engine| engine.workflow_of(run_id))
    }

    /// The changes recorded for `run_id`, in order (none if the store keeps no history);
    /// `None` if the store has no such run.
    pub fn changes(&self, run_id: &RunId) -> Option<Vec<RecordedChange>> {
        self.lock().by_id.get(run_id).map(|run| run.changes.clone())
    }

    /// The workflow and graph fingerprint the run was created with.
    pub fn run_info(&self, run_id: &RunId) -> Option<(String, u64)> {
        self.lock()
            .by_id
            .get(run_id)
            .map(|run| (run.workflow.to_string(), run.fingerprint))
    }

    /// Number of runs held.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether the store holds no run.
    pub fn is_empty(&self) -> bool {
        self.lock().by_id.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryRuns> {
        // A panic while the lock was held cannot leave a half-written entry (every write is a
        // single insert or push), so the data behind a poisoned lock is still good.
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn deliver_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &str,
    ) -> Result<bool, StoreError> {
        let engine_run = self.engine_run(run_id).is_some();
        let mut runs = self.lock();
        if !engine_run && !runs.by_id.contains_key(run_id) {
            return Err(StoreError::Backend(format!(
                "no run `{run_id}` to signal `{name}` to"
            )));
        }
        match runs
            .signals
            .entry(run_id.clone())
            .or_default()
            .entry(name.to_owned())
        {
            Entry::Occupied(_) => Ok(false),
            Entry::Vacant(vacant) => {
                vacant.insert(payload.to_owned());
                Ok(true)
            }
        }
    }

    async fn signal(&self, run_id: &RunId, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .signals
            .get(run_id)
            .and_then(|signals| signals.get(name))
            .cloned())
    }

    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError> {
        if let Some(workflow) = self.engine_run(run.run_id) {
            return Ok(Created::Existing {
                workflow: workflow.to_string(),
            });
        }
        Ok(self.create_run_now(run))
    }

    fn records_changes(&self) -> bool {
        self.history
    }

    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError> {
        if !self.history {
            return Ok(());
        }
        let recorded = RecordedChange::from(change);
        match self.lock().by_id.get_mut(run_id) {
            Some(run) => {
                run.changes.push(recorded);
                Ok(())
            }
            None => Err(StoreError::Backend(format!(
                "no run `{run_id}` in the store"
            ))),
        }
    }
}

impl MemoryStore {
    /// [`Store::create_run`] for the engine that made this store, which calls it directly
    /// (no boxed future) once it has claimed the id in its own table: the run is kept there,
    /// not again here. Only a run created here by someone else (through the trait) can make
    /// it [`Created::Existing`].
    pub(crate) fn create_engine_run(&self, run: &NewRun<'_>) -> Created {
        let runs = self.lock();
        if runs.by_id.is_empty() {
            return Created::New;
        }
        match runs.by_id.get(run.run_id) {
            Some(existing) => Created::Existing {
                workflow: existing.workflow.to_string(),
            },
            None => Created::New,
        }
    }

    /// Forgets what this store holds of the engine's run `run_id` (its signals) once the
    /// engine has dropped the run.
    pub(crate) fn forget_engine_run(&self, run_id: &RunId) {
        let mut runs = self.lock();
        if !runs.by_id.contains_key(run_id) {
            runs.signals.remove(run_id);
        }
    }

    /// Creates `run` here, or reports the one that has its id.
    fn create_run_now(&self, run: &NewRun<'_>) -> Created {
        let mut runs = self.lock();
        let runs = &mut *runs;
        match runs.by_id.entry(run.run_id.clone()) {
            Entry::Occupied(existing) => Created::Existing {
                workflow: existing.get().workflow.to_string(),
            },
            Entry::Vacant(vacant) => {
                vacant.insert(MemoryRun {
                    workflow: shared_name(&mut runs.names, run.workflow),
                    fingerprint: run.graph_fingerprint,
                    changes: Vec::new(),
                });
                Created::New
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_is_created_once_and_keeps_its_changes_in_order() {
        let store = MemoryStore::new();
        let id = RunId::from("r");
        let new = NewRun {
            run_id: &id,
            workflow: "W",
            graph_fingerprint: 7,
            input: &1_u8,
            input_codec: Codec::of::<u8>(),
            graph: None,
        };
        assert_eq!(store.create_run(&new).await.ok(), Some(Created::New));
        let again = store.create_run(&new).await.ok();
        assert_eq!(
            again,
            Some(Created::Existing {
                workflow: "W".into()
            })
        );
        let ok = store
            .record(
                &id,
                &Change::StepStarted {
                    step: "a",
                    attempt: 1,
                },
            )
            .await;
        assert!(ok.is_ok());
        assert!(store.record(&id, &Change::RunCompleted).await.is_ok());
        assert_eq!(
            store.changes(&id),
            Some(vec![
                RecordedChange::StepStarted {
                    step: "a".into(),
                    attempt: 1
                },
                RecordedChange::RunCompleted
            ])
        );
        assert_eq!(store.run_info(&id), Some(("W".into(), 7)));
    }

    #[tokio::test]
    async fn recording_for_an_unknown_run_is_an_error() {
        let store = MemoryStore::new();
        let result = store.record(&"nope".into(), &Change::RunCancelled).await;
        assert!(matches!(result, Err(StoreError::Backend(_))));
    }
}
