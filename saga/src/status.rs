//! Where a saga run stands, read from the store: its forward run and its compensation rounds.

use sagaflow_core::runtime::{Engine, RunId, StepStatus, Store, StoredRun, StoredRunStatus};

use crate::error::SagaError;
use crate::inner::SagaInner;
use crate::plan::{self, ABANDON_STEP, END_STEP, Plan};

/// Where a saga run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SagaStatus {
    /// Its forward steps are running.
    Running,
    /// Past its pivot, a step is failing and being retried until it succeeds.
    Retrying {
        /// The step.
        step: String,
        /// Attempts so far.
        attempts: u32,
        /// Its last error, as stored.
        error: Option<String>,
    },
    /// Every forward step completed.
    Completed,
    /// A step failed (or the saga was cancelled, or ran past its deadline) and the
    /// compensations are running.
    Compensating {
        /// Why the saga compensates.
        cause: String,
    },
    /// Every compensation ran (or was skipped by an operator).
    Compensated {
        /// Why the saga compensated.
        cause: String,
        /// The forward steps undone, in the order their compensations completed.
        undone: Vec<String>,
        /// The forward steps whose compensation an operator skipped.
        skipped: Vec<String>,
    },
    /// A compensation failed for good: the saga waits for an operator to retry it, skip it
    /// or abandon the saga.
    Stuck {
        /// The forward step whose compensation failed.
        step: String,
        /// The compensation's attempts.
        attempts: u32,
        /// Its last error.
        error: String,
    },
    /// An operator gave up on the stuck saga.
    Abandoned {
        /// Why the saga had compensated.
        cause: String,
    },
    /// The forward run, or the latest compensation round, kept crashing its process and was
    /// parked: nothing runs it until an operator acts.
    Parked {
        /// What the store says.
        error: Option<String>,
    },
}

impl std::fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SagaStatus::Running => f.write_str("running"),
            SagaStatus::Retrying { step, attempts, .. } => {
                write!(f, "retrying `{step}` past the pivot ({attempts} attempts)")
            }
            SagaStatus::Completed => f.write_str("completed"),
            SagaStatus::Compensating { .. } => f.write_str("compensating"),
            SagaStatus::Compensated { .. } => f.write_str("compensated"),
            SagaStatus::Stuck { step, .. } => write!(f, "stuck on the compensation of `{step}`"),
            SagaStatus::Abandoned { .. } => f.write_str("abandoned"),
            SagaStatus::Parked { .. } => f.write_str("parked"),
        }
    }
}

/// A compensation round as stored, with its plan.
pub(crate) struct Round {
    pub(crate) number: u32,
    pub(crate) run: StoredRun,
    pub(crate) plan: Plan,
}

/// The latest compensation round of `run_id`, if it has one.
pub(crate) async fn latest_round(
    saga: &SagaInner,
    store: &dyn Store,
    run_id: &RunId,
) -> Result<Option<Round>, SagaError> {
    let mut latest = None;
    let mut number = 1;
    while let Some(run) = store.load_run(&plan::round_id(run_id, number)).await? {
        latest = Some((number, run));
        number += 1;
    }
    let Some((number, run)) = latest else {
        return Ok(None);
    };
    let plan = decode_plan(saga, run_id, &run)?;
    Ok(Some(Round { number, run, plan }))
}

pub(crate) fn decode_plan(
    saga: &SagaInner,
    run_id: &RunId,
    round: &StoredRun,
) -> Result<Plan, SagaError> {
    serde_json::from_str(&round.input).map_err(|e| SagaError::Decode {
        saga: saga.name.clone(),
        run_id: run_id.clone(),
        what: "compensation plan".to_owned(),
        message: e.to_string(),
    })
}

/// The forward steps undone over rounds `1..=upto`, in the order their compensations ran.
pub(crate) async fn undone(
    saga: &SagaInner,
    store: &dyn Store,
    run_id: &RunId,
    upto: u32,
) -> Result<Vec<String>, SagaError> {
    let mut undone: Vec<String> = Vec::new();
    for number in 1..=upto {
        let Some(run) = store.load_run(&plan::round_id(run_id, number)).await? else {
            continue;
        };
        let plan = decode_plan(saga, run_id, &run)?;
        for planned in &plan.steps {
            let done = run
                .steps
                .iter()
                .any(|s| s.name == planned.step && s.status == StepStatus::Completed);
            if done && !undone.contains(&planned.step) {
                undone.push(planned.step.clone());
            }
        }
    }
    Ok(undone)
}

pub(crate) async fn load_forward(
    saga: &SagaInner,
    store: &dyn Store,
    run_id: &RunId,
) -> Result<StoredRun, SagaError> {
    store
        .load_run(run_id)
        .await?
        .ok_or_else(|| SagaError::NotFound {
            saga: saga.name.clone(),
            run_id: run_id.clone(),
        })
}

