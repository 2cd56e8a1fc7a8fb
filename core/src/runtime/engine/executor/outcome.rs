//! How a run ends: its outcome from the state its step tasks left, the final checkpoint, and
//! the reports every handle sees.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Finished, Outcome, Run, StepCell, Stop, lock};
use crate::runtime::definition::Value;
use crate::runtime::error::{RunError, StoreError};
use crate::runtime::report::{StepReport, StepStatus};
use crate::runtime::store::Change;

/// The run's outcome, once every step task has ended, before the store hears of it.
pub(super) fn settle(run: &Run) -> Outcome {
    let stop = lock(&run.stop).take();
    let stop = match stop {
        // Drained after its last step ended: the run is complete all the same.
        Some(Stop::Drained) if run.steps.iter().all(|cell| cell.end.get().is_some()) => {
            match completed_output(run) {
                Ok(output) => {
                    return Ok(Finished {
                        output,
                        steps: reports(run),
                    });
                }
                Err(message) => Stop::Internal(message.to_owned()),
            }
        }
        Some(stop) => stop,
        None => match completed_output(run) {
            Ok(output) => {
                return Ok(Finished {
                    output,
                    steps: reports(run),
                });
            }
            Err(message) => Stop::Internal(message.to_owned()),
        },
    };
    Err(match stop {
        Stop::Failed {
            index,
            attempts,
            error,
        } => {
            let step = run
                .def
                .steps()
                .get(index)
                .map(|s| s.name().to_owned())
                .unwrap_or_default();
            tracing::warn!(step = %step, attempts, error = %error, "run failed");
            RunError::StepFailed {
                run_id: run.run_id.clone(),
                step,
                attempts,
                error,
                steps: reports(run),
            }
        }
        Stop::Cancelled => {
            tracing::debug!("run cancelled");
            RunError::Cancelled {
                run_id: run.run_id.clone(),
                steps: reports(run),
            }
        }
        Stop::Store(source) => store_error(run, source),
        Stop::Internal(message) => run.internal(message),
        Stop::Earlier(error) => RunError::FailedEarlier {
            run_id: run.run_id.clone(),
            error,
        },
        Stop::Drained => {
            tracing::info!("run released: the engine drains");
            RunError::Released {
                run_id: run.run_id.clone(),
                steps: reports(run),
            }
        }
    })
}

/// Records the run's end and returns its outcome.
pub(super) async fn conclude(run: &Run) -> Outcome {
    let outcome = settle(run);
    if run.end_recorded {
        return outcome;
    }
    let change = match &outcome {
        Ok(_) => Change::RunCompleted,
        Err(RunError::Cancelled { .. }) => Change::RunCancelled,
        // The run is left as the store last saw it: a durable store can resume it once it
        // is reachable again, which a recorded failure would rule out.
        Err(RunError::Store { .. }) => return outcome,
        // Handed over: what ended is recorded, the end is another engine's to record.
        Err(RunError::Released { .. }) => {
            let last = lock(&run.last).take();
            if let Some(last) = last
                && let Err(source) = run.record_completed(&last, None).await
            {
                return Err(store_error(run, source));
            }
            return outcome;
        }
        Err(error) => Change::RunFailed { error },
    };
    // The last step's completion, if its task kept it, goes with the end: one commit.
    let last = lock(&run.last).take();
    let recorded = match (last, &change) {
        (Some(last), Change::RunCompleted) => run.record_completed(&last, Some(&change)).await,
        (Some(last), _) => match run.record_completed(&last, None).await {
            Ok(()) => run.record(&change).await,
            Err(source) => Err(source),
        },
        (None, _) => run.record(&change).await,
    };
    match recorded {
        Ok(()) => outcome,
        Err(source) => Err(store_error(run, source)),
    }
}

/// The output of a run that was not stopped, once every step has ended.
fn completed_output(run: &Run) -> Result<Value, &'static str> {
    if run.steps.iter().any(|cell| cell.end.get().is_none()) {
        // No step failed and nothing stopped the run, yet its tasks ended: they were dropped,
        // which happens when the runtime shuts down.
        return Err(
            "the run's tasks ended before every step did, although none failed (was the runtime shut down?)",
        );
    }
    match run.def.output_step() {
        None => Ok(Arc::new(())),
        Some(index) => run
            .steps
            .get(index)
            .and_then(StepCell::output)
            .cloned()
            .ok_or("the output step finished without an output"),
    }
}

/// The run stops on a store failure, its end unrecorded: its lease is let go to expire, so
/// that another process may take it over.
pub(super) fn store_error(run: &Run, source: StoreError) -> RunError {
    tracing::warn!(error = %source, "the store failed; the run stops");
    run.engine.store.release(&run.run_id);
    RunError::Store {
        run_id: run.run_id.clone(),
        source,
    }
}

/// Each step's state when the run ended, in declaration order. A step whose task was
/// aborted mid-way is `Running` with the attempts it made; one that never began an attempt
/// is `NotRun`.
fn reports<C: FromIterator<StepReport>>(run: &Run) -> C {
    run.steps
        .iter()
        .zip(run.def.steps())
        .map(|(cell, step)| {
            let attempts = cell.attempts.load(Ordering::Acquire);
            let ended = cell.end.get();
            let status = match ended {
                Some(ended) => ended.status,
                None if attempts > 0 => StepStatus::Running,
                None => StepStatus::NotRun,
            };
            let duration = ended.and_then(|ended| {
                let started = ended.started?;
                Some(ended.at.saturating_duration_since(started))
            });
            StepReport {
                name: step.shared_name().clone(),
                status,
                attempts,
                duration,
                error: ended.and_then(|e| e.error.clone()),
            }
        })
        .collect()
}
