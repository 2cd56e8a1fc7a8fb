//! A crash at every commit point of a saga that fails at each of its steps in turn: before
//! each commit, after each, and between each effect (a step's or a compensation's) and its
//! checkpoint. A child process (this test binary again) runs the saga with one crash point
//! armed and aborts there; the test reopens the file, recovers, and checks that the saga ends
//! compensated, newest first, that no forward step or compensation whose completion was
//! committed ran again, and that nothing was lost. On a SQLite file a case, and on PostgreSQL
//! (`..._on_postgres`: one schema, a run of its own a case).
//!
//! Needs the `fault-injection` feature: `cargo test -p sagaflow-saga --features
//! fault-injection --test faults`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use sagaflow_core::StepOptions;
use sagaflow_core::conformance::side::{side, side_lines};
use sagaflow_core::fault::{CRASH_AT, Point};
use sagaflow_core::runtime::{Engine, RunId, StepError, StepStatus, Store};
use sagaflow_saga::{SagaBuilder, SagaDefinition, SagaOutcome};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::SqliteOptions;

const CHILD: &str = "SAGAFLOW_SAGA_FAULT_CHILD";
const FAIL_AT: &str = "SAGAFLOW_SAGA_FAULT_FAIL_AT";
/// The child's PostgreSQL schema and run, when the case runs on PostgreSQL.
const SCHEMA: &str = "SAGAFLOW_SAGA_FAULT_SCHEMA";
const RUN: &str = "SAGAFLOW_SAGA_FAULT_RUN";
/// The run of a case on a SQLite file (a file of its own).
const FILE_RUN: &str = "s";
const STEPS: [&str; 5] = ["build", "push", "migrate", "shift", "smoke"];

