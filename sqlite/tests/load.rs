//! Load on one database file: 10,000 concurrent runs in one process, and two processes that
//! share a file at once. Every run is accounted for, and the counts in the file are checked
//! with a connection of the test's own.
//!
//! The second process is this same test binary, started again with an environment variable
//! that makes the test play its part.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::Connection;
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Builder, Definition, Engine, StepError};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::{SqliteOptions, Synchronous};

const CHILD: &str = "SAGAFLOW_LOAD_CHILD";

/// `a -> [b, c]`: three durable steps per run, one of them a fan-out.
fn three() -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Three");
    let input = b.input();
    let a = b.step("a", StepOptions::new(), (input,), |_, (x,)| async move {
        Ok::<u64, StepError>(*x + 1)
    });
    b.step("b", StepOptions::new(), (a,), |_, (x,)| async move {
        tokio::task::yield_now().await;
        Ok::<u64, StepError>(*x * 2)
    });
    let c = b.step("c", StepOptions::new(), (a,), |_, (x,)| async move {
        Ok::<u64, StepError>(*x + 10)
    });
    b.build_with_output(c)
}

fn engine(path: &Path, owner: &str) -> Engine {
    let options = SqliteOptions::default()
        .synchronous(Synchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .owner(owner.to_owned());
    Engine::open_with(path, options).unwrap()
}

/// Starts `count` runs named `{prefix}{i}`, `i` from `from`, at once and checks each one's
/// output.
async fn run_many(engine: &Engine, prefix: &str, from: u64, count: u64) {
    let def = three();
    let mut tasks = tokio::task::JoinSet::new();
    for i in from..from + count {
        let (engine, def, id) = (engine.clone(), def.clone(), format!("{prefix}{i}"));
        tasks.spawn(async move {
            let report = engine
                .start(&def, id, i)
                .await
                .unwrap()
                .wait()
                .await
                .unwrap();
            assert_eq!(*report.output, i + 11);
        });
    }
    let mut done = 0;
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
        done += 1;
    }
    assert_eq!(done, count);
}

/// `(runs, completed runs, completed steps, events)` of the runs whose id starts with
/// `prefix`, read from the file.
fn counts(path: &Path, prefix: &str) -> (i64, i64, i64, i64) {
    let conn = Connection::open(path).unwrap();
    let like = format!("{prefix}%");
    let one = |sql: &str| {
        conn.query_row(sql, [&like], |row| row.get::<_, i64>(0))
            .unwrap()
    };
    (
        one("SELECT COUNT(*) FROM runs WHERE run_id LIKE ?1"),
        one("SELECT COUNT(*) FROM runs WHERE run_id LIKE ?1 AND status = 'completed'"),
        one(
            "SELECT COUNT(*) FROM steps WHERE run_id LIKE ?1 AND status = 'completed' AND attempts = 1",
        ),
        // Events, not rows: on a compact log a row may log a next start too.
        one(
            "SELECT COALESCE(SUM(1 + (next_step IS NOT NULL)), 0) FROM events WHERE run_id LIKE ?1",
        ),
    )
}

/// Events of one run of `three`: created, 3 started, 3 completed, completed.
const EVENTS_PER_RUN: i64 = 8;

#[test]
fn ten_thousand_concurrent_runs_on_one_file_are_all_accounted_for() {
    if std::env::var_os(CHILD).is_some() {
        return; // the child's part is the other test's
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("load.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = engine(&path, "load");
        run_many(&engine, "r", 0, 10_000).await;
    });
    drop(runtime);
    assert_eq!(
        counts(&path, "r"),
        (10_000, 10_000, 30_000, 10_000 * EVENTS_PER_RUN)
    );
}

/// Runs batches of 100 runs named `{prefix}{i}` until at least `at_least` are done and the
/// file holds a completed run of the other process, so the two are sure to overlap however
/// unevenly they start (on a busy machine one process can finish 1,000 runs before the other
/// has started). Returns how many runs it made.
async fn run_until_overlap(path: &Path, owner: &str, prefix: &str, other: &str) -> u64 {
    const BATCH: u64 = 100;
    const MAX_BATCHES: u64 = 2_000;
    let engine = engine(path, owner);
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let other_seen = || {
        conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM runs WHERE run_id LIKE ?1 AND status = 'completed')",
            [format!("{other}%")],
            |row| row.get::<_, bool>(0),
        )
        .unwrap()
    };
    let mut done = 0;
    for _ in 0..MAX_BATCHES {
        run_many(&engine, prefix, done, BATCH).await;
        done += BATCH;
        if done >= 1_000 && other_seen() {
            return done;
        }
    }
    panic!("{owner}: no completed run of the other process after {done} runs of its own");
}

fn child(path: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let done = runtime.block_on(run_until_overlap(path, "second", "second-", "first-"));
    std::fs::write(path.with_extension("second"), done.to_string()).unwrap();
}

#[test]
fn two_processes_share_one_file_and_every_run_of_each_is_accounted_for() {
    if let Some(path) = std::env::var_os(CHILD) {
        child(&PathBuf::from(path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    // The file exists with its schema before the two race for it.
    drop(engine(&path, "first"));
    let mut second = Command::new(std::env::current_exe().unwrap())
        .args([
            "two_processes_share_one_file_and_every_run_of_each_is_accounted_for",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let first_done = runtime.block_on(run_until_overlap(&path, "first", "first-", "second-"));
    drop(runtime);
    let status = second.wait().unwrap();
    assert!(status.success(), "the second process failed: {status}");
    let second_done: u64 = std::fs::read_to_string(path.with_extension("second"))
        .unwrap()
        .parse()
        .unwrap();
    // The two wrote at the same time: their events interleave in the log.
    let conn = Connection::open(&path).unwrap();
    let span = |prefix: &str| {
        conn.query_row(
            "SELECT MIN(seq), MAX(seq) FROM events WHERE run_id LIKE ?1",
            [format!("{prefix}%")],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
        )
        .unwrap()
    };
    let (first, second) = (span("first-"), span("second-"));
    assert!(
        first.0 < second.1 && second.0 < first.1,
        "the processes did not overlap: {first:?} {second:?}"
    );
    for (prefix, done) in [("first-", first_done), ("second-", second_done)] {
        let n = i64::try_from(done).unwrap();
        assert_eq!(
            counts(&path, prefix),
            (n, n, 3 * n, n * EVENTS_PER_RUN),
            "{prefix}"
        );
    }
}
