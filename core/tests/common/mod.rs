//! Helpers shared by the engine's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sagaflow_core::RetryPolicy;
use sagaflow_core::runtime::{
    Definition, Engine, MemoryStore, RecordedChange, Report, RunError, RunId, StepValue,
};
use tokio::time::Instant;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A retry policy without jitter.
pub fn policy(
    initial_ms: u64,
    coefficient: f64,
    max_ms: Option<u64>,
    attempts: u32,
) -> RetryPolicy {
    RetryPolicy {
        initial_interval: ms(initial_ms),
        backoff_coefficient: coefficient,
        maximum_interval: max_ms.map(ms),
        maximum_attempts: attempts,
        jitter: 0.0,
    }
}

/// Starts a run and waits for it.
pub async fn run<I: StepValue, O: StepValue>(
    engine: &Engine,
    def: &Definition<I, O>,
    id: &str,
    input: I,
) -> Result<Report<O>, RunError> {
    engine
        .start(def, id, input)
        .await
        .expect("the run starts")
        .wait()
        .await
}

/// An engine on a store the test can read.
pub fn engine_with_store() -> (Engine, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder().store(store.clone()).build();
    (engine, store)
}

pub fn changes(store: &MemoryStore, id: &str) -> Vec<RecordedChange> {
    store
        .changes(&RunId::from(id))
        .expect("the run is in the store")
}

/// A list that steps append to, to check order and timing afterwards.
#[derive(Clone, Default)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Log<T> {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }

    pub fn push(&self, item: T) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(item);
    }

    pub fn items(&self) -> Vec<T> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The gaps between consecutive instants.
pub fn gaps(instants: &[Instant]) -> Vec<Duration> {
    instants.windows(2).map(|w| w[1] - w[0]).collect()
}
