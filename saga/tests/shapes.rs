//! A property over random saga shapes (chains, fan-out, fan-in) and failure points: the
//! compensations that ran are exactly the completed steps, each once, in reverse order of
//! completion as the store recorded it.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Journal, completion_order, undo_retry};
use proptest::prelude::*;
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Engine, Handle};
use sagaflow_saga::{SagaBuilder, SagaDefinition, SagaOutcome};
use sagaflow_sqlite::SqliteEngine;

/// Step `i` (from 1) reads one or two earlier steps; step 0 reads the input.
#[derive(Debug, Clone)]
struct Shape {
    deps: Vec<Vec<usize>>,
    /// Milliseconds each step takes, to vary which parallel branch ends first.
    delays: Vec<u64>,
    fail_at: usize,
}

fn shape() -> impl Strategy<Value = Shape> {
    (2_usize..=7)
        .prop_flat_map(|n| {
            let deps: Vec<BoxedStrategy<Vec<usize>>> = (1..n)
                .map(|i| {
                    prop::sample::subsequence((0..i).collect::<Vec<_>>(), 1..=i.min(2)).boxed()
                })
                .collect();
            (deps, prop::collection::vec(0_u64..4, n), 0..n)
        })
        .prop_map(|(rest, delays, fail_at)| {
            let mut deps = vec![Vec::new()];
            deps.extend(rest);
            Shape {
                deps,
                delays,
                fail_at,
            }
        })
}

fn name(i: usize) -> String {
    format!("s{i}")
}

fn build(journal: &Journal, shape: &Shape) -> SagaDefinition<u64, ()> {
    let mut b = SagaBuilder::<u64>::new("Shape");
    let input = b.input();
    let mut handles: Vec<Handle<u64>> = Vec::new();
    for (i, deps) in shape.deps.iter().enumerate() {
        let (j, delay, k) = (journal.clone(), shape.delays[i], i as u64 + 1);
        let run = move |ctx, x: u64| {
            let j = j.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                j.step(&ctx, k, x).await
            }
        };
        let j = journal.clone();
        let undo = move |ctx, x: u64, out: u64| {
            let j = j.clone();
            async move { j.undo(&ctx, x, Some(out)).await }
        };
        let step_name = name(i);
        let undo_name = format!("undo_{i}");
        let handle = match deps.as_slice() {
            [] => {
                let h = b.step(&step_name, StepOptions::new(), (input,), move |c, (x,)| {
                    run(c, *x)
                });
                b.undo(
                    h,
                    &undo_name,
                    undo_retry(1),
                    (input,),
                    move |c, (x,), o: Arc<u64>| undo(c, *x, *o),
                );
                h
            }
            [a] => {
                let a = handles[*a];
                let h = b.step(&step_name, StepOptions::new(), (a,), move |c, (x,)| {
                    run(c, *x)
                });
                b.undo(
                    h,
                    &undo_name,
                    undo_retry(1),
                    (a,),
                    move |c, (x,), o: Arc<u64>| undo(c, *x, *o),
                );
                h
            }
            [a, d, ..] => {
                let (a, d) = (handles[*a], handles[*d]);
                let h = b.step(&step_name, StepOptions::new(), (a, d), move |c, (x, y)| {
                    run(c, *x + *y)
                });
                b.undo(
                    h,
                    &undo_name,
                    undo_retry(1),
                    (a, d),
                    move |c, (x, y), o: Arc<u64>| undo(c, *x + *y, *o),
                );
                h
            }
        };
        handles.push(handle);
    }
    b.build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn compensations_are_the_completed_steps_newest_first_each_once(shape in shape()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let journal = Journal::default();
            journal.script.lock().unwrap().fail = vec![name(shape.fail_at)];
            let saga = build(&journal, &shape);
            assert!(saga.problems().is_empty(), "{:?}", saga.problems());
            let engine = Engine::open_in_memory().unwrap();
            let outcome = saga.start(&engine, "run", 1).await.unwrap().wait().await.unwrap();
            let completed = completion_order(&engine, "run").await;
            assert!(!completed.contains(&name(shape.fail_at)));
            let expected: Vec<String> = completed.iter().rev().cloned().collect();
            match outcome {
                SagaOutcome::Compensated { undone, .. } => assert_eq!(undone, expected),
                other => panic!("{other:?}"),
            }
            assert_eq!(journal.undone(), expected, "each once, newest first");
            // Every step that ran to completion is among those undone.
            let mut did = journal.did();
            did.sort();
            let mut sorted = expected.clone();
            sorted.sort();
            assert_eq!(did, sorted);
        });
    }
}
