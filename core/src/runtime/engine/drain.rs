//! Graceful drain: [`Engine::shutdown`] lets a replica go without stalling its runs.
//!
//! Once the drain begins, the engine starts no run and takes none up, and no step of its runs
//! begins an attempt: a step task that reaches the start of an attempt (a run's next step, a
//! retry after its delay, a step waiting for a permit) checkpoints what it carries (the
//! completion of the step it just ran) and ends, and its run stops starting steps. Attempts
//! already running go on to their end, which is checkpointed as usual, for up to the grace
//! period; a run whose every step task has ended unfinished is *released*: its handles see
//! [`RunError::Released`](crate::runtime::RunError::Released), its end is not recorded, and
//! the store keeps its lease for the hand-over. A run still running a step at the end of the
//! grace period is cut there (its running attempts are dropped; that step runs again
//! elsewhere, at least once, as after a crash) and released too. Last, every released run's
//! lease is given up in the store at once ([`LeaseStore::give_up`]), so that another engine
//! on the store takes it up at its next poll instead of after a lease.
//!
//! [`LeaseStore::give_up`]: crate::runtime::LeaseStore::give_up

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::Engine;
use super::executor::Control;
use crate::runtime::error::{RunError, StoreError};
use crate::runtime::id::RunId;

/// Whether the engine drains, and the runs it has released so far.
pub(crate) struct Lifecycle {
    /// `draining`'s value, read without the watch's lock: every run's start and every step's
    /// attempt asks.
    flag: AtomicBool,
    /// `true` once [`Engine::shutdown`] began; the takeover loop and every wait of a step
    /// task that the drain cuts short watch it.
    draining: watch::Sender<bool>,
    /// Runs released unfinished, whose leases the store still holds until the drain gives
    /// them up.
    released: Mutex<Vec<RunId>>,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Self {
            flag: AtomicBool::new(false),
            draining: watch::Sender::new(false),
            released: Mutex::new(Vec::new()),
        }
    }

    /// Whether the engine drains.
    pub(crate) fn is_draining(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Begins the drain (again: nothing changes).
    pub(crate) fn begin(&self) {
        // Set before the watch wakes anyone: whoever it wakes finds the flag set.
        self.flag.store(true, Ordering::SeqCst);
        self.draining.send_replace(true);
    }

    /// Resolves once the engine drains (at once if it does already); never if the engine is
    /// dropped first.
    pub(crate) async fn draining(&self) {
        let mut watch = self.draining.subscribe();
        if watch.wait_for(|draining| *draining).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// A watch of the drain, for a task that must not keep the engine alive.
    pub(crate) fn watch(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Keeps `run_id` for the hand-over: its run was released unfinished.
    pub(crate) fn released(&self, run_id: &RunId) {
        self.released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(run_id.clone());
    }

    fn take_released(&self) -> Vec<RunId> {
        std::mem::take(&mut *self.released.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What [`Engine::shutdown`] did.
#[derive(Debug, Default)]
pub struct Drained {
    /// The runs that ended here during the drain (completed, failed or cancelled, their end
    /// recorded).
    pub finished: Vec<RunId>,
    /// The runs let go unfinished, their leases given up: another engine on the store takes
    /// them up and runs their steps that had not ended.
    pub released: Vec<RunId>,
    /// Of [`released`](Self::released), the runs that still ran a step when the grace period
    /// ended: that step was cut, and runs again where the run is taken up.
    pub cut: Vec<RunId>,
    /// Why the store could not give the leases up, if it could not: the released runs are
    /// then taken up elsewhere once their leases run out, as after a crash.
    pub error: Option<StoreError>,
}

impl Engine {
    /// Drains the engine, as a replica does before it stops (on SIGTERM): it starts and takes
    /// up no run from now on ([`EngineError::ShuttingDown`]) and stops taking runs over; its
    /// runs start no step, and the steps running now have `grace` to end, each end
    /// checkpointed; then every run left unfinished is released
    /// ([`RunError::Released`] for its handles) and its lease given up in the store, so that
    /// another engine on the store takes it up at once instead of after a lease. A step still
    /// running when `grace` runs out is cut and runs again there, at least once (or comes
    /// back `Interrupted` if it is at-most-once), as after a crash.
    ///
    /// Returns which runs ended here and which were released. Calling it again (or on
    /// clones) drains what is left and changes nothing else. The engine stays usable for
    /// reading (its store, subscriptions, signals).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sagaflow_core::runtime::{Builder, Engine, EngineError, StepError};
    /// use sagaflow_core::StepOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut b = Builder::<u32>::new("Slow");
    /// let input = b.input();
    /// let first = b.step("first", StepOptions::new(), (input,), |_, (x,)| async move {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    ///     Ok::<_, StepError>(*x + 1)
    /// });
    /// let second = b.step("second", StepOptions::new(), (first,), |_, (x,)| async move {
    ///     Ok::<_, StepError>(*x * 2)
    /// });
    /// let def = b.build_with_output(second);
    ///
    /// let engine = Engine::ephemeral();
    /// let run = engine.start(&def, "run-1", 1).await?;
    /// // `first` is running: it ends within the grace period, `second` is not started here.
    /// let drained = engine.shutdown(Duration::from_secs(5)).await;
    /// assert_eq!(drained.released.len(), 1);
    /// assert!(run.wait().await.is_err(), "released: another engine takes it up");
    /// assert!(matches!(
    ///     engine.start(&def, "run-2", 1).await,
    ///     Err(EngineError::ShuttingDown { .. })
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`EngineError::ShuttingDown`]: crate::runtime::EngineError::ShuttingDown
    /// [`RunError::Released`]: crate::runtime::RunError::Released
    pub async fn shutdown(&self, grace: Duration) -> Drained {
        let live: Vec<(RunId, Arc<Control>)> = {
            // Under every shard's lock, so that every start either was claimed before (and is
            // waited for here) or finds the engine draining.
            let shards = self.inner.runs.lock_all();
            self.inner.lifecycle.begin();
            shards
                .iter()
                .flat_map(|shard| shard.runs.iter())
                .filter_map(|(run_id, entry)| {
                    entry
                        .running()
                        .map(|control| (run_id.clone(), Arc::clone(control)))
                })
                .collect()
        };
        tracing::info!(runs = live.len(), ?grace, "the engine drains");
        let deadline = tokio::time::Instant::now() + grace;
        let mut drained = Drained::default();
        for (run_id, control) in &live {
            let ended = tokio::time::timeout_at(deadline, control.outcome.wait()).await;
            if ended.is_err() {
                // Still running a step: cut it, and release the run.
                control.release_now();
                drained.cut.push(run_id.clone());
                control.outcome.wait().await;
            }
            match control.outcome.get() {
                Some(Err(RunError::Released { .. })) => drained.released.push(run_id.clone()),
                Some(_) => drained.finished.push(run_id.clone()),
                // Its task went away with its runtime: nothing here holds it any more.
                None => drained.released.push(run_id.clone()),
            }
        }
        let handed = self.inner.lifecycle.take_released();
        if !handed.is_empty()
            && let Err(error) = self.inner.store.give_up(&handed).await
        {
            tracing::warn!(%error, runs = handed.len(), "the released runs' leases could not be given up; they will expire");
            drained.error = Some(error);
        }
        tracing::info!(
            finished = drained.finished.len(),
            released = drained.released.len(),
            cut = drained.cut.len(),
            "the engine has drained"
        );
        drained
    }

    /// Whether [`shutdown`](Self::shutdown) was called on this engine (or a clone).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.lifecycle.is_draining()
    }
}
