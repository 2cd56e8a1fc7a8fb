//! Definition checks, unknown outcomes, and recovery of sagas a crash left half-way.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Entry, Journal, undo_retry};
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Engine, StepError};
use sagaflow_saga::{SagaBuilder, SagaDefinitionError, SagaError, SagaOutcome, SagaStatus};
use sagaflow_sqlite::SqliteEngine;

async fn noop(_: u64) -> Result<u64, StepError> {
    Ok(1)
}

#[test]
fn an_undo_after_the_pivot_two_pivots_and_a_second_undo_are_refused() {
    let mut b = SagaBuilder::<u64>::new("Bad");
    let input = b.input();
    let a = b.step("a", StepOptions::new(), (input,), |_, (x,)| noop(*x));
    let p = b.pivot("p", StepOptions::new(), (a,), |_, (x,)| noop(*x));
    let after = b.step("after", StepOptions::new(), (p,), |_, (x,)| noop(*x));
    let p2 = b.pivot("p2", StepOptions::new(), (after,), |_, (x,)| noop(*x));
    let undo = |_, (_,), _: Arc<u64>| async { Ok::<_, StepError>(()) };
    b.undo(a, "undo_a", StepOptions::new(), (input,), undo);
    b.undo(a, "undo_a_again", StepOptions::new(), (input,), undo);
    b.undo(after, "undo_after", StepOptions::new(), (p,), undo);
    b.undo(p2, "undo_p2", StepOptions::new(), (after,), undo);
    // The wrong inputs: `a` receives the input, not its own output.
    b.undo(a, "undo_wrong", StepOptions::new(), (a,), undo);
    let saga = b.build();
    assert_eq!(
        saga.problems(),
        &[
            SagaDefinitionError::TwoPivots {
                first: "p".into(),
                second: "p2".into()
            },
            SagaDefinitionError::DuplicateUndo { step: "a".into() },
            SagaDefinitionError::UndoAfterPivot {
                step: "after".into(),
                pivot: "p".into()
            },
            SagaDefinitionError::UndoOnPivot { step: "p2".into() },
            SagaDefinitionError::UndoInputs { step: "a".into() },
        ]
    );
}

