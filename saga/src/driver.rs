//! Driving a saga run: its forward run on the engine, then, if that stops short, the rounds
//! of compensation; and the operator's retry, skip and abandon of a stuck saga.
//!
//! The driver keeps no state of its own: everything it decides comes from the store (the
//! forward run, the rounds and their plans), so a process that takes a saga up after a crash
//! decides exactly what the crashed one would have.
//!
//! Its entry points are [`SagaDefinition`]'s calls that start, take up and operate on saga
//! runs, here with what they hand back ([`SagaHandle`], [`RecoveredSagas`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use sagaflow_core::runtime::StepValue;
use sagaflow_core::runtime::engine::Waiting;
use sagaflow_core::runtime::{
    Engine, EngineError, Report, RunError, RunHandle, RunId, StepStatus, StoredRunStatus,
};

use crate::definition::SagaDefinition;
use crate::error::SagaError;
use crate::plan::{self, Plan};
use crate::requests::{self, OperatorAction};
use crate::status::{self, SagaStatus};

/// How a saga run ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SagaOutcome<O> {
    /// Every forward step completed.
    Completed(Report<O>),
    /// A step failed (or the saga was cancelled, or ran past its deadline) and every
    /// compensation ran, newest first.
    Compensated {
        /// Why.
        cause: String,
        /// The forward steps undone, in the order their compensations completed.
        undone: Vec<String>,
        /// The steps whose compensation an operator skipped.
        skipped: Vec<String>,
    },
    /// A compensation failed for good; see [`SagaDefinition::retry`],
    /// [`SagaDefinition::skip`] and [`SagaDefinition::abandon`].
    Stuck {
        /// The forward step whose compensation failed.
        step: String,
        /// The compensation's attempts.
        attempts: u32,
        /// Its last error: kept, never swallowed.
        error: String,
        /// The forward steps undone before it got stuck.
        undone: Vec<String>,
    },
    /// An operator abandoned the stuck saga.
    Abandoned {
        /// Why it had compensated.
        cause: String,
    },
}

impl<O> SagaOutcome<O> {
    /// Whether every forward step completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, SagaOutcome::Completed(_))
    }
}

/// A saga run going on in the background.
#[derive(Debug)]
pub struct SagaHandle<O> {
    run_id: RunId,
    saga: String,
    cancel: watch::Sender<bool>,
    task: JoinHandle<Result<SagaOutcome<O>, SagaError>>,
}

impl<O> SagaHandle<O> {
    /// The saga run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Cancels the saga: its forward run stops and what completed is compensated. A saga
    /// past its pivot cannot go back, so it goes on.
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// Waits for the saga's outcome.
    pub async fn wait(self) -> Result<SagaOutcome<O>, SagaError> {
        match self.task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(SagaError::Driver {
                saga: self.saga,
                run_id: self.run_id,
                message: e.to_string(),
            }),
        }
    }
}

/// What [`SagaDefinition::recover`] did: the saga runs it took up now, those another owner
/// holds under a live lease (taken up here by themselves once the lease runs out), and those
/// it could not take up, each with why. The same shape as a workflow's
/// [`Recovered`](sagaflow_core::runtime::Recovered).
#[derive(Debug)]
pub struct RecoveredSagas<O> {
    /// Handles on the saga runs taken up now.
    pub runs: Vec<SagaHandle<O>>,
    /// The saga runs leased by another owner: each is taken up by this engine once its lease
    /// runs out unless renewed, with no further call ([`Waiting::taken`] gives its handle).
    pub waiting: Vec<Waiting<SagaHandle<O>, SagaError>>,
    /// The runs that could not be taken up, each with why.
    pub failed: Vec<(RunId, SagaError)>,
}

impl<I: StepValue, O: StepValue> SagaDefinition<I, O> {
    /// Starts a saga run with id `run_id`, or takes up the run that has this id (the id is
    /// the idempotency key). The run goes on in the background; the handle waits for its
    /// outcome and can cancel it. The engine must keep step outputs (SQLite: `Engine::open`,
    /// `Engine::open_in_memory`), since a failure is compensated from them.
    pub async fn start(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
        input: I,
    ) -> Result<SagaHandle<O>, SagaError> {
        self.inner.check()?;
        engine.retain_until_compensated(self.name());
        let run_id = run_id.into();
        let handle = engine.start(&self.forward, run_id.clone(), input).await?;
        launch(self, engine, run_id, Some(handle)).await
    }

