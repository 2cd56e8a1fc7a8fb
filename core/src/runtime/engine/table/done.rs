//! A completed run as the engine's table keeps it once its handles are gone: its output, and
//! each step's end in 16 bytes instead of a [`StepReport`]'s 48. The step's name is the
//! definition's, and the rare error of a step that failed with `on_error = continue` is kept
//! apart. A handle on the run made later gets the report made again from it.
//!
//! A kept `chain_100` run was 4.95 KB, almost all of it its report's hundred entries: about
//! 50 MB for the default 10,000 kept runs (`benches/README.md`, session 31).

use std::sync::Arc;
use std::time::Duration;

use super::super::executor::{Control, Finished};
use crate::runtime::definition::{ErasedDefinition, Name, Value};
use crate::runtime::error::StepError;
use crate::runtime::report::{StepReport, StepReports, StepStatus};

/// A completed run the table keeps (see the [module docs](self)).
pub(crate) struct Done {
    output: Value,
    steps: Box<[Step]>,
    /// The errors of the steps that failed and let the run go on, by step.
    errors: Box<[(usize, StepError)]>,
    /// Whose plan names the steps.
    def: Arc<ErasedDefinition>,
}

/// One step's end: what its report says, but its name and error.
struct Step {
    /// Its duration in nanoseconds; `u64::MAX` if it has none.
    nanos: u64,
    attempts: u32,
    status: StepStatus,
}

/// `u64::MAX` nanoseconds: no duration.
const NO_DURATION: u64 = u64::MAX;

impl Done {
    /// The run `def` completed with `finished`.
    pub(crate) fn new(finished: &Finished, def: &Arc<ErasedDefinition>) -> Self {
        let steps = finished
            .steps
            .iter()
            .map(|step| Step {
                nanos: step.duration.map_or(NO_DURATION, |d| {
                    u64::try_from(d.as_nanos())
                        .unwrap_or(NO_DURATION - 1)
                        .min(NO_DURATION - 1)
                }),
                attempts: step.attempts,
                status: step.status,
            })
            .collect();
        let errors = finished
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| step.error.clone().map(|error| (i, error)))
            .collect();
        Done {
            output: Arc::clone(&finished.output),
            steps,
            errors,
            def: Arc::clone(def),
        }
    }

    /// The run's workflow.
    pub(crate) fn workflow(&self) -> &Name {
        self.def.shared_name()
    }

    /// A control whose outcome is the run's, with its report made again, for a new handle.
    pub(crate) fn control(&self) -> Arc<Control> {
        let control = Control::new(self.workflow().clone());
        control.outcome.publish(Ok(Finished {
            output: Arc::clone(&self.output),
            steps: self.reports(),
        }));
        Arc::new(control)
    }

    /// The run's report, as the run's end made it.
    fn reports(&self) -> StepReports {
        let names = self.def.steps();
        self.steps
            .iter()
            .enumerate()
            .map(|(i, step)| StepReport {
                name: names
                    .get(i)
                    .map(|step| step.shared_name().clone())
                    .unwrap_or_default(),
                status: step.status,
                attempts: step.attempts,
                duration: (step.nanos != NO_DURATION).then(|| Duration::from_nanos(step.nanos)),
                error: self
                    .errors
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map(|(_, error)| error.clone()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_kept_in_16_bytes() {
        assert_eq!(std::mem::size_of::<Step>(), 16);
    }
}
