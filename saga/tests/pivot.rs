//! The pivot: before it (and at it) a failure is compensated; past it, only forward.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Journal, undo_retry};
use sagaflow_core::runtime::{Engine, Handle};
use sagaflow_core::{RetryPolicy, StepOptions};
use sagaflow_saga::{SagaBuilder, SagaDefinition, SagaOutcome, SagaStatus};
use sagaflow_sqlite::SqliteEngine;

/// `build / undo -> push / undo -> shift! -> smoke -> notify`, with quick retries on the
/// steps after the pivot, capped at 2 attempts (which the pivot lifts).
fn deploy(journal: &Journal) -> SagaDefinition<u64, u64> {
    let mut b = SagaBuilder::<u64>::new("Deploy");
    let input = b.input();
    let build = undoable(&mut b, journal, "build", 1, input);
    let push = undoable(&mut b, journal, "push", 2, build);
    let j = journal.clone();
    let shift = b.pivot("shift", StepOptions::new(), (push,), move |ctx, (x,)| {
        let j = j.clone();
        async move { j.step(&ctx, 3, *x).await }
    });
    let quick = StepOptions {
        retry: Some(RetryPolicy {
            initial_interval: Duration::from_millis(1),
            backoff_coefficient: 1.0,
            maximum_interval: None,
            maximum_attempts: 2,
            jitter: 0.0,
        }),
        ..StepOptions::new()
    };
    let smoke = forward(&mut b, journal, "smoke", quick.clone(), shift);
    let notify = forward(&mut b, journal, "notify", quick, smoke);
    b.build_with_output(notify)
}

fn undoable(
    b: &mut SagaBuilder<u64>,
    journal: &Journal,
    name: &str,
    k: u64,
    input: Handle<u64>,
) -> Handle<u64> {
    let j = journal.clone();
    let step = b.step(name, StepOptions::new(), (input,), move |ctx, (x,)| {
        let j = j.clone();
        async move { j.step(&ctx, k, *x).await }
    });
    let j = journal.clone();
    b.undo(
        step,
        &format!("undo_{name}"),
        undo_retry(1),
        (input,),
        move |ctx, (x,), out: Arc<u64>| {
            let j = j.clone();
            async move { j.undo(&ctx, *x, Some(*out)).await }
        },
    );
    step
}

fn forward(
    b: &mut SagaBuilder<u64>,
    journal: &Journal,
    name: &str,
    options: StepOptions,
    input: Handle<u64>,
) -> Handle<u64> {
    let j = journal.clone();
    b.step(name, options, (input,), move |ctx, (x,)| {
        let j = j.clone();
        async move { j.step(&ctx, 1, *x).await }
    })
}

#[tokio::test]
async fn past_the_pivot_a_failing_step_is_retried_until_it_succeeds_and_nothing_is_undone() {
    let journal = Journal::default();
    // Five transient failures, far past the step's own `maximum_attempts = 2`.
    journal
        .script
        .lock()
        .unwrap()
        .flaky
        .insert("smoke".into(), 5);
    let saga = deploy(&journal);
    let engine = Engine::open_in_memory().unwrap();
    let outcome = saga
        .start(&engine, "p", 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let SagaOutcome::Completed(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(report.step("smoke").unwrap().attempts, 6);
    assert!(journal.undone().is_empty());
    assert_eq!(journal.did(), ["build", "push", "shift", "smoke", "notify"]);
}

#[tokio::test]
async fn past_the_pivot_even_a_permanent_error_is_retried_and_the_saga_reports_it() {
    let journal = Journal::default();
    journal.script.lock().unwrap().fail = vec!["smoke".into()];
    let saga = deploy(&journal);
    let engine = Engine::open_in_memory().unwrap();
    let handle = saga.start(&engine, "p", 0).await.unwrap();
    // The saga says it is retrying, with the step, its attempts and its error.
    let status = loop {
        let status = saga.status(&engine, "p").await.unwrap();
        if matches!(&status, SagaStatus::Retrying { attempts, .. } if *attempts >= 3) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    match status {
        SagaStatus::Retrying { step, error, .. } => {
            assert_eq!(step, "smoke");
            assert!(error.unwrap_or_default().contains("smoke broke"));
        }
        other => panic!("{other:?}"),
    }
    journal.script.lock().unwrap().fail.clear();
    let outcome = handle.wait().await.unwrap();
    assert!(outcome.is_completed(), "{outcome:?}");
    assert!(journal.undone().is_empty());
}

#[tokio::test]
async fn the_pivot_failing_compensates_the_steps_before_it() {
    let journal = Journal::default();
    journal.script.lock().unwrap().fail = vec!["shift".into()];
    let saga = deploy(&journal);
    let engine = Engine::open_in_memory().unwrap();
    let outcome = saga
        .start(&engine, "p", 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(
        matches!(&outcome, SagaOutcome::Compensated { undone, .. } if *undone == ["push", "build"]),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_saga_past_its_pivot_is_not_cancelled() {
    let journal = Journal::default();
    journal.script.lock().unwrap().fail = vec!["smoke".into()];
    let saga = deploy(&journal);
    let engine = Engine::open_in_memory().unwrap();
    let handle = saga.start(&engine, "p", 0).await.unwrap();
    while !matches!(
        saga.status(&engine, "p").await.unwrap(),
        SagaStatus::Retrying { .. }
    ) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    handle.cancel();
    // Give the driver time to see the request and decide.
    tokio::time::sleep(Duration::from_millis(20)).await;
    journal.script.lock().unwrap().fail.clear();
    let outcome = handle.wait().await.unwrap();
    assert!(outcome.is_completed(), "{outcome:?}");
    assert!(journal.undone().is_empty());
}