/// Five steps, each with a compensation; step `fail_at` fails for good.
fn saga(dir: &Path, fail_at: usize) -> SagaDefinition<u32, u32> {
    let mut b = SagaBuilder::<u32>::new("Walk");
    let mut prev = b.input();
    for (i, name) in STEPS.into_iter().enumerate() {
        let d = dir.to_owned();
        let step = b.step(name, StepOptions::new(), (prev,), move |ctx, (x,)| {
            let fails = i == fail_at;
            if !fails {
                side(&d, &format!("do {}", ctx.step()));
            }
            async move {
                if fails {
                    return Err(StepError::permanent("broken"));
                }
                Ok::<u32, StepError>(*x + 1)
            }
        });
        let d = dir.to_owned();
        b.undo(
            step,
            &format!("undo_{name}"),
            StepOptions::new(),
            (prev,),
            move |ctx, (_,), _: Arc<u32>| {
                side(&d, &format!("undo {}", ctx.step()));
                async { Ok::<(), StepError>(()) }
            },
        );
        prev = step;
    }
    b.build_with_output(prev)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Where a case runs: a SQLite file in its folder, or a schema on the PostgreSQL server.
#[derive(Clone, Copy)]
enum On<'a> {
    File,
    Postgres(&'a str),
}

/// The service's engine (the same owner in every process, so a restarted one takes its run up
/// at once).
async fn engine(dir: &Path, on: On<'_>) -> Engine {
    match on {
        On::File => {
            Engine::open_with(dir.join("sagas.db"), SqliteOptions::default().owner("svc")).unwrap()
        }
        On::Postgres(schema) => sagaflow_postgres::testing::engine_as(schema, "svc").await,
    }
}

fn child(dir: &Path, fail_at: usize, on: On<'_>, run: &str) {
    runtime().block_on(async {
        let engine = engine(dir, on).await;
        let outcome = saga(dir, fail_at)
            .start(&engine, run, 0)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert!(
            matches!(outcome, SagaOutcome::Compensated { .. }),
            "{outcome:?}"
        );
    });
}

#[test]
fn a_crash_at_every_commit_point_of_a_failing_saga_still_compensates_it_exactly() {
    every_commit_point(
        "a_crash_at_every_commit_point_of_a_failing_saga_still_compensates_it_exactly",
        None,
    );
}

#[test]
fn a_crash_at_every_commit_point_of_a_failing_saga_still_compensates_it_exactly_on_postgres() {
    let test =
        "a_crash_at_every_commit_point_of_a_failing_saga_still_compensates_it_exactly_on_postgres";
    if std::env::var_os(CHILD).is_some() {
        return every_commit_point(test, std::env::var(SCHEMA).ok().as_deref());
    }
    if runtime()
        .block_on(sagaflow_postgres::testing::server())
        .is_none()
    {
        return;
    }
    let schema = sagaflow_postgres::testing::fresh_schema("sagafault");
    every_commit_point(test, Some(&schema));
}

/// Every case on a SQLite file of its own, or on PostgreSQL schema `schema` (a run of its own
/// a case); the children run this binary again as test `test`.
fn every_commit_point(test: &str, schema: Option<&str>) {
    let on = schema.map_or(On::File, On::Postgres);
    if let Some(dir) = std::env::var_os(CHILD) {
        let fail_at = std::env::var(FAIL_AT).unwrap().parse().unwrap();
        let run = std::env::var(RUN).unwrap_or_else(|_| FILE_RUN.to_owned());
        child(&PathBuf::from(dir), fail_at, on, &run);
        return;
    }
    let mut crashes = 0;
    for (fail_at, failing) in STEPS.iter().enumerate() {
        for point in Point::ALL {
            for n in 1.. {
                assert!(n < 200, "{} never let the saga finish", point.as_str());
                let dir = tempfile::tempdir().unwrap();
                let run = match on {
                    On::File => FILE_RUN.to_owned(),
                    On::Postgres(_) => format!("s-{fail_at}-{}-{n}", point.as_str()),
                };
                let mut command = Command::new(std::env::current_exe().unwrap());
                command
                    .args([test, "--exact", "--test-threads=1"])
                    .env(CHILD, dir.path())
                    .env(FAIL_AT, fail_at.to_string())
                    .env(CRASH_AT, format!("{}:{n}", point.as_str()))
                    .env(RUN, &run);
                if let Some(schema) = schema {
                    command.env(SCHEMA, schema);
                }
                let status = command
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                let at = format!("failing at {failing}, {} #{n}", point.as_str());
                if status.success() {
                    check(dir.path(), fail_at, &[], &[], &at);
                    break;
                }
                crashes += 1;
                recover_and_check(dir.path(), fail_at, &at, on, &run);
            }
        }
    }
    eprintln!("{crashes} crashes");
    assert!(crashes >= 5 * 3 * 4, "only {crashes} crashes");
}

fn completed(run: Option<sagaflow_core::runtime::StoredRun>) -> Vec<String> {
    run.iter()
        .flat_map(|r| &r.steps)
        .filter(|s| s.status == StepStatus::Completed)
        .map(|s| s.name.clone())
        .collect()
}

fn recover_and_check(dir: &Path, fail_at: usize, at: &str, on: On<'_>, run: &str) {
    let (done, undone) = runtime().block_on(async {
        let engine = engine(dir, on).await;
        let store: &dyn Store = &**engine.store();
        let done = completed(store.load_run(&RunId::from(run)).await.unwrap());
        let undo = format!("{run}~undo1");
        let undone = completed(store.load_run(&RunId::from(undo)).await.unwrap());
        let saga = saga(dir, fail_at);
        let recovered = saga.recover(&engine).await.unwrap();
        assert!(recovered.failed.is_empty(), "{at}: {:?}", recovered.failed);
        // On PostgreSQL the earlier cases' runs are in the schema too, all ended.
        assert!(
            recovered.runs.len() <= 1,
            "{at}: {} runs",
            recovered.runs.len()
        );
        let outcome = match recovered.runs.into_iter().next() {
            Some(handle) => {
                assert_eq!(handle.run_id().as_str(), run, "{at}");
                handle.wait().await.unwrap()
            }
            // The crash came before the run was recorded: start it afresh.
            None => saga
                .start(&engine, run, 0)
                .await
                .unwrap()
                .wait()
                .await
                .unwrap(),
        };
        let expected: Vec<String> = STEPS[..fail_at]
            .iter()
            .rev()
            .map(|s| s.to_string())
            .collect();
        match outcome {
            SagaOutcome::Compensated { undone, .. } => assert_eq!(undone, expected, "{at}"),
            other => panic!("{at}: {other:?}"),
        }
        (done, undone)
    });
    check(dir, fail_at, &done, &undone, at);
}

/// The side file: every step before the failing one did its effect and was undone; the ones
/// committed before the crash (forward `done`, compensations `undone`) exactly once, the others
/// at most twice, and compensations newest first by their last run.
fn check(dir: &Path, fail_at: usize, done: &[String], undone: &[String], at: &str) {
    let lines = side_lines(dir);
    let count = |line: &str| lines.iter().filter(|l| *l == line).count();
    for name in &STEPS[..fail_at] {
        for (kind, committed) in [("do", done), ("undo", undone)] {
            let n = count(&format!("{kind} {name}"));
            assert!(n >= 1, "{at}: `{kind} {name}` never ran: {lines:?}");
            let once = committed.iter().any(|c| c == name);
            assert!(
                n <= if once { 1 } else { 2 },
                "{at}: `{kind} {name}` ran {n} times: {lines:?}"
            );
        }
    }
    for name in &STEPS[fail_at..] {
        assert_eq!(
            count(&format!("do {name}")),
            0,
            "{at}: {name} ran: {lines:?}"
        );
        assert_eq!(
            count(&format!("undo {name}")),
            0,
            "{at}: {name} undone: {lines:?}"
        );
    }
    let mut order: Vec<&str> = Vec::new();
    for line in lines.iter().rev() {
        if let Some(step) = line.strip_prefix("undo ")
            && !order.contains(&step)
        {
            order.insert(0, step);
        }
    }
    let expected: Vec<&str> = STEPS[..fail_at].iter().rev().copied().collect();
    assert_eq!(order, expected, "{at}: {lines:?}");
}

#[test]
fn a_failing_saga_whose_every_step_and_compensation_runs_twice_is_compensated_the_same() {
    if std::env::var_os(CHILD).is_some() {
        return; // the child's part is the other test's
    }
    let fail_at = 3;
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_crash_at_every_commit_point_of_a_failing_saga_still_compensates_it_exactly",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .env(FAIL_AT, fail_at.to_string())
        .env(sagaflow_core::fault::RUN_TWICE, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the saga did not end compensated: {status}"
    );
    let lines = side_lines(dir.path());
    let mut expected = Vec::new();
    for name in &STEPS[..fail_at] {
        expected.push(format!("do {name}"));
        expected.push(format!("do {name}"));
    }
    for name in STEPS[..fail_at].iter().rev() {
        expected.push(format!("undo {name}"));
        expected.push(format!("undo {name}"));
    }
    assert_eq!(lines, expected);
}
