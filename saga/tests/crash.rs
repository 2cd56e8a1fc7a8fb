//! A real crash during compensation: a child process runs a saga whose last step fails, on a
//! SQLite file or a PostgreSQL schema, and is killed with SIGKILL while the compensations run;
//! a new process takes the saga up and finishes compensating it. Each compensation writes
//! `begin X` and `end X` to a side file, so the file shows what ran and how often.
//!
//! The child is this same test binary, started again with an environment variable that makes
//! the test play the child's part.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::conformance::side::{side, side_lines};
use sagaflow_core::runtime::{Engine, RunId, StepContext, StepError, StepStatus};
use sagaflow_saga::{SagaBuilder, SagaDefinition, SagaOutcome};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::SqliteOptions;

const CHILD: &str = "SAGAFLOW_SAGA_CRASH_CHILD";
/// The child's PostgreSQL schema, when it runs on PostgreSQL rather than a SQLite file.
const SCHEMA: &str = "SAGAFLOW_SAGA_CRASH_SCHEMA";
const UNKNOWN_CHILD: &str = "SAGAFLOW_SAGA_UNKNOWN_CHILD";
const STEPS: [&str; 5] = ["build", "push", "migrate", "shift", "smoke"];
/// The service's stable owner id: the restarted process takes the saga up at once instead of
/// waiting for the killed one's lease to expire.
const OWNER: &str = "saga-crash-service";

