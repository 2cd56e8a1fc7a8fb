//! What happened in a run, step by step.

use std::sync::Arc;
use std::time::Duration;

use crate::graph::NodeStyle;
use crate::runtime::definition::Name;
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
    /// The step's name, the definition's (no copy per run; see [`Name`]).
    pub name: Name,
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
    /// The workflow's name, the definition's (no copy per run; see [`Name`]).
    pub workflow: Name,
    /// The run's output. Shared, because every handle on the run sees the same one.
    pub output: Arc<O>,
    /// Each step, in declaration order. Shared: every handle on the run made before its last
    /// handle was gone sees the same list; a handle made on a completed run kept after that
    /// gets it made again (the engine keeps a step's end in 16 bytes, not 48).
    pub steps: StepReports,
}

impl<O> Report<O> {
    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| *s.name == *name)
    }
}

/// A finished run's steps, in declaration order: a slice (`report.steps.len()`,
/// `report.steps[0]`, `for step in &report.steps`), shared rather than copied: the handles on a
/// run that exist together see one list. A completed run that the engine keeps after its last
/// handle is gone is kept compactly, and a later handle's `wait` gets the list made again, equal
/// to the first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepReports(Arc<[StepReport]>);

impl std::ops::Deref for StepReports {
    type Target = [StepReport];

    fn deref(&self) -> &[StepReport] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a StepReports {
    type Item = &'a StepReport;
    type IntoIter = std::slice::Iter<'a, StepReport>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<StepReport>> for StepReports {
    fn from(steps: Vec<StepReport>) -> Self {
        Self(steps.into())
    }
}

impl FromIterator<StepReport> for StepReports {
    fn from_iter<T: IntoIterator<Item = StepReport>>(steps: T) -> Self {
        Self(steps.into_iter().collect())
    }
}

impl From<StepReports> for Vec<StepReport> {
    fn from(steps: StepReports) -> Self {
        steps.0.to_vec()
    }
}

impl PartialEq<[StepReport]> for StepReports {
    fn eq(&self, other: &[StepReport]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<Vec<StepReport>> for StepReports {
    fn eq(&self, other: &Vec<StepReport>) -> bool {
        *self.0 == **other
    }
}
