//! The in-memory store: runs kept in a map, for tests and for runs that need no durability,
//! and state machines (`memory/machines.rs`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::retention::{Deleted, FinishedQuery, FinishedRun, Retention};
use super::{
    Change, Created, DeliveredSignal, EventLog, FreeRun, KnownGraph, Lease, LeaseStore, NewRun,
    RunStore, SignalStore, StoredRun, UnfinishedRun,
};
use crate::runtime::events::feed::{Event, EventSink};

mod machines;
use crate::runtime::error::{StepError, StoreError};
use crate::runtime::id::{IdMap, RunId};

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

/// What one of a [`MemoryStore`]'s shards guards: the runs whose ids fall in it.
#[derive(Debug, Default)]
struct MemoryRuns {
    by_id: IdMap<MemoryRun>,
    /// Signals delivered, by run and name: payloads as JSON.
    signals: IdMap<HashMap<String, String>>,
    /// The workflow names seen last, most recent last, for runs to share.
    names: Vec<Arc<str>>,
}

/// Workflow names each shard of a [`MemoryStore`] keeps for its runs to share; a store that
/// sees more workflows copies the others' names.
const SHARED_NAMES: usize = 16;

/// Shards of a [`MemoryStore`]'s runs (a power of two): runs whose ids fall in different
/// shards share no lock.
const SHARDS: usize = 32;

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

/// A store that keeps runs in memory, for tests and for runs that need no durability. Made
/// with [`new`](Self::new) it keeps every change, so a test can check the exact sequence a
/// run went through.
pub struct MemoryStore {
    /// In [`SHARDS`] shards by run id ([`RunId::shard`]).
    runs: Box<[Mutex<MemoryRuns>]>,
    /// Set before the first run or signal is put in any shard: until then, forgetting a run
    /// (every run an engine without history drops) finds nothing and takes no lock.
    holds: AtomicBool,
    history: bool,
    /// Persisted state machines, by id.
    machines: machines::Machines,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("runs", &self.runs)
            .field("history", &self.history)
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
            runs: shards(),
            holds: AtomicBool::new(false),
            history: true,
            machines: machines::Machines::default(),
        }
    }

    /// An empty store that keeps no changes: recording is free. What
    /// [`Engine::ephemeral`](crate::runtime::Engine::ephemeral) uses, since nothing could read
    /// its history. Its engine does not create its runs in it either
    /// ([`RunStore::records_runs`] is `false`): the engine's table is the one record of which
    /// runs exist, so a run costs the store nothing. The store keeps the signals its engine
    /// delivers, to any run the engine names, and drops them when its engine drops the run
    /// ([`RunStore::forget`]). A run created in it by calling
    /// [`create_run`](RunStore::create_run) directly is kept, as in any store, until it is
    /// forgotten.
    pub fn without_history() -> Self {
        Self {
            runs: shards(),
            holds: AtomicBool::new(false),
            history: false,
            machines: machines::Machines::default(),
        }
    }

    /// The changes recorded for `run_id`, in order (none if the store keeps no history);
    /// `None` if the store has no such run.
    pub fn changes(&self, run_id: &RunId) -> Option<Vec<RecordedChange>> {
        self.shard(run_id)
            .by_id
            .get(run_id)
            .map(|run| run.changes.clone())
    }

    /// The workflow and graph fingerprint the run was created with.
    pub fn run_info(&self, run_id: &RunId) -> Option<(String, u64)> {
        self.shard(run_id)
            .by_id
            .get(run_id)
            .map(|run| (run.workflow.to_string(), run.fingerprint))
    }

    /// Number of runs held.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|shard| lock(shard).by_id.len()).sum()
    }

    /// Whether the store holds no run.
    pub fn is_empty(&self) -> bool {
        self.runs.iter().all(|shard| lock(shard).by_id.is_empty())
    }

    /// The shard `run_id` falls in, locked.
    fn shard(&self, run_id: &RunId) -> std::sync::MutexGuard<'_, MemoryRuns> {
        // There are `SHARDS` of them: the mask keeps the index in range.
        lock(&self.runs[run_id.shard(SHARDS - 1)])
    }
}

fn shards() -> Box<[Mutex<MemoryRuns>]> {
    (0..SHARDS).map(|_| Mutex::default()).collect()
}

