//! A property over random DAGs with random transient failures: the run succeeds, every step
//! completes exactly once (its failed attempts aside), and no step starts before all of its
//! inputs have completed.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use sagaflow_core::runtime::{Builder, Engine, Handle, StepContext, StepError, StepStatus};
use sagaflow_core::{RetryPolicy, StepOptions};

#[derive(Debug, Clone)]
struct Dag {
    /// Each step's inputs: earlier steps, at most two.
    deps: Vec<Vec<usize>>,
    /// How many times each step fails before it succeeds (fewer than its attempts).
    failures: Vec<u32>,
}

fn dag() -> impl Strategy<Value = Dag> {
    (1_usize..=12)
        .prop_flat_map(|n| {
            let deps: Vec<BoxedStrategy<Vec<usize>>> = (0..n)
                .map(|i| {
                    prop::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(2)).boxed()
                })
                .collect();
            (deps, prop::collection::vec(0_u32..3, n))
        })
        .prop_map(|(deps, failures)| Dag { deps, failures })
}

#[derive(Debug, Clone, PartialEq)]
enum Log {
    Start(usize),
    Done(usize),
}

/// Step `i`: fails `failures[i]` times, then logs and returns `i` plus its inputs' sum.
async fn step(
    ctx: StepContext,
    i: usize,
    fails: u32,
    inputs: u64,
    log: Arc<Mutex<Vec<Log>>>,
) -> Result<u64, StepError> {
    if ctx.attempt() <= fails {
        return Err(StepError::new("transient"));
    }
    log.lock().unwrap().push(Log::Start(i));
    tokio::task::yield_now().await;
    log.lock().unwrap().push(Log::Done(i));
    Ok(i as u64 + inputs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_dags_with_retries_run_each_step_once_in_dependency_order(dag in dag()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let options = StepOptions {
            retry: Some(RetryPolicy {
                initial_interval: Duration::from_millis(1),
                backoff_coefficient: 1.0,
                maximum_interval: None,
                maximum_attempts: 3,
                jitter: 0.0,
            }),
            ..StepOptions::new()
        };
        let mut b = Builder::<u64>::new("Random");
        let input = b.input();
        let mut handles: Vec<Handle<u64>> = Vec::new();
        for (i, deps) in dag.deps.iter().enumerate() {
            let (fails, log) = (dag.failures[i], Arc::clone(&log));
            let name = format!("s{i}");
            let h = match deps.as_slice() {
                [] => b.step(&name, options.clone(), (input,), move |c, (x,)| step(c, i, fails, *x, Arc::clone(&log))),
                [a] => b.step(&name, options.clone(), (handles[*a],), move |c, (x,)| step(c, i, fails, *x, Arc::clone(&log))),
                [a, d, ..] => b.step(&name, options.clone(), (handles[*a], handles[*d]), move |c, (x, y)| {
                    step(c, i, fails, *x + *y, Arc::clone(&log))
                }),
            };
            handles.push(h);
        }
        let def = b.build();
        let report = runtime.block_on(async {
            let engine = Engine::ephemeral();
            engine.start(&def, "r", 0).await.unwrap().wait().await.unwrap()
        });
        let log = log.lock().unwrap().clone();
        for (i, deps) in dag.deps.iter().enumerate() {
            let step = &report.steps[i];
            prop_assert_eq!(step.status, StepStatus::Completed);
            prop_assert_eq!(step.attempts, dag.failures[i] + 1);
            let starts = log.iter().filter(|l| **l == Log::Start(i)).count();
            prop_assert_eq!(starts, 1, "s{} ran its effect {} times", i, starts);
            let start = log.iter().position(|l| *l == Log::Start(i)).unwrap();
            for &d in deps {
                let done = log.iter().position(|l| *l == Log::Done(d)).unwrap();
                prop_assert!(done < start, "s{} started before its input s{} was done", i, d);
            }
        }
    }
}