    /// Takes up the saga run `run_id` wherever it stands: its forward run, or its
    /// compensation, or its outcome if it has ended.
    pub async fn resume(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
    ) -> Result<SagaHandle<O>, SagaError> {
        self.inner.check()?;
        launch(self, engine, run_id.into(), None).await
    }

    /// Takes up every saga run of this saga that has not ended, as a service does at
    /// start-up after a crash: unfinished forward runs, compensations a crash cut, and
    /// failed runs whose compensation a crash kept from starting. Stuck sagas are left for
    /// an operator. One run that cannot be taken up does not stop the others. A run another
    /// owner holds under a live lease is in [`RecoveredSagas::waiting`]: taken up here by
    /// itself once that lease runs out, unless renewed.
    pub async fn recover(&self, engine: &Engine) -> Result<RecoveredSagas<O>, SagaError> {
        self.inner.check()?;
        recover(self, engine).await
    }

    /// Where the saga run `run_id` stands, as the store has it.
    pub async fn status(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
    ) -> Result<SagaStatus, SagaError> {
        crate::status::status(&self.inner, engine, &run_id.into()).await
    }

    /// Runs the compensations a stuck saga has left, from the one that got stuck.
    pub async fn retry(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
    ) -> Result<SagaHandle<O>, SagaError> {
        self.inner.check()?;
        operate(self, engine, run_id.into(), Operation::Retry).await
    }

    /// Skips the compensation a stuck saga is stuck on (its effect is left for a person to
    /// undo) and runs the ones left.
    pub async fn skip(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
    ) -> Result<SagaHandle<O>, SagaError> {
        self.inner.check()?;
        operate(self, engine, run_id.into(), Operation::Skip).await
    }

    /// Acts on the operators' requests for this saga's stuck runs, made from outside the
    /// process with [`requests::request`](crate::requests::request) (the `sagaflow` command
    /// line does): each is retried, skipped or abandoned as asked, once. A service calls it
    /// now and then (or runs [`serve`](Self::serve)); returns handles on the sagas it took up.
    pub async fn serve_requests(&self, engine: &Engine) -> Result<Vec<SagaHandle<O>>, SagaError> {
        self.inner.check()?;
        serve_requests(self, engine).await
    }

    /// Calls [`serve_requests`](Self::serve_requests) every `period` until the returned task
    /// is aborted; the sagas it takes up run on in the background. A failed pass is logged
    /// and the next one tries again.
    pub fn serve(&self, engine: &Engine, period: Duration) -> tokio::task::JoinHandle<()> {
        let (saga, engine) = (self.clone(), engine.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                if let Err(error) = saga.serve_requests(&engine).await {
                    tracing::warn!(saga = saga.name(), %error, "serving operator requests failed");
                }
            }
        })
    }

    /// Gives up on a stuck saga: no further compensation runs, and it ends `Abandoned`.
    pub async fn abandon(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
    ) -> Result<SagaHandle<O>, SagaError> {
        self.inner.check()?;
        operate(self, engine, run_id.into(), Operation::Abandon).await
    }
}

/// How long a saga waits before it watches again for a cancellation asked from outside the
/// process, after the store could not be read.
const CANCEL_RETRY: Duration = Duration::from_secs(1);

/// What an operator asks of a stuck saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Retry,
    Skip,
    Abandon,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::Retry => "retried",
            Operation::Skip => "skipped",
            Operation::Abandon => "abandoned",
        }
    }
}

/// Starts the task that drives the saga run `run_id`: `forward` when the caller just started
/// it, else whatever the store says is next.
pub(crate) async fn launch<I: StepValue, O: StepValue>(
    saga: &SagaDefinition<I, O>,
    engine: &Engine,
    run_id: RunId,
    forward: Option<RunHandle<O>>,
) -> Result<SagaHandle<O>, SagaError> {
    let store = &**engine.store();
    let stored = match store.load_run(&run_id).await? {
        Some(stored) => stored,
        None if forward.is_some() => {
            return Err(SagaError::NotDurable {
                saga: saga.name().to_owned(),
                run_id,
            });
        }
        None => {
            return Err(SagaError::NotFound {
                saga: saga.name().to_owned(),
                run_id,
            });
        }
    };
    let forward = match forward {
        Some(handle) => Some(handle),
        None => match stored.status {
            StoredRunStatus::Failed | StoredRunStatus::Cancelled => None,
            _ => Some(engine.resume(saga.forward(), run_id.clone()).await?),
        },
    };
    let (cancel, cancelled) = watch::channel(false);
    let deadline = saga.inner.deadline.map(|d| remaining(d, stored.created_at));
    let task = tokio::spawn(drive(
        saga.clone(),
        engine.clone(),
        run_id.clone(),
        (forward, deadline),
        cancelled,
    ));
    Ok(SagaHandle {
        run_id,
        saga: saga.name().to_owned(),
        cancel,
        task,
    })
}