#[tokio::test]
async fn an_invalid_saga_does_not_start() {
    let mut b = SagaBuilder::<u64>::new("Bad");
    let input = b.input();
    let a = b.pivot("a", StepOptions::new(), (input,), |_, (x,)| noop(*x));
    b.undo(
        a,
        "undo_a",
        StepOptions::new(),
        (input,),
        |_, (_,), _: Arc<u64>| async { Ok::<_, StepError>(()) },
    );
    let saga = b.build();
    let engine = Engine::open_in_memory().unwrap();
    let error = saga.start(&engine, "x", 1).await.unwrap_err();
    assert!(matches!(error, SagaError::Definition { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("step `a` is a pivot, so it cannot have a compensation"),
        "{error}"
    );
}

/// `build -> push`, where push's compensation is safe on an unknown outcome.
fn unknown_saga(journal: &Journal) -> sagaflow_saga::SagaDefinition<u64, u64> {
    let mut b = SagaBuilder::<u64>::new("Unknown");
    let input = b.input();
    let j = journal.clone();
    let build = b.step("build", StepOptions::new(), (input,), move |ctx, (x,)| {
        let j = j.clone();
        async move { j.step(&ctx, 1, *x).await }
    });
    let j = journal.clone();
    b.undo(
        build,
        "undo_build",
        undo_retry(1),
        (input,),
        move |ctx, (x,), out: Arc<u64>| {
            let j = j.clone();
            async move { j.undo(&ctx, *x, Some(*out)).await }
        },
    );
    let j = journal.clone();
    let push = b.step("push", StepOptions::new(), (build,), move |ctx, (x,)| {
        let j = j.clone();
        async move { j.step(&ctx, 2, *x).await }
    });
    let j = journal.clone();
    b.undo_on_unknown(
        push,
        "undo_push",
        undo_retry(1),
        (build,),
        move |ctx, (x,), out: Option<Arc<u64>>| {
            let j = j.clone();
            async move { j.undo(&ctx, *x, out.map(|o| *o)).await }
        },
    );
    b.build_with_output(push)
}

#[tokio::test]
async fn a_step_with_an_unknown_outcome_is_undone_when_its_undo_is_safe_for_that() {
    let journal = Journal::default();
    journal.script.lock().unwrap().fail = vec!["push".into()];
    let saga = unknown_saga(&journal);
    let engine = Engine::open_in_memory().unwrap();
    let outcome = saga
        .start(&engine, "u", 10)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(
        matches!(&outcome, SagaOutcome::Compensated { undone, .. } if *undone == ["push", "build"]),
        "{outcome:?}"
    );
    let undid: Vec<Entry> = journal
        .entries()
        .into_iter()
        .filter(|e| matches!(e, Entry::Undid { .. }))
        .collect();
    assert_eq!(
        undid,
        [
            Entry::Undid {
                step: "push".into(),
                input: 11,
                output: None,
                attempt: 1
            },
            Entry::Undid {
                step: "build".into(),
                input: 10,
                output: Some(11),
                attempt: 1
            },
        ]
    );
}

#[tokio::test]
async fn recovery_compensates_a_failed_run_whose_compensation_never_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.db");
    compensated_on_recovery(async || Engine::open(&path).unwrap()).await;
}

#[tokio::test]
async fn recovery_compensates_a_failed_run_whose_compensation_never_started_on_postgres() {
    if sagaflow_postgres::testing::server().await.is_none() {
        return;
    }
    let schema = sagaflow_postgres::testing::fresh_schema("saga");
    // Both processes are the same service (one owner), as a restarted one that kept its id.
    compensated_on_recovery(async || {
        sagaflow_postgres::testing::engine_as(&schema, "saga-service").await
    })
    .await;
}

/// A saga's forward run fails on an engine `open` gives, which is then dropped before the
/// compensation starts, as if the process died the moment the step failed; a second engine on
/// the same database recovers the saga and compensates it, once.
async fn compensated_on_recovery(open: impl AsyncFn() -> Engine) {
    let journal = Journal::default();
    journal.script.lock().unwrap().fail = vec!["push".into()];
    let saga = unknown_saga(&journal);
    {
        // The forward run alone, as if the process died the moment it failed.
        let engine = open().await;
        let result = engine
            .start(saga.forward(), "lost", 5)
            .await
            .unwrap()
            .wait()
            .await;
        assert!(result.is_err());
        let status = saga.status(&engine, "lost").await.unwrap();
        assert!(
            matches!(status, SagaStatus::Compensating { .. }),
            "{status:?}"
        );
    }
    assert!(journal.undone().is_empty());
    let engine = open().await;
    let recovered = saga.recover(&engine).await.unwrap();
    assert!(recovered.failed.is_empty(), "{:?}", recovered.failed);
    assert_eq!(recovered.runs.len(), 1);
    let handle = recovered.runs.into_iter().next().unwrap();
    assert_eq!(handle.run_id().as_str(), "lost");
    let outcome = handle.wait().await.unwrap();
    assert!(
        matches!(&outcome, SagaOutcome::Compensated { undone, .. } if *undone == ["push", "build"]),
        "{outcome:?}"
    );
    // Recovering again finds nothing left to do.
    let again = saga.recover(&engine).await.unwrap();
    assert!(again.runs.is_empty() && again.failed.is_empty());
    assert_eq!(journal.undone(), ["push", "build"]);
}

#[tokio::test]
async fn a_finished_saga_resumed_reports_its_outcome_and_runs_nothing() {
    let journal = Journal::default();
    journal.script.lock().unwrap().fail = vec!["push".into()];
    let saga = unknown_saga(&journal);
    let engine = Engine::open_in_memory().unwrap();
    saga.start(&engine, "f", 1)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let before = journal.entries().len();
    let outcome = saga
        .resume(&engine, "f")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(
        matches!(&outcome, SagaOutcome::Compensated { undone, .. } if *undone == ["push", "build"]),
        "{outcome:?}"
    );
    assert_eq!(journal.entries().len(), before);
    let missing = saga.resume(&engine, "nope").await.unwrap_err();
    assert!(matches!(missing, SagaError::NotFound { .. }), "{missing}");
}

/// A saga run another owner holds: `recover` lists it as waiting, and takes it up by itself
/// once that owner's lease runs out (the owner stalled: its heartbeats stopped), with no second
/// call; the stalled owner's late writes are then refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_leased_by_a_stalled_owner_is_taken_up_when_its_lease_runs_out() {
    use sagaflow_sqlite::{SqliteOptions, SqliteStore};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.db");
    let journal = Journal::default();
    journal.script.lock().unwrap().hang = vec!["push".into()];
    let saga = unknown_saga(&journal);
    let lease = Duration::from_millis(600);
    let store_a =
        SqliteStore::open(&path, SqliteOptions::default().owner("A").lease(lease)).unwrap();
    let engine_a = Engine::builder().store(Arc::new(store_a.clone())).build();
    let _running = saga.start(&engine_a, "held", 5).await.unwrap();
    // `build` done, `push` hanging on A.
    while journal.did().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    store_a.pause_heartbeats();
    let paused = Instant::now();

    journal.script.lock().unwrap().hang.clear();
    let engine_b = Engine::open_with(&path, SqliteOptions::default().owner("B")).unwrap();
    let recovered = saga.recover(&engine_b).await.unwrap();
    assert!(recovered.runs.is_empty(), "held by A");
    assert!(recovered.failed.is_empty(), "{:?}", recovered.failed);
    let [waiting] = <[_; 1]>::try_from(recovered.waiting).unwrap();
    assert_eq!((waiting.run_id().as_str(), waiting.owner()), ("held", "A"));
    assert!(waiting.expires_in() <= lease);
    let handle = waiting.taken().await.unwrap();
    assert!(
        paused.elapsed() >= Duration::from_millis(300),
        "{:?}",
        paused.elapsed()
    );
    let outcome = handle.wait().await.unwrap();
    assert!(matches!(outcome, SagaOutcome::Completed(_)), "{outcome:?}");
}
