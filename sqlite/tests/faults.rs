//! A crash at every commit point of a run: before each commit, after each, and between each
//! step's effect and its checkpoint (`sagaflow_core::conformance::crash`). A child process
//! (this test binary again) runs a 5-step workflow with one crash point armed and aborts
//! there; the test then reopens the file, takes the run up, and checks that it completes,
//! that no step whose completion was committed ran again, and that at most the step in flight
//! ran twice. On the compact log (the default) and on the log of schema 12
//! (`SqliteOptions::compact_log(false)`), where a completion and the next start are two rows.
//!
//! Needs the `fault-injection` feature: `cargo test -p sagaflow-sqlite --features
//! fault-injection --test faults`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use sagaflow_core::conformance::crash::{self, runtime};
use sagaflow_core::runtime::{Engine, RunId, StepStatus};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::SqliteOptions;

/// Set when the child's store keeps the log of schema 12.
const PLAIN: &str = "SAGAFLOW_FAULT_PLAIN";

fn engine(dir: &Path, compact: bool) -> Engine {
    let options = SqliteOptions::default().owner("svc").compact_log(compact);
    Engine::open_with(dir.join("runs.db"), options).unwrap()
}

/// Plays the child's part if this process is a child: runs the chain to its end, unless the
/// armed crash point stops it. `true` if it was one.
fn child() -> bool {
    let Some((dir, run)) = crash::child() else {
        return false;
    };
    runtime().block_on(async {
        let engine = engine(&dir, std::env::var_os(PLAIN).is_none());
        crash::run_child(&engine, &dir, &run).await;
    });
    true
}

#[test]
fn a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step() {
    crash_at_every_point(
        "a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step",
        true,
    );
}

#[test]
fn a_crash_at_every_commit_point_of_the_log_of_schema_12_loses_nothing() {
    crash_at_every_point(
        "a_crash_at_every_commit_point_of_the_log_of_schema_12_loses_nothing",
        false,
    );
}

/// Crashes a child at every commit point in turn and checks each recovery.
fn crash_at_every_point(test: &str, compact: bool) {
    if child() {
        return;
    }
    let configure = |command: &mut Command| {
        if !compact {
            command.env(PLAIN, "1");
        }
    };
    crash::crash_at_every_point(test, &configure, |dir, run, at| {
        runtime().block_on(crash::check_recovery(&engine(dir, compact), dir, run, at));
        // The run's completions and next starts shared rows on a compact log, and only there.
        let shared: i64 = rusqlite::Connection::open(dir.join("runs.db"))
            .unwrap()
            .query_row("SELECT count(next_step) FROM events", [], |row| row.get(0))
            .unwrap();
        assert_eq!(shared > 0, compact, "{at}: {shared} rows log a next start");
    });
}

#[test]
fn every_step_run_twice_on_purpose_changes_no_outcome() {
    if child() {
        return; // the child's part is the other test's
    }
    let dir = tempfile::tempdir().unwrap();
    let test = "a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step";
    let completed = crash::spawn_child((test, dir.path(), "run"), None, &|_| {});
    assert!(completed, "the run did not complete");
    crash::twice_in_order(dir.path());
    // And the file says each step completed once, after one attempt.
    runtime().block_on(async {
        let run = engine(dir.path(), true)
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
