//! What a step knows about the attempt it runs in.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::runtime::error::StepError;
pub use crate::runtime::id::RunId;

/// Where a context waits for signals: the engine that runs the step.
#[async_trait::async_trait]
pub(crate) trait SignalSource: Send + Sync {
    /// The payload of signal `name` for `run_id`, once it has been delivered, as JSON.
    async fn wait(&self, run_id: &RunId, name: &str) -> Result<String, StepError>;
}

/// The run in flight a context belongs to, as the engine hands it: its id, its steps' names
/// and the signals its steps wait on. One reference to it is all a context made by the
/// engine holds, so that making one for each attempt costs one reference count, not three.
pub(crate) trait StepScope: SignalSource {
    /// The run's id.
    fn run_id(&self) -> &RunId;
    /// The name of step `index` (empty if there is no such step).
    fn step_name(&self, index: usize) -> &str;
}

/// Handed to every attempt of a step, by reference, as its first argument.
#[derive(Clone)]
pub struct StepContext {
    scope: Scope,
    attempt: u32,
}

#[derive(Clone)]
enum Scope {
    /// Made with [`StepContext::new`]: no engine behind it, so no signals.
    Own { run_id: RunId, step: Arc<str> },
    /// Made by the engine for step `index` of a run in flight.
    Run {
        run: Arc<dyn StepScope>,
        index: usize,
    },
    /// Another scope whose idempotency keys are made for another run: see
    /// [`StepContext::keyed_as`]. Behind an `Arc` so that a context stays as small as it was.
    Keyed(Arc<(Scope, RunId)>),
}

impl Scope {
    fn run_id(&self) -> &RunId {
        match self {
            Scope::Own { run_id, .. } => run_id,
            Scope::Run { run, .. } => run.run_id(),
            Scope::Keyed(keyed) => keyed.0.run_id(),
        }
    }

    fn step(&self) -> &str {
        match self {
            Scope::Own { step, .. } => step,
            Scope::Run { run, index } => run.step_name(*index),
            Scope::Keyed(keyed) => keyed.0.step(),
        }
    }

    /// The run whose id starts this scope's idempotency keys.
    fn key_run(&self) -> &RunId {
        match self {
            Scope::Keyed(keyed) => &keyed.1,
            other => other.run_id(),
        }
    }

    /// The run in flight behind this scope, if an engine made it.
    fn engine_run(&self) -> Option<&Arc<dyn StepScope>> {
        match self {
            Scope::Own { .. } => None,
            Scope::Run { run, .. } => Some(run),
            Scope::Keyed(keyed) => keyed.0.engine_run(),
        }
    }
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepContext")
            .field("run_id", self.run_id())
            .field("step", &self.step())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl StepContext {
    /// A context, as the engine makes one for each attempt. Public so that a step function can
    /// be unit-tested on its own.
    pub fn new(run_id: RunId, step: impl Into<Arc<str>>, attempt: u32) -> Self {
        Self {
            scope: Scope::Own {
                run_id,
                step: step.into(),
            },
            attempt,
        }
    }

    /// The context of an attempt of step `index` of the run in flight `run`, whose signals
    /// it can wait on.
    pub(crate) fn for_run(run: Arc<dyn StepScope>, index: usize, attempt: u32) -> Self {
        Self {
            scope: Scope::Run { run, index },
            attempt,
        }
    }

    /// Waits for the signal `name` of this run (an approval, a callback) and returns its
    /// payload. The wait is durable: the signal is kept by the store, so a step that waits,
    /// crashes and is resumed finds it, even if it was sent while no process was running.
    /// Deliver it with `Engine::signal`. A signal is delivered once per name and run, so
    /// every attempt of the step sees the same payload.
    ///
    /// A payload that does not decode into `T` is a permanent error naming the signal.
    pub async fn signal<T: DeserializeOwned>(&self, name: &str) -> Result<T, StepError> {
        let Some(run) = self.scope.engine_run() else {
            return Err(StepError::permanent(format!(
                "step `{}` waits for signal `{name}`, but its context was not made by an engine",
                self.step()
            )));
        };
        let payload = run.wait(run.run_id(), name).await?;
        serde_json::from_str(&payload).map_err(|e| {
            StepError::permanent(format!(
                "signal `{name}` of run `{}` does not decode into `{}`: {e}",
                self.run_id(),
                std::any::type_name::<T>()
            ))
        })
    }

    /// The run this attempt belongs to.
    pub fn run_id(&self) -> &RunId {
        self.scope.run_id()
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        self.scope.step()
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// `run:step`: the same for every attempt of this step in this run, so a side effect keyed
    /// on it (a payment, an e-mail) happens once however often the step is retried.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.scope.key_run(), self.step())
    }

    /// This context with idempotency keys made for the run `key_run` instead of its own
    /// (`key_run:step`), everything else unchanged. For work that goes on across several
    /// runs and must keep one key: a saga's compensation is retried in a new run (a round)
    /// each time an operator retries it, and the service it calls must see the same key.
    ///
    /// ```
    /// use sagaflow_core::runtime::{RunId, StepContext};
    ///
    /// let ctx = StepContext::new(RunId::from("order-7~undo2"), "charge", 1);
    /// let ctx = ctx.keyed_as(RunId::from("order-7~undo"));
    /// assert_eq!(ctx.idempotency_key(), "order-7~undo:charge");
    /// assert_eq!(ctx.run_id().as_str(), "order-7~undo2");
    /// ```
    pub fn keyed_as(self, key_run: RunId) -> StepContext {
        StepContext {
            scope: Scope::Keyed(Arc::new((self.scope, key_run))),
            attempt: self.attempt,
        }
    }
}