fn lock(shard: &Mutex<MemoryRuns>) -> std::sync::MutexGuard<'_, MemoryRuns> {
    // A panic while the lock was held cannot leave a half-written entry (every write is a
    // single insert or push), so the data behind a poisoned lock is still good.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs in a map: no outputs kept, so a run cannot outlive its engine.
#[async_trait::async_trait]
impl RunStore for MemoryStore {
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError> {
        Ok(self.create_run_here(run))
    }

    fn create_run_now(&self, run: &NewRun<'_>) -> Option<Result<Created, StoreError>> {
        Some(Ok(self.create_run_here(run)))
    }

    fn forget(&self, run_id: &RunId) {
        // Whatever is put in a shard sets `holds` first: a run or signal put there after this
        // load is put after the run was forgotten, as it could be without the check.
        if !self.holds.load(Ordering::Acquire) {
            return;
        }
        let mut runs = self.shard(run_id);
        // Without history the engine creates no run here, and the map is empty as a rule:
        // spare the hash. Most runs get no signal: spare that hash too.
        if !runs.by_id.is_empty() {
            runs.by_id.remove(run_id);
        }
        if !runs.signals.is_empty() {
            runs.signals.remove(run_id);
        }
    }

    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError> {
        if !self.history {
            return Ok(());
        }
        let recorded = RecordedChange::from(change);
        match self.shard(run_id).by_id.get_mut(run_id) {
            Some(run) => {
                run.changes.push(recorded);
                Ok(())
            }
            None => Err(StoreError::Backend(format!(
                "no run `{run_id}` in the store"
            ))),
        }
    }

    async fn record_pair(
        &self,
        run_id: &RunId,
        first: &Change<'_>,
        then: &Change<'_>,
    ) -> Result<(), StoreError> {
        // One lock would make the pair atomic, but nothing can crash between the two: a
        // process that dies loses the whole store with it.
        self.record(run_id, first).await?;
        self.record(run_id, then).await
    }

    fn records_changes(&self) -> bool {
        self.history
    }

    /// With history, every run: its changes are kept under it. Without, none: the store is
    /// its engine's, which knows its runs (see [`MemoryStore::without_history`]).
    fn records_runs(&self) -> bool {
        self.history
    }

    fn keeps_finished_runs(&self) -> bool {
        false
    }

    async fn load_run(&self, _: &RunId) -> Result<Option<StoredRun>, StoreError> {
        Ok(None)
    }

    async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        Ok(Vec::new())
    }

    async fn stopped_runs(&self, _: &str) -> Result<Vec<RunId>, StoreError> {
        Ok(Vec::new())
    }
}

/// One process: every lease is granted, with token 0, and there is nothing to give up.
#[async_trait::async_trait]
impl LeaseStore for MemoryStore {
    async fn acquire(&self, _: &RunId) -> Result<Lease, StoreError> {
        Ok(Lease {
            token: 0,
            recoveries: 0,
        })
    }

    fn release(&self, _: &RunId) {}

