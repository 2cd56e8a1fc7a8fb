//! A built saga: its forward definition, its compensations, and the calls that start, take up
//! and operate on its runs.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::runtime::engine::Waiting;
use sagaflow_core::runtime::{Definition, Engine, RunId, StepValue};

use crate::driver::{self, SagaHandle};
use crate::error::{SagaDefinitionError, SagaError};
use crate::inner::SagaInner;
use crate::status::SagaStatus;

/// A saga taking `I` and producing `O`, built by [`SagaBuilder`](crate::SagaBuilder) or the
/// `saga!` macro. Cheap to clone.
pub struct SagaDefinition<I, O> {
    pub(crate) forward: Definition<I, O>,
    pub(crate) inner: Arc<SagaInner>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for SagaDefinition<I, O> {
    fn clone(&self) -> Self {
        Self {
            forward: self.forward.clone(),
            inner: Arc::clone(&self.inner),
            _types: PhantomData,
        }
    }
}

impl<I, O> std::fmt::Debug for SagaDefinition<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaDefinition")
            .field("name", &self.inner.name)
            .field("steps", &self.inner.steps.len())
            .finish_non_exhaustive()
    }
}

impl<I: StepValue, O: StepValue> SagaDefinition<I, O> {
    pub(crate) fn new(forward: Definition<I, O>, inner: Arc<SagaInner>) -> Self {
        Self {
            forward,
            inner,
            _types: PhantomData,
        }
    }

    /// The saga's name, also the workflow name of its forward runs.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The forward steps as a workflow definition.
    pub fn forward(&self) -> &Definition<I, O> {
        &self.forward
    }

    /// Every problem found when the saga was built; empty for a valid saga.
    pub fn problems(&self) -> &[SagaDefinitionError] {
        &self.inner.problems
    }

    /// The names of the pivots.
    pub fn pivots(&self) -> Vec<&str> {
        self.inner.pivots().collect()
    }

    /// The compensation of `step`, by its own name, if it has one.
    pub fn compensation_of(&self, step: &str) -> Option<&str> {
        let index = self.inner.index_of(step)?;
        self.inner.undos[index].as_ref().map(|u| u.name.as_str())
    }

    /// The forward graph as a mermaid flowchart, each compensation noted on its step.
    pub fn mermaid(&self) -> String {
        self.forward.mermaid()
    }

    /// The forward graph in Graphviz DOT.
    pub fn dot(&self) -> String {
        self.forward.dot()
    }

    /// Starts a saga run with id `run_id`, or takes up the run that has this id (the id is
    /// the idempotency key). The run goes on in the background; the handle waits for its
    /// outcome and can cancel it. The engine must keep step outputs (SQLite: `Engine::open`,
    /// `Engine::in_memory`), since a failure is compensated from them.
    pub async fn start(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
        input: I,
    ) -> Result<SagaHandle<O>, SagaError> {
        self.inner.check()?;
        let run_id = run_id.into();
        let handle = engine.start(&self.forward, run_id.clone(), input).await?;
        driver::launch(self, engine, run_id, Some(handle)).await
    }

    /// Takes up the saga run `run_id` wherever it stands: its forward run, or its
    /// compensation, or its outcome if it has ended.
    pub async fn resume(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
    ) -> Result<SagaHandle<O>, SagaError> {
        self.inner.check()?;
        driver::launch(self, engine, run_id.into(), None).await
    }

    /// Takes up every saga run of this saga that has not ended, as a service does at
    /// start-up after a crash: unfinished forward runs, compensations a crash cut, and
    /// failed runs whose compensation a crash kept from starting. Stuck sagas are left for
    /// an operator. One run that cannot be taken up does not stop the others. A run another
    /// owner holds under a live lease is in [`RecoveredSagas::waiting`]: taken up here by
    /// itself once that lease runs out, unless renewed.
    pub async fn recover(&self, engine: &Engine) -> Result<RecoveredSagas<O>, SagaError> {
        self.inner.check()?;
        driver::recover(self, engine).await
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
        driver::operate(self, engine, run_id.into(), driver::Operation::Retry).await
    }

    /// Skips the compensation a stuck saga is stuck on (its effect is left for a person to
    /// undo) and runs the ones left.
    pub async fn skip(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
    ) -> Result<SagaHandle<O>, SagaError> {
        self.inner.check()?;
        driver::operate(self, engine, run_id.into(), driver::Operation::Skip).await
    }

    /// Acts on the operators' requests for this saga's stuck runs, made from outside the
    /// process with [`requests::request`](crate::requests::request) (the `sagaflow` command
    /// line does): each is retried, skipped or abandoned as asked, once. A service calls it
    /// now and then (or runs [`serve`](Self::serve)); returns handles on the sagas it took up.
    pub async fn serve_requests(&self, engine: &Engine) -> Result<Vec<SagaHandle<O>>, SagaError> {
        self.inner.check()?;
        driver::serve_requests(self, engine).await
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
        driver::operate(self, engine, run_id.into(), driver::Operation::Abandon).await
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
