//! A crash at every commit point of a run: before each commit, after each, and between each
//! step's effect and its checkpoint. A child process (this test binary again) runs a 5-step
//! workflow with one crash point armed and aborts there; the test then reopens the file,
//! takes the run up, and checks that it completes, that no step whose completion was
//! committed ran again, and that at most the step in flight ran twice. The same again on a
//! compact log (`SqliteOptions::compact_log`), where a completion and the next start are a row.
//!
//! Needs the `fault-injection` feature: `cargo test -p sagaflow-core --features
//! fault-injection --test faults`.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sagaflow_core::StepOptions;
use sagaflow_core::fault::{CRASH_AT, Point};
use sagaflow_core::runtime::{Builder, Definition, Engine, RunId, StepError, StepStatus};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::SqliteOptions;

const CHILD: &str = "SAGAFLOW_FAULT_CHILD";
/// Set when the child's store keeps a compact log.
const COMPACT: &str = "SAGAFLOW_FAULT_COMPACT";
const STEPS: usize = 5;

fn side(dir: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("side.txt"))
        .unwrap();
    // One write: `writeln!` on a `File` is two (the line, then its end), and a process
    // killed between them leaves a line without its end, which the next one's runs on.
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
    file.sync_all().unwrap();
}

fn side_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("side.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `s1 -> ... -> s5`, each writing its name to the side file as its effect.
fn chain(dir: &Path) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Chain");
    let mut prev = b.input();
    for i in 1..=STEPS {
        let dir = dir.to_owned();
        prev = b.step(
            &format!("s{i}"),
            StepOptions::new(),
            (prev,),
            move |ctx, (x,)| {
                side(&dir, ctx.step());
                async move { Ok::<u32, StepError>(*x + 1) }
            },
        );
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

fn engine(dir: &Path, compact: bool) -> Engine {
    let options = SqliteOptions::default().owner("svc").compact_log(compact);
    Engine::open_with(dir.join("runs.db"), options).unwrap()
}

/// The child's part: run the chain to its end, unless the armed crash point stops it.
fn child(dir: &Path) {
    runtime().block_on(async {
        let engine = engine(dir, std::env::var_os(COMPACT).is_some());
        let report = engine
            .start(&chain(dir), "run", 0)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, STEPS as u32);
    });
}

#[test]
fn a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step() {
    crash_at_every_point(
        "a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step",
        false,
    );
}

#[test]
fn a_crash_at_every_commit_point_of_a_compact_log_loses_nothing() {
    crash_at_every_point(
        "a_crash_at_every_commit_point_of_a_compact_log_loses_nothing",
        true,
    );
}

/// Plays the child's part if this process is the child of `test`; else crashes a child at
/// every commit point in turn and checks each recovery.
fn crash_at_every_point(test: &str, compact: bool) {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(&PathBuf::from(dir));
        return;
    }
    let mut crashes = 0;
    for point in Point::ALL {
        for n in 1.. {
            assert!(n < 100, "{} never let the run finish", point.as_str());
            let dir = tempfile::tempdir().unwrap();
            let mut command = Command::new(std::env::current_exe().unwrap());
            command
                .args([test, "--exact", "--test-threads=1"])
                .env(CHILD, dir.path())
                .env(CRASH_AT, format!("{}:{n}", point.as_str()))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if compact {
                command.env(COMPACT, "1");
            }
            let status = command.status().unwrap();
            let at = format!("{} #{n}", point.as_str());
            if status.success() {
                // Past the last time the run reaches this point: it finished untouched.
                let names: Vec<String> = (1..=STEPS).map(|i| format!("s{i}")).collect();
                assert_eq!(side_lines(dir.path()), names, "{at}");
                break;
            }
            crashes += 1;
            check_recovery(dir.path(), &at, compact);
        }
    }
    eprintln!("{crashes} crashes");
    // Every point was reached several times (each commit of the run, each step's effect).
    assert!(crashes >= 3 * STEPS, "only {crashes} crashes");
}

/// Reopens the crashed file, takes the run up and checks what ran.
fn check_recovery(dir: &Path, at: &str, compact: bool) {
    runtime().block_on(async {
        let engine = engine(dir, compact);
        let before = engine.store().load_run(&RunId::from("run")).await.unwrap();
        let committed: Vec<String> = before
            .iter()
            .flat_map(|run| &run.steps)
            .filter(|s| s.status == StepStatus::Completed)
            .map(|s| s.name.clone())
            .collect();
        let report = engine
            .start(&chain(dir), "run", 0)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(*report.output, STEPS as u32, "{at}");
        let lines = side_lines(dir);
        let mut twice = 0;
        for i in 1..=STEPS {
            let name = format!("s{i}");
            let count = lines.iter().filter(|l| **l == name).count();
            assert!(count >= 1, "{at}: {name} never ran: {lines:?}");
            if committed.contains(&name) {
                assert_eq!(
                    count, 1,
                    "{at}: {name} had completed, yet ran again: {lines:?}"
                );
            }
            assert!(count <= 2, "{at}: {name} ran {count} times: {lines:?}");
            twice += usize::from(count == 2);
        }
        assert!(
            twice <= 1,
            "{at}: only the step in flight may run twice: {lines:?}"
        );
    });
    // The run's completions and next starts shared rows on a compact log, and only there.
    let shared: i64 = rusqlite::Connection::open(dir.join("runs.db"))
        .unwrap()
        .query_row("SELECT count(next_step) FROM events", [], |row| row.get(0))
        .unwrap();
    assert_eq!(shared > 0, compact, "{at}: {shared} rows log a next start");
}

#[test]
fn every_step_run_twice_on_purpose_changes_no_outcome() {
    if std::env::var_os(CHILD).is_some() {
        return; // the child's part is the other test's
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .env(sagaflow_core::fault::RUN_TWICE, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success(), "the run did not complete: {status}");
    let twice: Vec<String> = (1..=STEPS)
        .flat_map(|i| [format!("s{i}"), format!("s{i}")])
        .collect();
    assert_eq!(
        side_lines(dir.path()),
        twice,
        "each step ran twice, in order"
    );
    // And the file says each step completed once, after one attempt.
    runtime().block_on(async {
        let run = engine(dir.path(), false)
            .store()
            .load_run(&RunId::from("run"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            run.steps
                .iter()
                .all(|s| s.status == StepStatus::Completed && s.attempts == 1)
        );
    });
}