    async fn give_up(&self, _: &[RunId]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Its runs do not outlive their engine: none is ever free for another.
    async fn free_runs(&self, _: &[KnownGraph], _: usize) -> Result<Vec<FreeRun>, StoreError> {
        Ok(Vec::new())
    }

    async fn heartbeat(
        &self,
        _: &[KnownGraph],
        _: &[super::replicas::ServedQueue],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    fn holds(&self, _: &RunId) -> bool {
        true
    }
}

/// Signals by run and name; not numbered, so each waiting step asks for its own.
#[async_trait::async_trait]
impl SignalStore for MemoryStore {
    async fn deliver_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &str,
    ) -> Result<bool, StoreError> {
        self.holds.store(true, Ordering::Release);
        let mut runs = self.shard(run_id);
        // Without history, the engine creates no run here: it checked that it has this one.
        if self.history && !runs.by_id.contains_key(run_id) {
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

    /// Every delivery to a memory store goes through an engine of this process, which wakes
    /// its waiters itself.
    fn signal_notices(&self) -> Option<super::SignalNotices> {
        None
    }

    async fn signal(&self, run_id: &RunId, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .shard(run_id)
            .signals
            .get(run_id)
            .and_then(|signals| signals.get(name))
            .cloned())
    }

    async fn signal_position(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    async fn signals_after(&self, _: u64, _: usize) -> Result<Vec<DeliveredSignal>, StoreError> {
        Ok(Vec::new())
    }
}

/// No event log: a replay finds nothing, and the engine's subscriptions yield nothing.
#[async_trait::async_trait]
impl EventLog for MemoryStore {
    async fn events(&self, _: Option<&RunId>, _: u64, _: usize) -> Result<Vec<Event>, StoreError> {
        Ok(Vec::new())
    }

    fn attach_events(&self, _: EventSink) -> bool {
        false
    }
}

/// Nothing to prune: the store drops a run when its engine forgets it (see
/// [`RunStore::forget`]), and keeps no finished run for anyone else.
#[async_trait::async_trait]
impl Retention for MemoryStore {
    async fn finished_runs(&self, _: &FinishedQuery) -> Result<Vec<FinishedRun>, StoreError> {
        Ok(Vec::new())
    }

    async fn delete_runs(&self, _: &[RunId]) -> Result<Deleted, StoreError> {
        Ok(Deleted::default())
    }

    async fn workflows(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn reclaim(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// No queue: a run on a queue waits for another engine to take it, and no other engine sees
/// this store's runs. Enqueuing is refused, saying so; nothing is listed.
#[async_trait::async_trait]
impl super::QueueStore for MemoryStore {
    async fn enqueue(
        &self,
        run: &NewRun<'_>,
        on: super::Queueing<'_>,
    ) -> Result<Created, StoreError> {
        Err(StoreError::Backend(format!(
            "run `{}` cannot be put on queue `{}`: the in-memory store keeps no queue (no other engine sees its runs); enqueue on a durable store",
            run.run_id, on.queue
        )))
    }

    async fn queued_runs(
        &self,
        _: &[String],
        _: &[KnownGraph],
        _: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        Ok(Vec::new())
    }

    async fn claim(&self, _: &str, _: &[KnownGraph], _: usize) -> Result<Vec<FreeRun>, StoreError> {
        Ok(Vec::new())
    }

    async fn admit(
        &self,
        _: &RunId,
        _: &str,
        _: &super::Admission,
    ) -> Result<super::Admitted, StoreError> {
        Ok(super::Admitted::Taken)
    }

    fn queue_notices(&self) -> Option<super::SignalNotices> {
        None
    }
}

impl MemoryStore {
    /// Creates `run` here, or reports the one that has its id.
    fn create_run_here(&self, run: &NewRun<'_>) -> Created {
        self.holds.store(true, Ordering::Release);
        let mut runs = self.shard(run.run_id);
        let runs = &mut *runs;
        match runs.by_id.entry(run.run_id.clone()) {
            Entry::Occupied(existing) => Created::Existing {
                workflow: existing.get().workflow.to_string(),
            },
            Entry::Vacant(vacant) => {
                let changes = match run.first_step {
                    Some(step) if self.history => {
                        vec![RecordedChange::from(&Change::StepStarted {
                            step,
                            attempt: 1,
                        })]
                    }
                    _ => Vec::new(),
                };
                vacant.insert(MemoryRun {
                    workflow: shared_name(&mut runs.names, run.workflow),
                    fingerprint: run.graph_fingerprint,
                    changes,
                });
                Created::New
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::definition::Codec;

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
            first_step: None,
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
    #[allow(clippy::unwrap_used)]
    async fn a_forgotten_run_loses_its_signals_and_no_other_run_does() {
        let store = MemoryStore::without_history();
        let (a, b) = (RunId::from("a"), RunId::from("b"));
        // Nothing was ever put here: forgetting finds nothing, and leaves nothing behind.
        store.forget(&a);
        assert!(store.deliver_signal(&a, "go", "1").await.unwrap());
        assert!(store.deliver_signal(&b, "go", "2").await.unwrap());
        store.forget(&a);
        assert_eq!(store.signal(&a, "go").await.unwrap(), None);
        assert_eq!(store.signal(&b, "go").await.unwrap(), Some("2".into()));
        // Delivered again after the run was forgotten, it is kept again.
        assert!(store.deliver_signal(&a, "go", "3").await.unwrap());
        assert_eq!(store.signal(&a, "go").await.unwrap(), Some("3".into()));
    }

    #[tokio::test]
    async fn recording_for_an_unknown_run_is_an_error() {
        let store = MemoryStore::new();
        let result = store.record(&"nope".into(), &Change::RunCancelled).await;
        assert!(matches!(result, Err(StoreError::Backend(_))));
    }
}
