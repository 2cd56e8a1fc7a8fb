//! Soak: round after round, a deployment-like saga runs in a child process that is killed with
//! SIGKILL at a random moment, restarted, perhaps killed again, and finally taken up by the
//! test, which checks that the saga ended as it must (completed, or compensated newest first)
//! and that nothing ran that should not have, or more often than the kills explain. On a
//! SQLite file, and on a PostgreSQL schema (`..._on_postgres`).
//!
//! `SAGAFLOW_SOAK_ROUNDS` sets the number of rounds: 5 by default (what CI runs), 100 for the
//! soak of the guarantees table: `SAGAFLOW_SOAK_ROUNDS=100 cargo test -p sagaflow-saga --test
//! soak --release`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::conformance::side::side;
use sagaflow_core::runtime::{Engine, StepError};
use sagaflow_saga::{SagaBuilder, SagaDefinition, SagaOutcome};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::SqliteOptions;

const CHILD: &str = "SAGAFLOW_SOAK_CHILD";
const RUN: &str = "SAGAFLOW_SOAK_RUN";
/// The children's PostgreSQL schema, when the soak runs on PostgreSQL.
const SCHEMA: &str = "SAGAFLOW_SOAK_SCHEMA";
/// The test the children play, by its name.
const TEST: &str = "SAGAFLOW_SOAK_TEST";
const STEPS: [&str; 5] = ["build", "push", "migrate", "shift", "smoke"];

/// The run's id says where it fails: `r{round}-f{fail_at}` (`fail_at` 5: nowhere).
fn fail_at(run: &str) -> usize {
    run.rsplit_once("-f")
        .and_then(|(_, f)| f.parse().ok())
        .unwrap_or(STEPS.len())
}

/// Five steps of 15 ms, each with a compensation of 15 ms; each writes `do`/`undo` lines
/// tagged with the run.
fn saga(dir: &Path) -> SagaDefinition<u32, u32> {
    let mut b = SagaBuilder::<u32>::new("Soak");
    let mut prev = b.input();
    for (i, name) in STEPS.into_iter().enumerate() {
        let d = dir.to_owned();
        let step = b.step(name, StepOptions::new(), (prev,), move |ctx, (x,)| {
            let d = d.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(15)).await;
                if i == fail_at(ctx.run_id().as_str()) {
                    return Err(StepError::permanent("broken"));
                }
                side(&d, &format!("{} do {}", ctx.run_id(), ctx.step()));
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
                let d = d.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    let run = ctx
                        .run_id()
                        .as_str()
                        .split('~')
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    side(&d, &format!("{run} undo {}", ctx.step()));
                    Ok::<(), StepError>(())
                }
            },
        );
        prev = step;
    }
    b.build_with_output(prev)
}

