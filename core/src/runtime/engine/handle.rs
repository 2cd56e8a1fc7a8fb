//! A handle on a run: what `start` and `resume` give back, to wait for the run's outcome
//! or cancel it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::executor::Control;
use super::table::RunEntry;
use crate::runtime::definition::StepValue;
use crate::runtime::error::RunError;
use crate::runtime::id::RunId;
use crate::runtime::report::Report;

/// A handle on a run: wait for its outcome, or cancel it. Any number of handles may exist
/// for one run; they all see the same outcome.
pub struct RunHandle<O> {
    run_id: RunId,
    pub(super) control: Arc<Control>,
    _output: PhantomData<fn() -> O>,
}

impl<O> fmt::Debug for RunHandle<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle")
            .field("run_id", &self.run_id)
            .field("workflow", &self.control.workflow)
            .finish_non_exhaustive()
    }
}

impl<O> RunHandle<O> {
    pub(super) fn new(run_id: RunId, entry: &RunEntry) -> Self {
        Self {
            run_id,
            control: entry.control(),
            _output: PhantomData,
        }
    }
}

impl<O: StepValue> RunHandle<O> {
    /// The run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Asks the run to stop: running attempts are dropped and the run ends with
    /// [`RunError::Cancelled`]. Does nothing once the run has finished.
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// Waits for the run's outcome.
    pub async fn wait(self) -> Result<Report<O>, RunError> {
        // The outcome may be there already (a run whose steps never wait ends inside
        // `start`): like tokio's own resources, the wait spends a unit of the task's budget,
        // so that a loop of runs yields to the runtime now and then.
        tokio::task::coop::consume_budget().await;
        let Some(outcome) = self.control.outcome.wait().await else {
            return Err(RunError::Internal {
                run_id: self.run_id,
                message: "the run's task ended without an outcome (was the runtime shut down?)"
                    .to_owned(),
            });
        };
        match outcome {
            Ok(finished) => match Arc::clone(&finished.output).downcast::<O>() {
                Ok(output) => Ok(Report {
                    run_id: self.run_id,
                    workflow: self.control.workflow.clone(),
                    output,
                    steps: finished.steps.clone(),
                }),
                Err(_) => Err(RunError::Internal {
                    run_id: self.run_id,
                    message: format!("the run's output is not a `{}`", std::any::type_name::<O>()),
                }),
            },
            Err(error) => Err(error.clone()),
        }
    }
}
