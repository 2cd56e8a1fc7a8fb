//! What happened in a run, step by step.

use std::sync::Arc;
use std::time::Duration;

use crate::graph::NodeStyle;
use crate::runtime::error::step::StepError;
use crate::runtime::id::RunId;

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Waiting for its inputs.
    Pending,
    /// An attempt is running or a retry is waiting.
    Running,
    /// Finished with an output.
    Completed,
    /// Failed after its retries.
    Failed,
    /// Its guard returned `false`.
    Skipped,
    /// Never started because the run stopped first.
    NotRun,
    /// Its attempt was cut by a crash and, being at-most-once, it was not run again.
    Interrupted,
}

impl StepStatus {
    /// How the status is drawn in a diagram.
    pub fn style(self) -> NodeStyle {
        match self {
            StepStatus::Pending => NodeStyle::Pending,
            StepStatus::Running => NodeStyle::Running,
            StepStatus::Completed => NodeStyle::Completed,
            StepStatus::Failed | StepStatus::Interrupted => NodeStyle::Failed,
            StepStatus::Skipped | StepStatus::NotRun => NodeStyle::Skipped,
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The step's name, shared with the definition (no copy per run).
    pub name: Arc<str>,
    /// Where it stands.
    pub status: StepStatus,
    /// Attempts started.
    pub attempts: u32,
    /// From the first attempt's start to the step's end, once it ended.
    pub duration: Option<Duration>,
    /// The last attempt's error, if it failed.
    pub error: Option<StepError>,
}

/// A finished run: its output and what each step did.
#[derive(Debug, Clone)]
pub struct Report<O> {
    /// The run.
    pub run_id: RunId,
    /// The workflow's name, shared with the definition (no copy per run).
    pub workflow: Arc<str>,
    /// The run's output. Shared, because every handle on the run sees the same one.
    pub output: Arc<O>,
    /// Each step, in declaration order.
    pub steps: Vec<StepReport>,
}

impl<O> Report<O> {
    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| *s.name == *name)
    }
}
