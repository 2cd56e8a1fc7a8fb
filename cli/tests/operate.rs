//! An operator's commands take effect in a running engine: `retry`, `skip` and `abandon` of a
//! stuck saga and `cancel` of a running one are acted on by the process that serves requests,
//! and `signal` wakes a step waiting in another process. `events --follow` shows it live.
//! Each on a SQLite file and on a PostgreSQL schema (`<test>::sqlite`, `<test>::postgres`).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{Approve, Backend, FIXED, Fixture, Ship};
use sagaflow::SagaOutcome;
use sagaflow::prelude::*;
use sagaflow::runtime::StoredRunStatus;

/// The binary, off the runtime's threads.
async fn sagaflow(f: &Fixture, args: &[&str]) -> common::Out {
    let mut command = f.command(args);
    tokio::task::spawn_blocking(move || common::Out::from(command.output().unwrap()))
        .await
        .unwrap()
}

/// What a service does: serve the operators' requests now and then; the outcome of the
/// first saga it acts on.
fn serve(engine: &Engine) -> tokio::task::JoinHandle<SagaOutcome<u8>> {
    let engine = engine.clone();
    tokio::spawn(async move {
        loop {
            let handles = Ship::definition().serve_requests(&engine).await.unwrap();
            if let Some(handle) = handles.into_iter().next() {
                return handle.wait().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

async fn outcome(task: tokio::task::JoinHandle<SagaOutcome<u8>>) -> SagaOutcome<u8> {
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the service acted on the request")
        .unwrap()
}

async fn stuck(f: &Fixture, run: &str) {
    let outcome = f.ship(run, &["shift_traffic", "untag_image"]).await;
    assert!(matches!(outcome, SagaOutcome::Stuck { .. }), "{outcome:?}");
}

on_both_stores!(skip_from_the_command_line_is_acted_on_by_the_service, new);
async fn skip_from_the_command_line_is_acted_on_by_the_service(f: Fixture) {
    stuck(&f, "s-skip").await;
    let service = serve(&f.engine);
    let out = sagaflow(&f, &["skip", "s-skip"]).await;
    assert!(
        out.ok().contains("asked to skip saga run `s-skip`"),
        "{out:?}"
    );
    match outcome(service).await {
        SagaOutcome::Compensated {
            skipped, undone, ..
        } => {
            assert_eq!(skipped, ["push_image"]);
            assert!(undone.contains(&"build_image".to_owned()), "{undone:?}");
        }
        other => panic!("{other:?}"),
    }
    let show = sagaflow(&f, &["show", "s-skip"]).await;
    assert!(show.ok().contains("status    compensated"), "{show:?}");
    assert!(
        show.ok()
            .contains("compensation round 2 (s-skip~undo2): completed"),
        "{show:?}"
    );
    assert_eq!(sagaflow(&f, &["stuck"]).await.ok().trim(), "no stuck saga");
    let again = sagaflow(&f, &["skip", "s-skip"]).await;
    assert!(
        again
            .err()
            .contains("not a stuck saga (it is compensating or compensated)"),
        "{again:?}"
    );
}

on_both_stores!(retry_runs_the_stuck_compensation_again, new);
async fn retry_runs_the_stuck_compensation_again(f: Fixture) {
    // `FIXED` is the process's: the test on the other store, running meanwhile, has a run
    // of its own.
    let run = match f.backend() {
        Backend::Sqlite => "s-retry",
        Backend::Postgres => "s-retry-pg",
    };
    stuck(&f, run).await;
    // The operator fixed what was broken (the registry's token), then retries.
    FIXED.lock().unwrap().push(run.to_owned());
    let service = serve(&f.engine);
    let out = sagaflow(&f, &["retry", run, "--json"]).await;
    let json = out.json();
    assert_eq!(json["request"], "retry");
    assert_eq!(json["made"], true);
    match outcome(service).await {
        SagaOutcome::Compensated {
            skipped, undone, ..
        } => {
            assert!(skipped.is_empty(), "{skipped:?}");
            assert!(undone.contains(&"push_image".to_owned()), "{undone:?}");
        }
        other => panic!("{other:?}"),
    }
}

on_both_stores!(abandon_gives_up_and_a_second_request_is_refused, new);
async fn abandon_gives_up_and_a_second_request_is_refused(f: Fixture) {
    stuck(&f, "s-abandon").await;
    // Asked of a round's id, the request goes to its saga.
    let out = sagaflow(&f, &["abandon", "s-abandon~undo1"]).await;
    assert!(out.ok().contains("saga run `s-abandon`"), "{out:?}");
    let twice = sagaflow(&f, &["retry", "s-abandon"]).await;
    assert!(
        twice.err().contains("a request was made for it already"),
        "{twice:?}"
    );
    let listed = sagaflow(&f, &["stuck"]).await;
    assert!(
        listed.ok().contains("abandon"),
        "the pending request is shown: {listed:?}"
    );
    let service = serve(&f.engine);
    assert!(matches!(
        outcome(service).await,
        SagaOutcome::Abandoned { .. }
    ));
    let runs = sagaflow(&f, &["runs", "--status", "abandoned", "--json"]).await;
    assert_eq!(runs.json()[0]["run_id"], "s-abandon");
}

on_both_stores!(cancel_compensates_a_running_saga, new);
async fn cancel_compensates_a_running_saga(f: Fixture) {
    let release = common::Release {
        version: "v3".to_owned(),
        fail: vec!["hang".to_owned()],
    };
    let handle = Ship::start(&f.engine, "s-cancel", release).await.unwrap();
    wait_for_step(&f, "s-cancel", "migrate_db").await;
    let running = sagaflow(&f, &["runs", "--status", "running"]).await;
    assert!(running.ok().contains("s-cancel"), "{running:?}");
    let out = sagaflow(&f, &["cancel", "s-cancel"]).await;
    assert!(
        out.ok().contains("asked to cancel saga run `s-cancel`"),
        "{out:?}"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(30), handle.wait())
        .await
        .expect("cancelled in time")
        .unwrap();
    match outcome {
        SagaOutcome::Compensated { cause, undone, .. } => {
            assert!(cause.contains("cancelled by a request"), "{cause}");
            assert_eq!(undone, ["push_image", "build_image"]);
        }
        other => panic!("{other:?}"),
    }
}

/// Waits until `step` of `run` has started.
async fn wait_for_step(f: &Fixture, run: &str, step: &str) {
    for _ in 0..500 {
        if let Some(stored) = f.engine.store().load_run(&run.into()).await.unwrap()
            && stored.steps.iter().any(|s| s.name == step)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("`{step}` of `{run}` never started");
}

on_both_stores!(
    a_signal_wakes_a_step_waiting_in_another_process_and_follow_shows_it,
    new
);
async fn a_signal_wakes_a_step_waiting_in_another_process_and_follow_shows_it(f: Fixture) {
    let handle = Approve::start(&f.engine, "approval-1", 7).await.unwrap();
    wait_for_step(&f, "approval-1", "wait_approval").await;

    let mut follow = f
        .command(&["events", "approval-1", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let out = sagaflow(&f, &["signal", "approval-1", "approve", r#"{"by": "ana"}"#]).await;
    assert!(
        out.ok()
            .contains("delivered signal `approve` to run `approval-1`"),
        "{out:?}"
    );
    let report = tokio::time::timeout(Duration::from_secs(30), handle.wait())
        .await
        .expect("the waiting step woke up")
        .unwrap();
    assert_eq!(*report.output, "ana");

    // `--follow` printed the run's whole log, then its end as it was committed.
    let followed = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        while let Ok(line) = seen.recv_timeout(Duration::from_secs(20)) {
            let end = line.contains("run_completed");
            got.push(line);
            if end {
                break;
            }
        }
        got
    })
    .await
    .unwrap();
    follow.kill().unwrap();
    let _ = follow.wait();
    assert!(
        followed.first().is_some_and(|l| l.contains("run_created")),
        "{followed:?}"
    );
    assert!(
        followed
            .iter()
            .any(|l| l.contains("step_completed") && l.contains("wait_approval")),
        "{followed:?}"
    );
    assert!(
        followed.last().is_some_and(|l| l.contains("run_completed")),
        "{followed:?}"
    );

    let twice = sagaflow(&f, &["signal", "approval-1", "approve", "{}"]).await;
    assert!(
        twice.err().contains("had a signal `approve` already"),
        "{twice:?}"
    );
    let stored = f
        .engine
        .store()
        .load_run(&"approval-1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, StoredRunStatus::Completed);
}
