//! Compensation: what is undone, in which order, how often, and what a compensation receives.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Entry, Journal, completion_order, undo_retry};
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Engine, Handle, RunId, StepStatus};
use sagaflow_saga::{SagaBuilder, SagaDefinition, SagaError, SagaOutcome, SagaStatus};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::SqliteOptions;

const FIVE: [&str; 5] = ["build", "push", "migrate", "shift", "smoke"];

/// `a -> b -> ...`: step `k` (from 1) adds `k`; each step's compensation records what it got.
fn chain(
    journal: &Journal,
    names: &[&'static str],
    undo_attempts: u32,
) -> SagaDefinition<u64, u64> {
    let mut b = SagaBuilder::<u64>::new("Chain");
    let mut prev = b.input();
    for (k, name) in names.iter().enumerate() {
        let step = add_step(&mut b, journal, name, k as u64 + 1, prev);
        add_undo(&mut b, journal, name, step, prev, undo_attempts);
        prev = step;
    }
    b.build_with_output(prev)
}

fn add_step(
    b: &mut SagaBuilder<u64>,
    journal: &Journal,
    name: &str,
    k: u64,
    input: Handle<u64>,
) -> Handle<u64> {
    let j = journal.clone();
    b.step(name, StepOptions::new(), (input,), move |ctx, (x,)| {
        let j = j.clone();
        async move { j.step(&ctx, k, *x).await }
    })
}

fn add_undo(
    b: &mut SagaBuilder<u64>,
    journal: &Journal,
    name: &str,
    step: Handle<u64>,
    input: Handle<u64>,
    attempts: u32,
) {
    let j = journal.clone();
    b.undo(
        step,
        &format!("undo_{name}"),
        undo_retry(attempts),
        (input,),
        move |ctx, (x,), out: Arc<u64>| {
            let j = j.clone();
            async move { j.undo(&ctx, *x, Some(*out)).await }
        },
    );
}

/// The value after step `k` of a chain started with `start`.
fn after(start: u64, k: u64) -> u64 {
    start + k * (k + 1) / 2
}

#[tokio::test]
async fn every_failure_point_of_five_steps_undoes_the_completed_ones_newest_first() {
    for fail_at in 0..FIVE.len() {
        let journal = Journal::default();
        journal.script.lock().unwrap().fail = vec![FIVE[fail_at].to_owned()];
        let saga = chain(&journal, &FIVE, 1);
        let engine = Engine::open_in_memory().unwrap();
        let outcome = saga
            .start(&engine, "deploy-1", 10)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let expected: Vec<String> = FIVE[..fail_at]
            .iter()
            .rev()
            .map(|s| s.to_string())
            .collect();
        match &outcome {
            SagaOutcome::Compensated {
                undone,
                cause,
                skipped,
            } => {
                assert_eq!(undone, &expected, "failure at {}", FIVE[fail_at]);
                assert!(
                    cause.contains(&format!("{} broke", FIVE[fail_at])),
                    "{cause}"
                );
                assert!(skipped.is_empty());
            }
            other => panic!("failure at {}: {other:?}", FIVE[fail_at]),
        }
        assert_eq!(
            journal.undone(),
            expected,
            "each compensation once, newest first"
        );
        // Each compensation received its step's input and output.
        for entry in journal.entries() {
            if let Entry::Undid {
                step,
                input,
                output,
                attempt,
            } = entry
            {
                let k = FIVE.iter().position(|s| *s == step).unwrap() as u64 + 1;
                assert_eq!(input, after(10, k - 1), "input of {step}");
                assert_eq!(output, Some(after(10, k)), "output of {step}");
                assert_eq!(attempt, 1);
            }
        }
        let status = saga.status(&engine, "deploy-1").await.unwrap();
        assert!(
            matches!(status, SagaStatus::Compensated { ref undone, .. } if *undone == expected),
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn a_saga_that_succeeds_undoes_nothing_and_returns_its_output() {
    let journal = Journal::default();
    let saga = chain(&journal, &FIVE, 1);
    let engine = Engine::open_in_memory().unwrap();
    let outcome = saga
        .start(&engine, "ok", 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let SagaOutcome::Completed(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(*report.output, after(0, 5));
    assert!(journal.undone().is_empty());
    assert_eq!(
        saga.status(&engine, "ok").await.unwrap(),
        SagaStatus::Completed
    );
}

#[tokio::test]
async fn a_transient_compensation_failure_is_retried() {
    let journal = Journal::default();
    {
        let mut script = journal.script.lock().unwrap();
        script.fail = vec!["shift".into()];
        script.undo_flaky.insert("push".into(), 2);
    }
    let saga = chain(&journal, &FIVE, 5);
    let engine = Engine::open_in_memory().unwrap();
    let outcome = saga
        .start(&engine, "r", 1)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(
        matches!(outcome, SagaOutcome::Compensated { .. }),
        "{outcome:?}"
    );
    assert_eq!(journal.undone(), ["migrate", "push", "build"]);
    let push = journal
        .entries()
        .into_iter()
        .find_map(|e| match e {
            Entry::Undid { step, attempt, .. } if step == "push" => Some(attempt),
            _ => None,
        })
        .unwrap();
    assert_eq!(push, 3, "two failed attempts, then the third succeeded");
}

/// A saga stuck on `push`'s compensation: `migrate` was undone, `build` not yet.
async fn stuck(journal: &Journal, engine: &Engine, saga: &SagaDefinition<u64, u64>) {
    {
        let mut script = journal.script.lock().unwrap();
        script.fail = vec!["shift".into()];
        script.undo_fails.insert("push".into(), true);
    }
    let outcome = saga
        .start(engine, "s", 1)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    match outcome {
        SagaOutcome::Stuck {
            step,
            error,
            undone,
            attempts,
        } => {
            assert_eq!(step, "push");
            assert!(
                error.contains("cannot undo push"),
                "the error is kept: {error}"
            );
            assert_eq!(undone, ["migrate"]);
            assert_eq!(attempts, 1, "a permanent error is not retried");
        }
        other => panic!("{other:?}"),
    }
    let status = saga.status(engine, "s").await.unwrap();
    assert!(
        matches!(&status, SagaStatus::Stuck { step, error, .. } if step == "push" && error.contains("cannot undo push")),
        "{status:?}"
    );
    assert_eq!(journal.undone(), ["migrate"]);
}

#[tokio::test]
async fn a_stuck_saga_retried_runs_the_compensations_left_and_not_the_done_ones() {
    let journal = Journal::default();
    let saga = chain(&journal, &FIVE, 1);
    let engine = Engine::open_in_memory().unwrap();
    stuck(&journal, &engine, &saga).await;
    // Retrying while it still fails: stuck again, nothing else ran.
    let again = saga
        .retry(&engine, "s")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(
        matches!(&again, SagaOutcome::Stuck { step, .. } if step == "push"),
        "{again:?}"
    );
    assert_eq!(journal.undone(), ["migrate"]);
    // Fixed: the retry finishes the job, `migrate` is not undone twice.
    journal.script.lock().unwrap().undo_fails.clear();
    let done = saga
        .retry(&engine, "s")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    match done {
        SagaOutcome::Compensated {
            undone, skipped, ..
        } => {
            assert_eq!(undone, ["migrate", "push", "build"]);
            assert!(skipped.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(journal.undone(), ["migrate", "push", "build"]);
    // Each compensation kept one idempotency key through the three rounds, not the forward
    // step's: a payment service sees the operator's retry as the same refund.
    let keys = journal.undo_keys.lock().unwrap().clone();
    let push: Vec<&str> = keys
        .iter()
        .filter(|(step, _)| step == "push")
        .map(|(_, key)| key.as_str())
        .collect();
    assert_eq!(push, ["s~undo:push"; 3]);
    assert!(
        keys.iter()
            .all(|(step, key)| *key == format!("s~undo:{step}")),
        "{keys:?}"
    );
    // A compensated saga is not stuck: another retry is refused, with its status.
    let refused = saga.retry(&engine, "s").await.unwrap_err();
    assert!(
        matches!(&refused, SagaError::NotStuck { status, action: "retried", .. } if status == "compensated"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_stuck_compensation_skipped_is_left_and_the_rest_run() {
    let journal = Journal::default();
    let saga = chain(&journal, &FIVE, 1);
    let engine = Engine::open_in_memory().unwrap();
    stuck(&journal, &engine, &saga).await;
    let done = saga.skip(&engine, "s").await.unwrap().wait().await.unwrap();
    match done {
        SagaOutcome::Compensated {
            undone, skipped, ..
        } => {
            assert_eq!(undone, ["migrate", "build"]);
            assert_eq!(skipped, ["push"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        journal.undone(),
        ["migrate", "build"],
        "push's compensation never succeeded"
    );
}

#[tokio::test]
async fn a_stuck_saga_abandoned_runs_nothing_more() {
    let journal = Journal::default();
    let saga = chain(&journal, &FIVE, 1);
    let engine = Engine::open_in_memory().unwrap();
    stuck(&journal, &engine, &saga).await;
    journal.script.lock().unwrap().undo_fails.clear();
    let done = saga
        .abandon(&engine, "s")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(
        matches!(&done, SagaOutcome::Abandoned { cause } if cause.contains("shift broke")),
        "{done:?}"
    );
    assert_eq!(journal.undone(), ["migrate"]);
    let status = saga.status(&engine, "s").await.unwrap();
    assert!(matches!(status, SagaStatus::Abandoned { .. }), "{status:?}");
    assert!(matches!(
        saga.skip(&engine, "s").await.unwrap_err(),
        SagaError::NotStuck { .. }
    ));
}

#[tokio::test]
async fn cancelling_a_saga_compensates_what_completed() {
    let journal = Journal::default();
    journal.script.lock().unwrap().hang = vec!["migrate".into()];
    let saga = chain(&journal, &FIVE, 1);
    let engine = Engine::open_in_memory().unwrap();
    let handle = saga.start(&engine, "c", 1).await.unwrap();
    // Wait until the hanging step has started.
    while completion_order(&engine, "c").await.len() < 2 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    handle.cancel();
    let outcome = handle.wait().await.unwrap();
    match outcome {
        SagaOutcome::Compensated { undone, cause, .. } => {
            assert_eq!(undone, ["push", "build"]);
            assert!(cause.contains("cancelled"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_saga_past_its_deadline_compensates() {
    let journal = Journal::default();
    journal.script.lock().unwrap().hang = vec!["smoke".into()];
    // The paused clock jumps to the next timer whenever the runtime is idle, and it is idle
    // while SQLite commits on its own thread; this ticker keeps each jump to 10 ms, so the
    // hour-long deadline passes only once the steps before `smoke` have long completed.
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let saga = chain_with_deadline(&journal, HOUR);
    let engine = Engine::open_in_memory().unwrap();
    let outcome = saga
        .start(&engine, "d", 1)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let completed = completion_order(&engine, "d").await;
    match outcome {
        SagaOutcome::Compensated { undone, cause, .. } => {
            assert!(cause.contains("deadline"), "{cause}");
            assert_eq!(undone, ["shift", "migrate", "push", "build"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(completed, ["build", "push", "migrate", "shift"]);
}

const HOUR: Duration = Duration::from_secs(3600);

/// The five steps, with a saga deadline.
fn chain_with_deadline(journal: &Journal, deadline: Duration) -> SagaDefinition<u64, u64> {
    let mut b = SagaBuilder::<u64>::new("Chain");
    b.deadline(deadline);
    let mut prev = b.input();
    for (k, name) in FIVE.iter().enumerate() {
        let step = add_step(&mut b, journal, name, k as u64 + 1, prev);
        add_undo(&mut b, journal, name, step, prev, 1);
        prev = step;
    }
    b.build_with_output(prev)
}

#[test]
fn a_saga_taken_up_after_a_restart_has_only_what_was_left_of_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.db");
    // The same owner in both "processes", so the second takes its lease back at once.
    let open = || Engine::open_with(&path, SqliteOptions::default().owner("deadline")).unwrap();
    let journal = Journal::default();
    journal.script.lock().unwrap().hang = vec!["smoke".into()];
    let saga = chain_with_deadline(&journal, HOUR);

    // The first process: the saga runs until `smoke` hangs, then the process goes away with
    // its tasks, without any cleanup (its runtime is dropped).
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        let engine = open();
        let _handle = saga.start(&engine, "d", 1).await.unwrap();
        loop {
            let run = engine.store().load_run(&RunId::from("d")).await.unwrap();
            let smoke = run.unwrap().steps.into_iter().find(|s| s.name == "smoke");
            if smoke.is_some_and(|s| s.status == StepStatus::Running) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    drop(first);
    assert_eq!(journal.did(), ["build", "push", "migrate", "shift"]);

    // As if it had started the saga 45 minutes ago.
    let db = rusqlite::Connection::open(&path).unwrap();
    let moved = db
        .execute(
            "UPDATE runs SET created_at = created_at - ?1 WHERE run_id = 'd'",
            [45 * 60 * 1000],
        )
        .unwrap();
    assert_eq!(moved, 1);
    drop(db);

    // The second process, on a paused clock: the saga has 15 minutes left, not an hour.
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    second.block_on(async {
        // See `a_saga_past_its_deadline_compensates`: keeps the clock's jumps short while
        // SQLite commits on its own thread.
        tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let engine = open();
        let resumed_at = tokio::time::Instant::now();
        let outcome = saga
            .resume(&engine, "d")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let waited = resumed_at.elapsed();
        match outcome {
            SagaOutcome::Compensated { undone, cause, .. } => {
                assert!(cause.contains("deadline"), "{cause}");
                assert_eq!(undone, ["shift", "migrate", "push", "build"]);
            }
            other => panic!("{other:?}"),
        }
        let quarter = Duration::from_secs(15 * 60);
        assert!(
            waited >= quarter - Duration::from_secs(5)
                && waited < quarter + Duration::from_secs(60),
            "the deadline passed {waited:?} after the restart, not about 15 minutes"
        );
    });
    // No forward step ran again.
    assert_eq!(journal.did(), ["build", "push", "migrate", "shift"]);
}

/// The same on PostgreSQL, with the saga begun two hours before the restart against a deadline
/// of one: nothing is left, so the saga taken up compensates at once, though `smoke` would hang
/// for ever. (Not on a paused clock: a store on a server has timers of its own, which a paused
/// clock would jump; the part of a deadline left is the SQLite check's above.)
#[test]
fn a_saga_taken_up_after_a_restart_past_its_deadline_compensates_at_once_on_postgres() {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let Some(url) = runtime().block_on(sagaflow_postgres::testing::server()) else {
        return;
    };
    let schema = sagaflow_postgres::testing::fresh_schema("sagadeadline");
    // The same owner in both "processes", so the second takes its lease back at once.
    let open = async || sagaflow_postgres::testing::engine_as(&schema, "deadline").await;
    let journal = Journal::default();
    journal.script.lock().unwrap().hang = vec!["smoke".into()];
    let saga = chain_with_deadline(&journal, HOUR);

    // The first process: the saga runs until `smoke` hangs, then the process goes away with
    // its tasks and connections, without any cleanup.
    let first = runtime();
    first.block_on(async {
        let engine = open().await;
        let _handle = saga.start(&engine, "d", 1).await.unwrap();
        let began = std::time::Instant::now();
        loop {
            let run = engine.store().load_run(&RunId::from("d")).await.unwrap();
            let smoke = run.unwrap().steps.into_iter().find(|s| s.name == "smoke");
            if smoke.is_some_and(|s| s.status == StepStatus::Running) {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(20), "smoke never ran");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    drop(first);
    assert_eq!(journal.did(), ["build", "push", "migrate", "shift"]);

    runtime().block_on(async {
        // As if it had started the saga two hours ago.
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let moved = client
            .execute(
                &format!(
                    "UPDATE \"{schema}\".runs SET created_at = created_at - $1 WHERE run_id = 'd'"
                ),
                &[&(2 * 3600 * 1000_i64)],
            )
            .await
            .unwrap();
        assert_eq!(moved, 1);

        let engine = open().await;
        let resumed = std::time::Instant::now();
        let handle = saga.resume(&engine, "d").await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(60), handle.wait())
            .await
            .expect("the spent deadline ends the saga")
            .unwrap();
        match outcome {
            SagaOutcome::Compensated { undone, cause, .. } => {
                assert!(cause.contains("deadline"), "{cause}");
                assert_eq!(undone, ["shift", "migrate", "push", "build"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(resumed.elapsed() < Duration::from_secs(60));
    });
    // No forward step ran again.
    assert_eq!(journal.did(), ["build", "push", "migrate", "shift"]);
}

#[tokio::test]
async fn an_engine_that_keeps_no_outputs_is_refused_at_start() {
    let journal = Journal::default();
    let saga = chain(&journal, &FIVE, 1);
    let engine = Engine::ephemeral();
    let error = saga.start(&engine, "m", 1).await.unwrap_err();
    assert!(matches!(error, SagaError::NotDurable { .. }), "{error}");
    assert!(
        error.to_string().contains("Engine::open_in_memory"),
        "{error}"
    );
}
