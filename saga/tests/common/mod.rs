//! A saga whose steps and compensations write what they do into a shared journal, so tests
//! can see exactly what ran, with what, and how often.

#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sagaflow_core::runtime::{Engine, Event, EventKind, RunId, StepContext, StepError};
use sagaflow_core::{RetryPolicy, StepOptions};

/// What happened, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A step ran (attempt) with the value it received.
    Did { step: String, attempt: u32 },
    /// A compensation ran for `step`, with the step's input and output.
    Undid {
        step: String,
        input: u64,
        output: Option<u64>,
        attempt: u32,
    },
}

/// How each step and compensation should behave, set by the test; shared with the closures.
#[derive(Default)]
pub struct Script {
    /// Steps that fail for good.
    pub fail: Vec<String>,
    /// Steps that fail (transiently) this many times before succeeding.
    pub flaky: HashMap<String, u32>,
    /// Compensations (by forward step) that fail for good while the flag is set.
    pub undo_fails: HashMap<String, bool>,
    /// Compensations (by forward step) that fail transiently this many times first.
    pub undo_flaky: HashMap<String, u32>,
    /// Steps that never finish (until cancelled).
    pub hang: Vec<String>,
}

#[derive(Clone, Default)]
pub struct Journal {
    pub entries: Arc<Mutex<Vec<Entry>>>,
    pub script: Arc<Mutex<Script>>,
    /// The idempotency key of every attempt of a compensation, by forward step, whether the
    /// attempt succeeded or not.
    pub undo_keys: Arc<Mutex<Vec<(String, String)>>>,
}

impl Journal {
    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    /// The forward steps undone, in the order their compensations completed successfully.
    pub fn undone(&self) -> Vec<String> {
        let mut out = Vec::new();
        let entries = self.entries();
        for e in &entries {
            if let Entry::Undid { step, .. } = e {
                out.push(step.clone());
            }
        }
        out
    }

    pub fn did(&self) -> Vec<String> {
        self.entries()
            .iter()
            .filter_map(|e| match e {
                Entry::Did { step, .. } => Some(step.clone()),
                _ => None,
            })
            .collect()
    }

    /// A forward step: adds `k` to the value it gets (the sum of its inputs).
    pub async fn step(&self, ctx: &StepContext, k: u64, input: u64) -> Result<u64, StepError> {
        let step = ctx.step().to_owned();
        let (fail, flaky, hang) = {
            let mut script = self.script.lock().unwrap();
            let flaky = match script.flaky.get_mut(&step) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            };
            (
                script.fail.contains(&step),
                flaky,
                script.hang.contains(&step),
            )
        };
        if hang {
            std::future::pending::<()>().await;
        }
        if fail {
            return Err(StepError::permanent(format!("{step} broke")));
        }
        if flaky {
            return Err(StepError::new(format!("{step} flaked")));
        }
        self.entries.lock().unwrap().push(Entry::Did {
            step,
            attempt: ctx.attempt(),
        });
        Ok(input + k)
    }

    /// A compensation of `step`: records what it received.
    pub async fn undo(
        &self,
        ctx: &StepContext,
        input: u64,
        output: Option<u64>,
    ) -> Result<(), StepError> {
        let step = ctx.step().to_owned();
        self.undo_keys
            .lock()
            .unwrap()
            .push((step.clone(), ctx.idempotency_key()));
        {
            let mut script = self.script.lock().unwrap();
            if script.undo_fails.get(&step).copied().unwrap_or(false) {
                return Err(StepError::permanent(format!("cannot undo {step}")));
            }
            if let Some(n) = script.undo_flaky.get_mut(&step)
                && *n > 0
            {
                *n -= 1;
                return Err(StepError::new(format!("undo of {step} flaked")));
            }
        }
        self.entries.lock().unwrap().push(Entry::Undid {
            step,
            input,
            output,
            attempt: ctx.attempt(),
        });
        Ok(())
    }
}

/// Quick retries for compensations.
pub fn undo_retry(attempts: u32) -> StepOptions {
    StepOptions {
        retry: Some(RetryPolicy {
            initial_interval: std::time::Duration::from_millis(1),
            backoff_coefficient: 1.0,
            maximum_interval: None,
            maximum_attempts: attempts,
            jitter: 0.0,
        }),
        ..StepOptions::new()
    }
}

/// The forward steps of `run` in the order the store recorded their completion.
pub async fn completion_order(engine: &Engine, run: &str) -> Vec<String> {
    let events: Vec<Event> = engine
        .store()
        .events(Some(&RunId::from(run)), 0, 100_000)
        .await
        .unwrap();
    events
        .iter()
        .filter(|e| e.kind == EventKind::StepCompleted)
        .filter_map(|e| e.step.as_deref().map(str::to_owned))
        .collect()
}

/// An engine on PostgreSQL, in a schema of its own on the server the tests run on
/// (`sagaflow_postgres::testing`), or `None` when there is none (and `CI` is not set).
pub async fn pg_engine() -> Option<Engine> {
    let store = sagaflow_postgres::testing::store("saga").await?;
    Some(Engine::builder().store(Arc::new(store)).build())
}
