//! What a step knows about the attempt it runs in.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::runtime::error::StepError;

/// A run's id. It is also the run's idempotency key: starting an id that exists returns the
/// existing run.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(Arc<str>);

impl RunId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for RunId {
    fn from(s: &str) -> Self {
        RunId(s.into())
    }
}

impl From<String> for RunId {
    fn from(s: String) -> Self {
        RunId(s.into())
    }
}

impl From<&String> for RunId {
    fn from(s: &String) -> Self {
        RunId(s.as_str().into())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// Where a context waits for signals: the engine that runs the step.
#[async_trait::async_trait]
pub(crate) trait SignalSource: Send + Sync {
    /// The payload of signal `name` for `run_id`, once it has been delivered, as JSON.
    async fn wait(&self, run_id: &RunId, name: &str) -> Result<String, StepError>;
}

/// Handed to every attempt of a step, by reference, as its first argument.
#[derive(Clone)]
pub struct StepContext {
    run_id: RunId,
    step: Arc<str>,
    attempt: u32,
    signals: Option<Arc<dyn SignalSource>>,
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepContext")
            .field("run_id", &self.run_id)
            .field("step", &self.step)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl StepContext {
    /// A context, as the engine makes one for each attempt. Public so that a step function can
    /// be unit-tested on its own.
    pub fn new(run_id: RunId, step: impl Into<Arc<str>>, attempt: u32) -> Self {
        Self {
            run_id,
            step: step.into(),
            attempt,
            signals: None,
        }
    }

    /// This context, with the engine's signals to wait on.
    pub(crate) fn with_signals(mut self, signals: Arc<dyn SignalSource>) -> Self {
        self.signals = Some(signals);
        self
    }

    /// Waits for the signal `name` of this run (an approval, a callback) and returns its
    /// payload. The wait is durable: the signal is kept by the store, so a step that waits,
    /// crashes and is resumed finds it, even if it was sent while no process was running.
    /// Deliver it with `Engine::signal`. A signal is delivered once per name and run, so
    /// every attempt of the step sees the same payload.
    ///
    /// A payload that does not decode into `T` is a permanent error naming the signal.
    pub async fn signal<T: DeserializeOwned>(&self, name: &str) -> Result<T, StepError> {
        let Some(signals) = &self.signals else {
            return Err(StepError::permanent(format!(
                "step `{}` waits for signal `{name}`, but its context was not made by an engine",
                self.step
            )));
        };
        let payload = signals.wait(&self.run_id, name).await?;
        serde_json::from_str(&payload).map_err(|e| {
            StepError::permanent(format!(
                "signal `{name}` of run `{}` does not decode into `{}`: {e}",
                self.run_id,
                std::any::type_name::<T>()
            ))
        })
    }

    /// The run this attempt belongs to.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// `run:step`: the same for every attempt of this step in this run, so a side effect keyed
    /// on it (a payment, an e-mail) happens once however often the step is retried.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.run_id, self.step)
    }
}