/// Four steps that complete, a fifth that fails; each compensation takes 150 ms.
fn saga(dir: &Path) -> SagaDefinition<u32, u32> {
    let mut b = SagaBuilder::<u32>::new("CrashDeploy");
    let mut prev = b.input();
    for name in STEPS {
        let step = b.step(
            name,
            StepOptions::new(),
            (prev,),
            |ctx: StepContext, (x,)| async move {
                if ctx.step() == "smoke" {
                    return Err(StepError::permanent("smoke test failed"));
                }
                Ok::<u32, StepError>(*x + 1)
            },
        );
        let dir = dir.to_owned();
        b.undo(
            step,
            &format!("undo_{name}"),
            StepOptions::new(),
            (prev,),
            move |ctx: StepContext, (_,), _: Arc<u32>| {
                let dir = dir.clone();
                async move {
                    side(&dir, &format!("begin {}", ctx.step()));
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    side(&dir, &format!("end {}", ctx.step()));
                    Ok::<(), StepError>(())
                }
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

fn engine(dir: &Path) -> Engine {
    Engine::open_with(dir.join("sagas.db"), SqliteOptions::default().owner(OWNER)).unwrap()
}

/// The service's engine on `dir`'s SQLite file, or on PostgreSQL schema `schema`.
async fn engine_on(dir: &Path, schema: Option<&str>) -> Engine {
    match schema {
        None => engine(dir),
        Some(schema) => sagaflow_postgres::testing::engine_as(schema, OWNER).await,
    }
}

/// The child's part: start the saga and wait (it is killed before it ends).
fn child(dir: &Path, schema: Option<&str>) {
    runtime().block_on(async {
        let engine = engine_on(dir, schema).await;
        let outcome = saga(dir)
            .start(&engine, "deploy-7", 0)
            .await
            .unwrap()
            .wait()
            .await;
        panic!("the child should have been killed, but the saga ended: {outcome:?}");
    });
}

#[test]
fn a_saga_killed_while_compensating_finishes_compensating_after_a_restart() {
    killed_while_compensating(
        "a_saga_killed_while_compensating_finishes_compensating_after_a_restart",
        None,
    );
}

#[test]
fn a_saga_killed_while_compensating_finishes_compensating_after_a_restart_on_postgres() {
    let name = "a_saga_killed_while_compensating_finishes_compensating_after_a_restart_on_postgres";
    if std::env::var_os(CHILD).is_some() {
        return killed_while_compensating(name, std::env::var(SCHEMA).ok().as_deref());
    }
    if runtime()
        .block_on(sagaflow_postgres::testing::server())
        .is_none()
    {
        return;
    }
    let schema = sagaflow_postgres::testing::fresh_schema("sagacrash");
    killed_while_compensating(name, Some(&schema));
}

/// The check, on `dir`'s SQLite file or PostgreSQL schema `schema`: this binary run again as
/// test `name` plays the child.
fn killed_while_compensating(name: &str, schema: Option<&str>) {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(&PathBuf::from(dir), schema);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([name, "--exact", "--test-threads=1"])
        .env(CHILD, dir.path());
    if let Some(schema) = schema {
        command.env(SCHEMA, schema);
    }
    let mut first = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Killed once the second compensation has begun.
    let started = Instant::now();
    while side_lines(dir.path())
        .iter()
        .filter(|l| l.starts_with("begin"))
        .count()
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the child made no progress"
        );
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the child ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill().unwrap(); // SIGKILL on Unix
    first.wait().unwrap();
    let at_kill = side_lines(dir.path());

    runtime().block_on(async {
        let engine = engine_on(dir.path(), schema).await;
        // What the store had recorded as undone when the process died.
        let round = engine
            .store()
            .load_run(&RunId::from("deploy-7~undo1"))
            .await
            .unwrap()
            .expect("the compensation round was recorded before its first step ran");
        let committed: Vec<String> = round
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Completed)
            .map(|s| s.name.clone())
            .collect();
        assert!(
            !committed.contains(&"build".to_owned()),
            "killed too late: {at_kill:?}"
        );

        let saga = saga(dir.path());
        let recovered = saga.recover(&engine).await.unwrap();
        assert!(recovered.failed.is_empty(), "{:?}", recovered.failed);
        assert_eq!(recovered.runs.len(), 1);
        let outcome = recovered
            .runs
            .into_iter()
            .next()
            .unwrap()
            .wait()
            .await
            .unwrap();
        match outcome {
            SagaOutcome::Compensated { undone, cause, .. } => {
                assert_eq!(undone, ["shift", "migrate", "push", "build"]);
                assert!(cause.contains("smoke test failed"), "{cause}");
            }
            other => panic!("{other:?}"),
        }

        let lines = side_lines(dir.path());
        for step in ["shift", "migrate", "push", "build"] {
            let begun = lines
                .iter()
                .filter(|l| **l == format!("begin {step}"))
                .count();
            let ended = lines
                .iter()
                .filter(|l| **l == format!("end {step}"))
                .count();
            assert!(ended >= 1, "{step} was never undone: {lines:?}");
            if committed.contains(&step.to_owned()) {
                assert_eq!(begun, 1, "{step} had completed, yet ran again: {lines:?}");
            } else {
                assert!(begun <= 2, "{step} ran {begun} times: {lines:?}");
            }
        }
        // Newest first, across the crash: the order of the last `end` of each.
        let ends: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("end "))
            .collect();
        let mut order: Vec<&str> = Vec::new();
        for step in ends.iter().rev() {
            if !order.contains(step) {
                order.insert(0, step);
            }
        }
        assert_eq!(order, ["shift", "migrate", "push", "build"]);
    });
}

/// `build -> push`, where `push` is at-most-once and its compensation is safe on an unknown
/// outcome; `push` hangs (in the child) once it has written that it started.
fn unknown(dir: &Path) -> SagaDefinition<u32, u32> {
    let mut b = SagaBuilder::<u32>::new("CrashUnknown");
    let input = b.input();
    let build = b.step(
        "build",
        StepOptions::new(),
        (input,),
        |_, (x,)| async move { Ok::<u32, StepError>(*x + 1) },
    );
    let d = dir.to_owned();
    b.undo(
        build,
        "undo_build",
        StepOptions::new(),
        (input,),
        move |_, (_,), out: Arc<u32>| {
            let d = d.clone();
            async move {
                side(&d, &format!("undo build {out}"));
                Ok::<(), StepError>(())
            }
        },
    );
    let d = dir.to_owned();
    let push = b.step(
        "push",
        StepOptions {
            at_most_once: Some(true),
            ..StepOptions::new()
        },
        (build,),
        move |_, (x,)| {
            let d = d.clone();
            async move {
                side(&d, "push started");
                std::future::pending::<()>().await;
                Ok::<u32, StepError>(*x + 1)
            }
        },
    );
    let d = dir.to_owned();
    b.undo_on_unknown(
        push,
        "undo_push",
        StepOptions::new(),
        (build,),
        move |_, (x,), out: Option<Arc<u32>>| {
            let d = d.clone();
            async move {
                side(&d, &format!("undo push of {x}, output {out:?}"));
                Ok::<(), StepError>(())
            }
        },
    );
    b.build_with_output(push)
}

#[test]
fn a_step_cut_by_a_crash_is_undone_when_its_undo_is_safe_on_an_unknown_outcome() {
    if let Some(dir) = std::env::var_os(UNKNOWN_CHILD) {
        let dir = PathBuf::from(dir);
        runtime().block_on(async {
            let engine = engine(&dir);
            let outcome = unknown(&dir)
                .start(&engine, "u", 1)
                .await
                .unwrap()
                .wait()
                .await;
            panic!("the child should have been killed, but the saga ended: {outcome:?}");
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_step_cut_by_a_crash_is_undone_when_its_undo_is_safe_on_an_unknown_outcome",
            "--exact",
            "--test-threads=1",
        ])
        .env(UNKNOWN_CHILD, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !side_lines(dir.path()).contains(&"push started".to_owned()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the child made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    runtime().block_on(async {
        let engine = engine(dir.path());
        let saga = unknown(dir.path());
        let recovered = saga.recover(&engine).await.unwrap();
        assert!(recovered.failed.is_empty(), "{:?}", recovered.failed);
        let outcome = recovered
            .runs
            .into_iter()
            .next()
            .unwrap()
            .wait()
            .await
            .unwrap();
        match outcome {
            SagaOutcome::Compensated { undone, cause, .. } => {
                assert_eq!(undone, ["push", "build"]);
                assert!(cause.contains("interrupted by a crash"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
    });
    assert_eq!(
        side_lines(dir.path()),
        [
            "push started",
            "undo push of 2, output None",
            "undo build 2"
        ],
        "push was not run again (at most once); its undo ran with no output, then build's"
    );
}