/// What is left of a saga's deadline: it counts from the run's first start, by the wall
/// clock, so a saga taken up after a restart does not get its whole time again. A store that
/// does not know when the run started gives it all of it from now.
fn remaining(deadline: Duration, started: Option<SystemTime>) -> Duration {
    let spent = started
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .unwrap_or_default();
    deadline.saturating_sub(spent)
}

async fn drive<I: StepValue, O: StepValue>(
    saga: SagaDefinition<I, O>,
    engine: Engine,
    run_id: RunId,
    (forward, deadline): (Option<RunHandle<O>>, Option<Duration>),
    cancelled: watch::Receiver<bool>,
) -> Result<SagaOutcome<O>, SagaError> {
    let mut cause = None;
    if let Some(handle) = forward {
        let (result, why) =
            wait_forward(&saga, &engine, &run_id, (handle, deadline), cancelled).await;
        match result {
            Ok(report) => return Ok(SagaOutcome::Completed(report)),
            Err(
                RunError::StepFailed { .. }
                | RunError::Cancelled { .. }
                | RunError::FailedEarlier { .. },
            ) => cause = why,
            Err(other) => return Err(SagaError::Run(other)),
        }
    }
    compensate(&saga, &engine, &run_id, cause, None).await
}

/// Waits for the forward run, cancelling it when the saga is cancelled or what is left of its
/// deadline (`left`) passes, unless it is past its pivot. Returns the run's result and, when
/// the saga stopped it, why.
async fn wait_forward<I: StepValue, O: StepValue>(
    saga: &SagaDefinition<I, O>,
    engine: &Engine,
    run_id: &RunId,
    (handle, left): (RunHandle<O>, Option<Duration>),
    mut cancelled: watch::Receiver<bool>,
) -> (Result<Report<O>, RunError>, Option<String>) {
    let wait = handle.wait();
    tokio::pin!(wait);
    let deadline = saga.inner.deadline;
    let sleep = tokio::time::sleep(left.unwrap_or_default());
    tokio::pin!(sleep);
    let mut watch_deadline = left.is_some();
    let mut watch_cancel = true;
    let mut why = None;
    // A cancellation asked from outside the process (`requests::request_cancel`), found by
    // the engine's signal poller: one question to the store a second for all its sagas.
    let asked_outside = async {
        loop {
            match engine
                .wait_for_signal::<serde::de::IgnoredAny>(run_id.clone(), requests::CANCEL_SIGNAL)
                .await
            {
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(saga = saga.name(), run_id = %run_id, %error, "cannot watch for a cancellation; trying again");
                    tokio::time::sleep(CANCEL_RETRY).await;
                }
            }
        }
    };
    tokio::pin!(asked_outside);
    loop {
        tokio::select! {
            result = &mut wait => return (result, why),
            () = &mut asked_outside, if watch_cancel => {
                watch_cancel = false;
                if !past_pivot(saga, engine, run_id).await {
                    tracing::info!(saga = saga.name(), run_id = %run_id, "saga cancelled from outside; compensating");
                    why = Some(format!("saga run `{run_id}` was cancelled by a request"));
                    engine.cancel(run_id);
                }
            }
            asked = async { cancelled.wait_for(|c| *c).await.is_ok() }, if watch_cancel => {
                watch_cancel = false;
                if asked && !past_pivot(saga, engine, run_id).await {
                    tracing::info!(saga = saga.name(), run_id = %run_id, "saga cancelled; compensating");
                    why = Some(format!("saga run `{run_id}` was cancelled"));
                    engine.cancel(run_id);
                }
            }
            () = &mut sleep, if watch_deadline => {
                watch_deadline = false;
                if !past_pivot(saga, engine, run_id).await {
                    let d = deadline.unwrap_or_default();
                    tracing::info!(saga = saga.name(), run_id = %run_id, "saga deadline passed; compensating");
                    why = Some(format!("saga run `{run_id}` ran past its deadline of {d:?}"));
                    engine.cancel(run_id);
                }
            }
        }
    }
}