/// The service's engine: on `dir`'s SQLite file, or on PostgreSQL schema `schema`.
async fn engine(dir: &Path, schema: Option<&str>) -> Engine {
    match schema {
        None => {
            Engine::open_with(dir.join("soak.db"), SqliteOptions::default().owner("soak")).unwrap()
        }
        Some(schema) => sagaflow_postgres::testing::engine_as(schema, "soak").await,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The child's part: take up whatever is unfinished, start the round's saga, wait.
fn child(dir: &Path, run: &str, schema: Option<&str>) {
    runtime().block_on(async {
        let engine = engine(dir, schema).await;
        let saga = saga(dir);
        let recovered = saga.recover(&engine).await.unwrap();
        let handle = saga.start(&engine, run.to_owned(), 0).await.unwrap();
        for other in recovered.runs {
            let _ = other.wait().await;
        }
        let _ = handle.wait().await;
    });
}

fn spawn(dir: &Path, run: &str, test: &str, schema: Option<&str>) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact"])
        .env(CHILD, dir)
        .env(RUN, run)
        .env(TEST, test);
    if let Some(schema) = schema {
        command.env(SCHEMA, schema);
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn killed_and_restarted_round_after_round_every_saga_ends_consistent() {
    soak(
        "killed_and_restarted_round_after_round_every_saga_ends_consistent",
        None,
    );
}

#[test]
fn killed_and_restarted_round_after_round_every_saga_ends_consistent_on_postgres() {
    let test = "killed_and_restarted_round_after_round_every_saga_ends_consistent_on_postgres";
    if std::env::var_os(CHILD).is_some() {
        return soak(test, std::env::var(SCHEMA).ok().as_deref());
    }
    if runtime()
        .block_on(sagaflow_postgres::testing::server())
        .is_none()
    {
        return;
    }
    soak(
        test,
        Some(&sagaflow_postgres::testing::fresh_schema("soak")),
    );
}

/// The soak on `schema` (PostgreSQL) or a SQLite file; its children run this binary again as
/// test `test`.
fn soak(test: &str, schema: Option<&str>) {
    if let Some(dir) = std::env::var_os(CHILD) {
        // Only the test named plays the child: the other one, run by the same filter, returns.
        if std::env::var(TEST).as_deref() == Ok(test) {
            child(&PathBuf::from(dir), &std::env::var(RUN).unwrap(), schema);
        }
        return;
    }
    let rounds: u64 = std::env::var("SAGAFLOW_SOAK_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seed();
    for round in 0..rounds {
        let run = format!("r{round}-f{}", next(&mut rng) % (STEPS.len() as u64 + 1));
        // One to three processes, each killed at a random moment of the saga's ~150 ms.
        let kills = 1 + next(&mut rng) % 3;
        for _ in 0..kills {
            let mut child = spawn(dir.path(), &run, test, schema);
            std::thread::sleep(Duration::from_millis(next(&mut rng) % 160));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        // The last take-up, in this process, to the end.
        let outcome = runtime().block_on(async {
            let engine = engine(dir.path(), schema).await;
            let saga = saga(dir.path());
            saga.recover(&engine).await.unwrap();
            saga.start(&engine, run.clone(), 0)
                .await
                .unwrap()
                .wait()
                .await
                .unwrap()
        });
        check(dir.path(), &run, &outcome, kills);
    }
}

fn check(dir: &Path, run: &str, outcome: &SagaOutcome<u32>, kills: u64) {
    let lines: Vec<String> = std::fs::read_to_string(dir.join("side.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{run} ")).map(str::to_owned))
        .collect();
    let fail_at = fail_at(run);
    let count = |line: &str| lines.iter().filter(|l| *l == line).count() as u64;
    for (i, name) in STEPS.into_iter().enumerate() {
        let (done, undone) = (count(&format!("do {name}")), count(&format!("undo {name}")));
        // A kill repeats at most the step in flight, once per kill.
        assert!(done <= 1 + kills && undone <= 1 + kills, "{run}: {lines:?}");
        if i < fail_at {
            assert!(done >= 1, "{run}: {name} never ran: {lines:?}");
            let compensated = fail_at < STEPS.len();
            assert_eq!(undone >= 1, compensated, "{run}: {name}: {lines:?}");
        } else {
            assert_eq!((done, undone), (0, 0), "{run}: {name}: {lines:?}");
        }
    }
    match outcome {
        SagaOutcome::Completed(report) => {
            assert_eq!(fail_at, STEPS.len(), "{run}");
            assert_eq!(*report.output, STEPS.len() as u32);
        }
        SagaOutcome::Compensated { undone, .. } => {
            let expected: Vec<String> = STEPS[..fail_at]
                .iter()
                .rev()
                .map(|s| s.to_string())
                .collect();
            assert_eq!(undone, &expected, "{run}");
        }
        other => panic!("{run}: {other:?}"),
    }
}

/// A small generator seeded from the clock, printed so that a failure can be replayed with
/// `SAGAFLOW_SOAK_SEED`.
fn seed() -> u64 {
    let seed = std::env::var("SAGAFLOW_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("soak seed: {seed}");
    seed
}

fn next(state: &mut u64) -> u64 {
    // xorshift64*
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}
