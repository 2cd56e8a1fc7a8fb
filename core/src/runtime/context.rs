//! What a step knows about the attempt it runs in.

use std::fmt;
use std::sync::Arc;

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

/// Handed to every attempt of a step, by reference, as its first argument.
#[derive(Clone, Debug)]
pub struct StepContext {
    run_id: RunId,
    step: Arc<str>,
    attempt: u32,
}

impl StepContext {
    /// A context, as the engine makes one for each attempt. Public so that a step function can
    /// be unit-tested on its own.
    pub fn new(run_id: RunId, step: impl Into<Arc<str>>, attempt: u32) -> Self {
        Self {
            run_id,
            step: step.into(),
            attempt,
        }
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