/// Whether the forward run has gone past a pivot: a pivot completed, or a step after one
/// started. A store that cannot tell is taken to say no.
async fn past_pivot<I: StepValue, O: StepValue>(
    saga: &SagaDefinition<I, O>,
    engine: &Engine,
    run_id: &RunId,
) -> bool {
    let inner = &saga.inner;
    if inner.pivots().next().is_none() {
        return false;
    }
    let Ok(Some(stored)) = engine.store().load_run(run_id).await else {
        return false;
    };
    stored.steps.iter().any(|s| {
        let pivot_done = inner.pivots().any(|p| p == s.name) && s.status == StepStatus::Completed;
        pivot_done || (inner.is_forward_only(&s.name) && s.attempts > 0)
    })
}

/// Runs (or takes up, or reads the end of) the saga's compensation. With an operation, the
/// saga must be stuck, and the next round does what the operator asked.
async fn compensate<I: StepValue, O: StepValue>(
    saga: &SagaDefinition<I, O>,
    engine: &Engine,
    run_id: &RunId,
    cause: Option<String>,
    operation: Option<Operation>,
) -> Result<SagaOutcome<O>, SagaError> {
    let inner = &saga.inner;
    let store = &**engine.store();
    let forward = status::load_forward(inner, store, run_id).await?;
    let latest = status::latest_round(inner, store, run_id).await?;
    let (number, plan) = match (latest, operation) {
        (None, None) => {
            let mut plan = plan::first_plan(inner, store, run_id, &forward).await?;
            if let Some(cause) = cause {
                plan.cause = cause;
            }
            (1, plan)
        }
        (Some(round), None) => (round.number, round.plan),
        (Some(round), Some(op))
            if matches!(
                round.run.status,
                StoredRunStatus::Failed | StoredRunStatus::Cancelled
            ) =>
        {
            let stuck = plan::stuck_step(&round.run).map(|s| s.name.clone());
            let plan = match op {
                Operation::Retry => plan::next_plan(&round.plan, &round.run, None),
                Operation::Skip => plan::next_plan(&round.plan, &round.run, stuck.as_deref()),
                Operation::Abandon => Plan {
                    steps: Vec::new(),
                    cause: round.plan.cause.clone(),
                    skipped: round.plan.skipped.clone(),
                    abandoned: true,
                },
            };
            tracing::info!(saga = saga.name(), run_id = %run_id, action = op.verb(), "operator acts on a stuck saga");
            (round.number + 1, plan)
        }
        (latest, Some(op)) => {
            let status = match latest {
                Some(round) => status::round_status(inner, store, run_id, &round).await?,
                None => status::status(inner, engine, run_id).await?,
            };
            return Err(SagaError::NotStuck {
                saga: saga.name().to_owned(),
                run_id: run_id.clone(),
                status: status.to_string(),
                action: op.verb(),
            });
        }
    };
    let values = plan::forward_values(inner, saga.forward().erased(), run_id, &forward, &plan)?;
    let def = plan::round_definition(inner, &plan, &values);
    let round_id = plan::round_id(run_id, number);
    let result = engine
        .start(&def, round_id.clone(), plan.clone())
        .await?
        .wait()
        .await;
    match result {
        Ok(_) if plan.abandoned => Ok(SagaOutcome::Abandoned { cause: plan.cause }),
        Ok(_) => Ok(SagaOutcome::Compensated {
            undone: status::undone(inner, store, run_id, number).await?,
            cause: plan.cause,
            skipped: plan.skipped,
        }),
        Err(RunError::StepFailed { .. } | RunError::FailedEarlier { .. }) => {
            let round = store.load_run(&round_id).await?;
            let stuck = round.as_ref().and_then(plan::stuck_step);
            let undone = status::undone(inner, store, run_id, number).await?;
            tracing::warn!(saga = saga.name(), run_id = %run_id, "a compensation failed for good: the saga is stuck");
            Ok(SagaOutcome::Stuck {
                step: stuck.map(|s| s.name.clone()).unwrap_or_default(),
                attempts: stuck.map_or(0, |s| s.attempts),
                error: stuck
                    .and_then(|s| s.error.clone())
                    .or_else(|| round.and_then(|r| r.error))
                    .unwrap_or_default(),
                undone,
            })
        }
        Err(other) => Err(SagaError::Run(other)),
    }
}

