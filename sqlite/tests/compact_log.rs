//! The compact log on SQLite (`SqliteOptions::compact_log`, schema version 13): a checkpoint
//! that completes a step and starts the next writes one row, and so does a run's creation
//! with its first step's start; every reader reads such a row as the two events it stands
//! for. The same runs on a file with it and on one without it read alike everywhere (a run's
//! events, page by page; the live feed; a run's steps as the store folds them and as
//! `inspect`'s view gives them; `inspect`'s events; what retention counts), and the compact
//! file holds fewer rows. A file a compact store opened is refused by the code before it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use sagaflow_core::StepOptions;
use sagaflow_core::conformance::compact::{self, Seen};
use sagaflow_core::runtime::{
    Builder, Definition, Engine, EventKind, EventLog, RunStore, StepError,
};
use sagaflow_sqlite::inspect::Inspector;
use sagaflow_sqlite::{SqliteOptions, SqliteStore, Synchronous};

fn options(compact: bool) -> SqliteOptions {
    SqliteOptions::default()
        .synchronous(Synchronous::Normal)
        .compact_log(compact)
}

/// The shared runs (`conformance::compact::run_on`) on a file of their own.
async fn run_on(path: &Path, compact: bool) -> Seen {
    let store = SqliteStore::open(path, options(compact)).unwrap();
    let inspector = Inspector::open(path).unwrap();
    compact::run_on(store, &inspector, async || {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*), count(next_step) FROM events", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_log_reads_as_the_log_it_stands_for() {
    let dir = tempfile::tempdir().unwrap();
    let plain = run_on(&dir.path().join("plain.db"), false).await;
    let compact = run_on(&dir.path().join("compact.db"), true).await;
    compact::compare(&plain, &compact);
}

/// The oldest version whose code may open the file (`schema_compat`).
fn compatible_from(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT compatible_from FROM schema_compat", [], |row| {
            row.get(0)
        })
        .unwrap()
}

#[tokio::test]
async fn a_compact_store_closes_the_window_to_code_that_would_misread_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("window.db");
    drop(SqliteStore::open(&path, options(false)).unwrap());
    assert_eq!(
        compatible_from(&path),
        11,
        "a plain store leaves the window of version 13's migration"
    );
    drop(SqliteStore::open(&path, options(true)).unwrap());
    assert_eq!(
        compatible_from(&path),
        13,
        "the code before version 13 reads a compact row as its first event alone"
    );
    // Turned off again, the rows it wrote stay, and so does the window.
    drop(SqliteStore::open(&path, options(false)).unwrap());
    assert_eq!(compatible_from(&path), 13);
}

#[tokio::test]
async fn the_log_is_compact_by_default_and_reopening_it_writes_nothing() {
    assert!(SqliteOptions::default().compact_log);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    assert_eq!(compatible_from(&path), 13, "the default closes the window");
    // Another process holds the write lock: a store opening the file, whose window is
    // already closed, reads it and does not wait for that lock.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let busy = SqliteOptions::default().busy_timeout(Duration::from_millis(50));
    let opened = SqliteStore::open(&path, busy);
    assert!(opened.is_ok(), "{:?}", opened.err());
    other.execute_batch("ROLLBACK").unwrap();
}

/// `s0 → s1`, each adding one; `s1` hangs while `hang` is set.
fn two(hang: Arc<std::sync::atomic::AtomicBool>, calls: Arc<AtomicU32>) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Resumed");
    let s0 = b.step("s0", StepOptions::new(), (b.input(),), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    let s1 = b.step("s1", StepOptions::new(), (s0,), move |_, (x,)| {
        let x = *x;
        calls.fetch_add(1, Ordering::SeqCst);
        let hang = hang.load(Ordering::SeqCst);
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok::<_, StepError>(x + 1)
        }
    });
    b.build_with_output(s1)
}

#[test]
fn a_run_cut_after_a_compact_row_resumes_at_the_step_it_started() {
    // The run's creation logged `s0`'s start, `s0`'s completion `s1`'s, each in one row; the
    // process dies inside `s1` (its runtime dropped, nothing cleaned up). The next store reads
    // `s0` completed and `s1` running, its first attempt, and the run goes on from `s1`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resume.db");
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let calls = Arc::new(AtomicU32::new(0));
    let def = two(Arc::clone(&hang), Arc::clone(&calls));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&path, options(true)).unwrap();
        let engine = Engine::builder().store(Arc::new(store)).build();
        let _run = engine.start(&def, "cut", 1).await.unwrap();
        let began = std::time::Instant::now();
        while calls.load(Ordering::SeqCst) == 0 {
            assert!(began.elapsed() < Duration::from_secs(20), "s1 never ran");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    drop(runtime);
    let rows: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(next_step) FROM events", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 2, "the creation's row and s0's completion's");

    hang.store(false, Ordering::SeqCst);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&path, options(true)).unwrap();
        let stored = store.load_run(&"cut".into()).await.unwrap().unwrap();
        let steps: Vec<_> = stored
            .steps
            .iter()
            .map(|s| (s.name.as_str(), format!("{:?}", s.status), s.attempts))
            .collect();
        assert_eq!(
            steps,
            [
                ("s0", "Completed".to_owned(), 1),
                ("s1", "Running".to_owned(), 1)
            ]
        );
        let engine = Engine::builder().store(Arc::new(store.clone())).build();
        let report = engine
            .start(&def, "cut", 1)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, 3);
        // `s0` ran once, in the first life; `s1` once in each, its cut attempt counted.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let events = store.events(Some(&"cut".into()), 0, 100).await.unwrap();
        // Numbered on from the newest row's start after the restart: no number given twice,
        // none skipped.
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        let starts: Vec<_> = events
            .into_iter()
            .filter(|e| e.kind == EventKind::StepStarted)
            .map(|e| (e.step.as_deref().unwrap_or_default().to_owned(), e.attempt))
            .collect();
        assert_eq!(
            starts,
            [
                ("s0".to_owned(), Some(1)),
                ("s1".to_owned(), Some(1)),
                ("s1".to_owned(), Some(2))
            ]
        );
    });
}
