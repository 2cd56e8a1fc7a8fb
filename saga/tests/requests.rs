//! Requests from outside the process: an operator's skip, retry or abandon of a stuck saga and
//! a cancellation, kept in the store and acted on by the process that runs the saga. Each case
//! runs on a SQLite database and on PostgreSQL (a schema of its own on the server named by
//! `SAGAFLOW_PG_URL`; see `common::pg_engine`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Journal, undo_retry};
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Engine, RunId};
use sagaflow_saga::requests::{self, OperatorAction};
use sagaflow_saga::{SagaBuilder, SagaDefinition, SagaError, SagaOutcome, SagaStatus};

/// `a -> b -> c`, each undoable; `c` fails, `b`'s compensation fails while scripted to.
fn saga(journal: &Journal) -> SagaDefinition<u64, u64> {
    let mut b = SagaBuilder::<u64>::new("Req");
    let mut prev = b.input();
    for (k, name) in ["a", "b", "c"].into_iter().enumerate() {
        let j = journal.clone();
        let step = b.step(name, StepOptions::new(), (prev,), move |ctx, (x,)| {
            let j = j.clone();
            async move { j.step(&ctx, k as u64 + 1, *x).await }
        });
        let j = journal.clone();
        b.undo(
            step,
            &format!("undo_{name}"),
            undo_retry(1),
            (prev,),
            move |ctx, (x,), o: Arc<u64>| {
                let j = j.clone();
                async move { j.undo(&ctx, *x, Some(*o)).await }
            },
        );
        prev = step;
    }
    b.build_with_output(prev)
}

/// Each case as a test on each store.
macro_rules! on_both_stores {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    use sagaflow_sqlite::SqliteEngine as _;
                    super::$case(sagaflow_core::runtime::Engine::open_in_memory().unwrap()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(engine) = crate::common::pg_engine().await else {
                        return;
                    };
                    super::$case(engine).await;
                }
            )+
        }
    };
}

on_both_stores!(
    an_operator_request_from_outside_is_acted_on_once,
    a_request_for_an_unknown_or_running_saga_is_refused,
    a_cancellation_asked_from_outside_compensates,
);

async fn an_operator_request_from_outside_is_acted_on_once(engine: Engine) {
    let journal = Journal::default();
    {
        let mut script = journal.script.lock().unwrap();
        script.fail = vec!["c".into()];
        script.undo_fails.insert("b".into(), true);
    }
    let saga = saga(&journal);
    let run = RunId::from("r1");
    let outcome = saga
        .start(&engine, run.clone(), 1)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(matches!(outcome, SagaOutcome::Stuck { .. }), "{outcome:?}");
    // Nothing asked yet: nothing to serve.
    assert!(saga.serve_requests(&engine).await.unwrap().is_empty());

    let store = engine.store();
    assert!(
        requests::request(&**store, &run, OperatorAction::Skip)
            .await
            .unwrap()
    );
    assert!(
        !requests::request(&**store, &run, OperatorAction::Retry)
            .await
            .unwrap(),
        "one request per stuck round"
    );
    let handles = saga.serve_requests(&engine).await.unwrap();
    assert_eq!(handles.len(), 1);
    let outcome = handles.into_iter().next().unwrap().wait().await.unwrap();
    match outcome {
        SagaOutcome::Compensated {
            undone, skipped, ..
        } => {
            assert_eq!(undone, ["a"]);
            assert_eq!(skipped, ["b"]);
        }
        other => panic!("{other:?}"),
    }
    // Served once: serving again finds nothing, and the saga is no longer stuck.
    assert!(saga.serve_requests(&engine).await.unwrap().is_empty());
    assert_eq!(journal.undone(), ["a"]);
    let refused = requests::request(&**store, &run, OperatorAction::Abandon)
        .await
        .unwrap_err();
    assert!(matches!(refused, SagaError::NotStuck { .. }), "{refused}");
    assert!(matches!(
        saga.status(&engine, "r1").await.unwrap(),
        SagaStatus::Compensated { .. }
    ));
}

async fn a_request_for_an_unknown_or_running_saga_is_refused(engine: Engine) {
    let journal = Journal::default();
    let saga = saga(&journal);
    let store = engine.store();
    let missing = requests::request(&**store, &RunId::from("nope"), OperatorAction::Retry)
        .await
        .unwrap_err();
    assert!(matches!(missing, SagaError::NotFound { .. }), "{missing}");
    saga.start(&engine, "done", 1)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let refused = requests::request(&**store, &RunId::from("done"), OperatorAction::Retry)
        .await
        .unwrap_err();
    assert!(matches!(refused, SagaError::NotStuck { .. }), "{refused}");
}

async fn a_cancellation_asked_from_outside_compensates(engine: Engine) {
    let journal = Journal::default();
    journal.script.lock().unwrap().hang = vec!["c".into()];
    let saga = saga(&journal);
    let handle = saga.start(&engine, "x", 1).await.unwrap();
    while journal.did().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        requests::request_cancel(&**engine.store(), &RunId::from("x"))
            .await
            .unwrap()
    );
    let outcome = handle.wait().await.unwrap();
    match outcome {
        SagaOutcome::Compensated { undone, cause, .. } => {
            assert_eq!(undone, ["b", "a"]);
            assert!(cause.contains("cancelled by a request"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
}