/// An operator's action on the stuck saga run `run_id`, driven in the background.
pub(crate) async fn operate<I: StepValue, O: StepValue>(
    saga: &SagaDefinition<I, O>,
    engine: &Engine,
    run_id: RunId,
    operation: Operation,
) -> Result<SagaHandle<O>, SagaError> {
    // Refused before the task starts, so that the caller gets `NotStuck` from the call.
    let inner = &saga.inner;
    let store = &**engine.store();
    let latest = status::latest_round(inner, store, &run_id).await?;
    let stuck = latest.as_ref().is_some_and(|r| {
        matches!(
            r.run.status,
            StoredRunStatus::Failed | StoredRunStatus::Cancelled
        )
    });
    if !stuck {
        let status = status::status(inner, engine, &run_id).await?;
        return Err(SagaError::NotStuck {
            saga: saga.name().to_owned(),
            run_id,
            status: status.to_string(),
            action: operation.verb(),
        });
    }
    let (cancel, _) = watch::channel(false);
    let (saga2, engine2, id2) = (saga.clone(), engine.clone(), run_id.clone());
    let task =
        tokio::spawn(
            async move { compensate(&saga2, &engine2, &id2, None, Some(operation)).await },
        );
    Ok(SagaHandle {
        run_id,
        saga: saga.name().to_owned(),
        cancel,
        task,
    })
}

/// See [`SagaDefinition::serve_requests`].
pub(crate) async fn serve_requests<I: StepValue, O: StepValue>(
    saga: &SagaDefinition<I, O>,
    engine: &Engine,
) -> Result<Vec<SagaHandle<O>>, SagaError> {
    let store = Arc::clone(engine.store());
    let mut handles = Vec::new();
    for round in store.stopped_runs(&saga.inner.compensation_name()).await? {
        let (Some(run_id), Some(number)) =
            (plan::saga_of_round(&round), plan::round_number(&round))
        else {
            continue;
        };
        // A request is acted on by starting the next round: once that exists, it is done.
        if store
            .load_run(&plan::round_id(&run_id, number + 1))
            .await?
            .is_some()
        {
            continue;
        }
        let Some(action) = requests::pending(&*store, &round).await? else {
            continue;
        };
        let operation = match action {
            OperatorAction::Retry => Operation::Retry,
            OperatorAction::Skip => Operation::Skip,
            OperatorAction::Abandon => Operation::Abandon,
        };
        tracing::info!(saga = saga.name(), run_id = %run_id, action = action.as_str(), "an operator's request");
        handles.push(operate(saga, engine, run_id, operation).await?);
    }
    Ok(handles)
}

/// See [`SagaDefinition::recover`].
pub(crate) async fn recover<I: StepValue, O: StepValue>(
    saga: &SagaDefinition<I, O>,
    engine: &Engine,
) -> Result<RecoveredSagas<O>, SagaError> {
    engine.retain_until_compensated(saga.name());
    let store = Arc::clone(engine.store());
    let compensation = saga.inner.compensation_name();
    let mut ids: Vec<RunId> = Vec::new();
    for run in store.unfinished_runs().await? {
        let id = if run.workflow == saga.name() {
            Some(run.run_id)
        } else if run.workflow == compensation {
            plan::saga_of_round(&run.run_id)
        } else {
            None
        };
        if let Some(id) = id
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    for id in store.stopped_runs(saga.name()).await? {
        let started = store.load_run(&plan::round_id(&id, 1)).await?.is_some();
        if !started && !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut recovered = RecoveredSagas {
        runs: Vec::new(),
        waiting: Vec::new(),
        failed: Vec::new(),
    };
    for id in ids {
        match launch(saga, engine, id.clone(), None).await {
            Ok(handle) => recovered.runs.push(handle),
            Err(SagaError::Engine(EngineError::Leased {
                run_id,
                owner,
                expires_in,
                ..
            })) => {
                let definition = saga.clone();
                let waiting = engine.take_up_when_free(run_id, owner, expires_in, move |engine| {
                    let saga = definition.clone();
                    let id = id.clone();
                    async move { launch(&saga, &engine, id, None).await }
                });
                tracing::info!(saga = saga.name(), "{waiting}");
                recovered.waiting.push(waiting);
            }
            Err(error) => {
                tracing::warn!(saga = saga.name(), run_id = %id, error = %error, "a saga run could not be recovered");
                recovered.failed.push((id, error));
            }
        }
    }
    Ok(recovered)
}
