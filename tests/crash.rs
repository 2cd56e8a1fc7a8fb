//! A real crash: a child process runs a 20-step workflow on a SQLite file, is killed with
//! SIGKILL in the middle, and a new process resumes the run to completion. Every step appends
//! its name to a side file as its effect, so the side file shows what ran and how often.
//!
//! The child is this same test binary, started again with an environment variable that makes
//! the test play the child's part.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;

use common::twenty::{
    CHILD, OWNER, STEPS, Twenty, each_step_once_but_the_one_cut,
    in_order_with_at_most_the_cut_step_again, side_lines,
};

/// The child's part: open the database, resume or start the run, wait for it.
fn child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Both processes are the same service restarted under its stable owner id, so the
        // second takes the run up at once instead of waiting for the killed one's lease to
        // expire.
        let options = sagaflow::SqliteOptions::default().owner("crash-test-service");
        let engine = Engine::open_with(dir.join("runs.db"), options).unwrap();
        let report = Twenty::start(&engine, "twenty")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, STEPS as u32);
    });
}

fn spawn_child(dir: &Path) -> std::process::Child {
    spawn_as(dir, "a_run_killed_mid_way_resumes_in_a_new_process", "")
}

/// Starts this test binary again as a child playing `test`'s child part, as `owner`.
fn spawn_as(dir: &Path, test: &str, owner: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1"])
        .env(CHILD, dir)
        .env(OWNER, owner)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn a_run_killed_mid_way_resumes_in_a_new_process() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(&PathBuf::from(dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // First process: killed with SIGKILL once 8 steps have had their effect.
    let mut first = spawn_child(dir.path());
    let started = Instant::now();
    while side_lines(dir.path()).len() < 8 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the child made no progress"
        );
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the child ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush, no goodbye
    first.wait().unwrap();
    let at_kill = side_lines(dir.path()).len();
    assert!(at_kill < STEPS, "the run finished before the kill");

    // Second process: resumes the same run and finishes it.
    let status = spawn_child(dir.path()).wait().unwrap();
    assert!(status.success(), "the resuming process failed: {status}");

    in_order_with_at_most_the_cut_step_again(&side_lines(dir.path()));
}

/// A racer's part: take the run up as `owner`, with a short lease, retrying while another
/// process holds it; done when the run is finished, by this process or the other.
fn racer(dir: &Path, owner: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = sagaflow::SqliteOptions::default()
            .owner(owner.to_owned())
            .lease(Duration::from_millis(300));
        let engine = Engine::open_with(dir.join("runs.db"), options).unwrap();
        let started = Instant::now();
        loop {
            match Twenty::start(&engine, "twenty").await {
                Ok(handle) => {
                    let report = handle.wait().await.unwrap();
                    assert_eq!(*report.output, STEPS as u32);
                    return;
                }
                Err(sagaflow::EngineError::Leased { .. }) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "never got the run"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(other) => panic!("{owner}: {other}"),
            }
        }
    });
}

#[test]
fn two_processes_taking_up_one_run_at_once_run_each_step_once() {
    const TEST: &str = "two_processes_taking_up_one_run_at_once_run_each_step_once";
    if let Some(dir) = std::env::var_os(CHILD) {
        let owner = std::env::var(OWNER).unwrap();
        racer(&PathBuf::from(dir), &owner);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_as(dir.path(), TEST, "first");
    let started = Instant::now();
    while side_lines(dir.path()).len() < 6 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the first process ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();

    // Two processes go for the run at the same moment.
    let mut a = spawn_as(dir.path(), TEST, "racer-a");
    let mut b = spawn_as(dir.path(), TEST, "racer-b");
    assert!(a.wait().unwrap().success(), "racer a failed");
    assert!(b.wait().unwrap().success(), "racer b failed");

    each_step_once_but_the_one_cut(&side_lines(dir.path()));
}
