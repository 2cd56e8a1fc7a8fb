//! What a run's handles hold on it: its [`Control`], through which they cancel it and in
//! which its outcome is published once ([`OutcomeCell`]), and the one right to publish that
//! outcome ([`OutcomeSender`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Run, Stop, lock};
use crate::runtime::definition::{ErasedDefinition, Name, Value};
use crate::runtime::engine::Inner;
use crate::runtime::engine::table::Done;
use crate::runtime::error::RunError;
use crate::runtime::id::RunId;
use crate::runtime::report::StepReports;

/// A finished run, before it is typed for a handle.
pub(crate) struct Finished {
    pub(crate) output: Value,
    pub(crate) steps: StepReports,
}

/// What every handle on a run eventually sees.
pub(crate) type Outcome = Result<Finished, RunError>;

/// Where a run's outcome is published, once, for every handle on the run to see. The outcome
/// is kept inline: a finished run costs no allocation of its own for it.
#[derive(Default)]
pub(crate) struct OutcomeCell {
    value: OnceLock<Outcome>,
    /// Set when the run went away without an outcome (its runtime shut down).
    closed: AtomicBool,
    published: Notify,
}

impl OutcomeCell {
    /// The outcome, once published.
    pub(crate) fn get(&self) -> Option<&Outcome> {
        self.value.get()
    }

    /// Publishes `outcome`, unless one was published already, and wakes every waiter.
    pub(crate) fn publish(&self, outcome: Outcome) {
        let _ = self.value.set(outcome);
        self.published.notify_waiters();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.published.notify_waiters();
    }

    /// The outcome, once published; `None` if the run went away without one.
    pub(crate) async fn wait(&self) -> Option<&Outcome> {
        loop {
            let published = self.published.notified();
            if let Some(outcome) = self.value.get() {
                return Some(outcome);
            }
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            // Made before the checks above, so a publication between them still wakes it.
            published.await;
        }
    }
}

/// The one right to publish a run's outcome. Dropped without publishing (the run's tasks
/// were dropped with their runtime), it tells every handle that the run went away.
pub(crate) struct OutcomeSender(Arc<Control>);

impl OutcomeSender {
    pub(crate) fn new(control: Arc<Control>) -> Self {
        Self(control)
    }

    fn send(&self, outcome: Outcome) {
        self.0.outcome.publish(outcome);
        // The run is over: the engine's table keeps its outcome, not the run's memory (a
        // `Weak` keeps its allocation alive).
        self.0.detach();
    }

    /// Tells the engine that the run `run_id` (of `def`, if it began) has ended at `at`,
    /// then sends `outcome`: whoever sees the outcome finds the engine's table as the end
    /// left it.
    pub(super) fn send_ended(
        &self,
        outcome: Outcome,
        engine: &Inner,
        run_id: &RunId,
        at: Instant,
        def: Option<&Arc<ErasedDefinition>>,
    ) {
        let released = matches!(outcome, Err(RunError::Released { .. }));
        // A completed run the table keeps is kept compactly.
        let done = || match (&outcome, def) {
            (Ok(finished), Some(def)) => Some(Done::new(finished, def)),
            _ => None,
        };
        engine.run_ended(run_id, &self.0, released, at, done);
        self.send(outcome);
    }
}

impl Drop for OutcomeSender {
    fn drop(&mut self) {
        if self.0.outcome.get().is_none() {
            self.0.outcome.close();
        }
    }
}

/// Lets handles cancel a run that may not exist yet (its start still awaits the store) or may
/// be gone (finished): it holds the run weakly while it runs, so a finished run's steps are
/// freed, and not at all once it has ended, so that its memory is too.
pub(crate) struct Control {
    /// The run's workflow: the definition's name, for the run's handles and the engine's
    /// table (whose entries do not hold it themselves, so that a kept run costs less).
    pub(crate) workflow: Name,
    cancelled: AtomicBool,
    run: Mutex<Weak<Run>>,
    /// The run's outcome, once it ended (or failed to start).
    pub(crate) outcome: OutcomeCell,
}

impl Control {
    /// The control of a run of `workflow`, not yet begun.
    pub(crate) fn new(workflow: Name) -> Self {
        Control {
            workflow,
            cancelled: AtomicBool::new(false),
            run: Mutex::new(Weak::new()),
            outcome: OutcomeCell::default(),
        }
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let run = lock(&self.run).upgrade();
        if let Some(run) = run {
            run.stop(Stop::Cancelled);
        }
    }

    pub(super) fn attach(&self, run: &Arc<Run>) {
        *lock(&self.run) = Arc::downgrade(run);
        if self.cancelled.load(Ordering::SeqCst) {
            run.stop(Stop::Cancelled);
        }
    }

    /// Cuts the run's running steps and releases it: the engine drains, and its grace period
    /// is over.
    pub(crate) fn release_now(&self) {
        let run = lock(&self.run).upgrade();
        if let Some(run) = run {
            run.stop(Stop::Drained);
        }
    }

    /// Forgets the run, once its outcome is published (nothing is left to cancel).
    fn detach(&self) {
        let run = std::mem::take(&mut *lock(&self.run));
        drop(run);
    }

    /// Whether the control holds no reference to its run, not even a weak one.
    #[cfg(test)]
    pub(crate) fn is_detached(&self) -> bool {
        Weak::ptr_eq(&lock(&self.run), &Weak::new())
    }
}