pub(crate) async fn status(
    saga: &SagaInner,
    engine: &Engine,
    run_id: &RunId,
) -> Result<SagaStatus, SagaError> {
    let store = &**engine.store();
    let forward = load_forward(saga, store, run_id).await?;
    match forward.status {
        StoredRunStatus::Running => {
            let retrying = forward.steps.iter().find(|s| {
                saga.is_forward_only(&s.name) && s.status == StepStatus::Running && s.attempts > 1
            });
            Ok(match retrying {
                Some(step) => SagaStatus::Retrying {
                    step: step.name.clone(),
                    attempts: step.attempts,
                    error: step.error.clone(),
                },
                None => SagaStatus::Running,
            })
        }
        StoredRunStatus::Parked => Ok(SagaStatus::Parked {
            error: forward.error,
        }),
        StoredRunStatus::Completed => Ok(SagaStatus::Completed),
        StoredRunStatus::Failed | StoredRunStatus::Cancelled => {
            let Some(round) = latest_round(saga, store, run_id).await? else {
                return Ok(SagaStatus::Compensating {
                    cause: forward
                        .error
                        .unwrap_or_else(|| format!("run `{run_id}` was cancelled")),
                });
            };
            round_status(saga, store, run_id, &round).await
        }
    }
}

/// Where a saga stands once its forward run stopped, from its latest compensation round: the
/// one rule that [`SagaDefinition::status`](crate::SagaDefinition::status) and the command
/// line (which reads rounds without the saga's definition) both apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundStanding {
    /// The round runs (or was interrupted and will be taken up).
    Compensating,
    /// The round kept crashing its process and was parked.
    Parked,
    /// The round stopped on a compensation that failed for good: an operator decides.
    Stuck,
    /// An operator gave the compensation up.
    Abandoned,
    /// Every completed step was undone (or skipped by an operator).
    Compensated,
}

impl RoundStanding {
    /// The standing of a saga whose latest round is `round`, `abandoned` if an operator gave
    /// it up.
    pub fn of(round: StoredRunStatus, abandoned: bool) -> RoundStanding {
        match round {
            StoredRunStatus::Running => RoundStanding::Compensating,
            StoredRunStatus::Parked => RoundStanding::Parked,
            StoredRunStatus::Failed | StoredRunStatus::Cancelled => RoundStanding::Stuck,
            StoredRunStatus::Completed if abandoned => RoundStanding::Abandoned,
            StoredRunStatus::Completed => RoundStanding::Compensated,
        }
    }

    /// The standing's name: `compensating`, `parked`, `stuck`, `abandoned`, `compensated`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoundStanding::Compensating => "compensating",
            RoundStanding::Parked => "parked",
            RoundStanding::Stuck => "stuck",
            RoundStanding::Abandoned => "abandoned",
            RoundStanding::Compensated => "compensated",
        }
    }
}

/// Where the saga stands once its forward run stopped, from its latest round.
pub(crate) async fn round_status(
    saga: &SagaInner,
    store: &dyn Store,
    run_id: &RunId,
    round: &Round,
) -> Result<SagaStatus, SagaError> {
    let cause = round.plan.cause.clone();
    Ok(
        match RoundStanding::of(round.run.status, round.plan.abandoned) {
            RoundStanding::Compensating => SagaStatus::Compensating { cause },
            RoundStanding::Parked => SagaStatus::Parked {
                error: round.run.error.clone(),
            },
            RoundStanding::Abandoned => SagaStatus::Abandoned { cause },
            RoundStanding::Compensated => SagaStatus::Compensated {
                cause,
                undone: undone(saga, store, run_id, round.number).await?,
                skipped: round.plan.skipped.clone(),
            },
            RoundStanding::Stuck => match plan::stuck_step(&round.run) {
                Some(step) if step.name != END_STEP && step.name != ABANDON_STEP => {
                    SagaStatus::Stuck {
                        step: step.name.clone(),
                        attempts: step.attempts,
                        error: step.error.clone().unwrap_or_default(),
                    }
                }
                _ => SagaStatus::Stuck {
                    step: String::new(),
                    attempts: 0,
                    error: round.run.error.clone().unwrap_or_default(),
                },
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saga_stands_where_its_latest_round_does() {
        use StoredRunStatus::*;
        let cases = [
            (Running, false, RoundStanding::Compensating),
            (Parked, false, RoundStanding::Parked),
            (Failed, false, RoundStanding::Stuck),
            (Cancelled, false, RoundStanding::Stuck),
            (Completed, true, RoundStanding::Abandoned),
            (Completed, false, RoundStanding::Compensated),
        ];
        for (round, abandoned, standing) in cases {
            assert_eq!(RoundStanding::of(round, abandoned), standing, "{round:?}");
        }
        assert_eq!(RoundStanding::Stuck.as_str(), "stuck");
    }
}
