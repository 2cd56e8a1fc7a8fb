//! The SQLite store on real files: schema and migrations, what survives a reopen, every kind of
//! bad database as an error value, the codec seam, a workflow end to end, and group commit.

mod common;

use common::REWIND_V3;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sagaflow_core::conformance::runs::{complete, create, start};
use sagaflow_core::runtime::{
    Builder, Engine, LeaseStore, RunError, RunId, RunStore, StepError, StepStatus, StoreError,
    StoredRunStatus,
};
use sagaflow_core::{RetryPolicy, StepOptions};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("sagaflow.db");
    (dir, path)
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("the database opens")
}

/// `(kind, step, attempt)` of a run's events, in `seq` order, read with a connection of the
/// test's own.
/// An event as the file holds it: its kind, step and attempt.
type Logged = (String, Option<String>, Option<i64>);

/// The run's events as the file holds them: a row, and the start its `next_step` logs too
/// (a compact log), read here without the store's code.
fn events(path: &Path, run: &str) -> Vec<Logged> {
    let conn = Connection::open(path).expect("opens");
    let mut stmt = conn
        .prepare("SELECT kind, step, attempt, next_step FROM events WHERE run_id = ?1 ORDER BY seq")
        .expect("prepares");
    let rows: Vec<(Logged, Option<String>)> = stmt
        .query_map([run], |row| {
            Ok(((row.get(0)?, row.get(1)?, row.get(2)?), row.get(3)?))
        })
        .expect("queries")
        .collect::<Result<_, _>>()
        .expect("reads");
    rows.into_iter()
        .flat_map(|(logged, next)| {
            let started = next.map(|next| ("step_started".to_owned(), Some(next), Some(1)));
            std::iter::once(logged).chain(started)
        })
        .collect()
}

fn event(kind: &str, step: Option<&str>, attempt: Option<i64>) -> Logged {
    (kind.to_owned(), step.map(str::to_owned), attempt)
}

#[tokio::test]
async fn opening_creates_the_schema_in_wal_mode_with_strict_tables() {
    let (_dir, path) = temp_db();
    drop(open(&path));
    let conn = Connection::open(&path).expect("opens");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 13);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(mode, "wal", "WAL mode is persistent in the file");
    // `steps` is a view of the events (schema 11).
    let steps: String = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'steps'",
            [],
            |r| r.get(0),
        )
        .expect("reads");
    assert_eq!(steps, "view");
    for table in [
        "runs",
        "events",
        "signals",
        "replicas",
        "positions",
        "graphs",
    ] {
        let strict: i64 = conn
            .query_row(
                "SELECT strict FROM pragma_table_list WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .expect("the table exists");
        assert_eq!(strict, 1, "`{table}` is STRICT");
    }
    // Opening again applies nothing and changes nothing.
    drop(open(&path));
    let again: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(again, SCHEMA_VERSION);
}

/// A file a newer sagaflow migrated, whose migrations only added: this code works on it, and
/// leaves its version as it found it.
#[tokio::test]
async fn a_database_from_a_newer_sagaflow_within_its_window_is_worked_on() {
    let (_dir, path) = temp_db();
    drop(open(&path));
    let conn = Connection::open(&path).expect("opens");
    conn.execute_batch(&format!(
        "PRAGMA user_version = {}; UPDATE schema_compat SET compatible_from = {SCHEMA_VERSION};",
        SCHEMA_VERSION + 1
    ))
    .expect("sets");
    let store = open(&path);
    create(&store, "r", "W").await.expect("created");
    drop(store);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(version, SCHEMA_VERSION + 1);
    let runs: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(runs, 1);
}

/// A file a newer sagaflow migrated beyond what this code can work on is refused.
#[tokio::test]
async fn a_database_from_a_newer_sagaflow_is_refused() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    create(&store, "r", "W").await.expect("created");
    drop(store);
    let conn = Connection::open(&path).expect("opens");
    conn.execute_batch(&format!(
        "PRAGMA user_version = {next}; UPDATE schema_compat SET compatible_from = {next};",
        next = SCHEMA_VERSION + 1
    ))
    .expect("sets");
    drop(conn);

    let error = SqliteStore::open(&path, SqliteOptions::default()).expect_err("refused");
    assert!(
        matches!(&error, StoreError::SchemaTooNew { found, supported, .. }
            if *found == SCHEMA_VERSION + 1 && *supported == SCHEMA_VERSION),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("version {}", SCHEMA_VERSION + 1))
            && message.contains(&format!("version {SCHEMA_VERSION}")),
        "{message}"
    );

    // Nothing was touched: the data is there for the newer sagaflow.
    let conn = Connection::open(&path).expect("opens");
    let runs: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(runs, 1);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_an_error_and_is_left_alone() {
    let (_dir, path) = temp_db();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let garbage: Vec<u8> = (0..16_384)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(&path, &garbage).expect("writes");

    let error = Engine::open(&path).expect_err("not a database");
    assert!(matches!(&error, StoreError::Open { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("not a database"), "{message}");
    assert_eq!(
        std::fs::read(&path).expect("reads"),
        garbage,
        "the file is untouched"
    );
}

#[tokio::test]
async fn a_full_database_is_an_error_and_what_was_committed_stays() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    create(&store, "early", "W").await.expect("created");
    start(&store, "early", "a").await.expect("recorded");
    complete(&store, "early", "a", &"kept".to_owned())
        .await
        .expect("recorded");
    let before = store.load_run(&"early".into()).await.expect("loads");
    drop(store);

    let pages: u32 = Connection::open(&path)
        .expect("opens")
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("reads");
    let store = SqliteStore::open(&path, SqliteOptions::default().max_page_count(pages + 4))
        .expect("reopens");
    create(&store, "late", "W").await.expect("fits");
    let big = "x".repeat(64 * 1024);
    let mut error = None;
    for i in 0..20 {
        let step = format!("s{i}");
        start(&store, "late", &step)
            .await
            .expect("small writes fit");
        if let Err(e) = complete(&store, "late", &step, &big).await {
            error = Some(e);
            break;
        }
    }
    let error = error.expect("the page limit is reached");
    assert!(matches!(&error, StoreError::Full { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );

    assert_eq!(
        store.load_run(&"early".into()).await.expect("loads"),
        before
    );
    drop(store);
    let store = open(&path);
    assert_eq!(
        store.load_run(&"early".into()).await.expect("loads"),
        before,
        "a reopen without the limit finds the earlier data intact"
    );
    let late = store.load_run(&"late".into()).await.expect("loads");
    let last = late.and_then(|r| r.steps.last().cloned()).expect("steps");
    assert_eq!(
        (last.status, last.output),
        (StepStatus::Running, None),
        "the refused output left no trace"
    );
}

#[tokio::test]
async fn a_database_locked_past_the_busy_timeout_is_an_error() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(
        &path,
        SqliteOptions::default().busy_timeout(Duration::from_millis(100)),
    )
    .expect("opens");
    create(&store, "r", "W").await.expect("created");

    let other = Connection::open(&path).expect("opens");
    other.execute_batch("BEGIN EXCLUSIVE").expect("locks");
    let began = Instant::now();
    let error = start(&store, "r", "a").await.expect_err("locked");
    assert!(matches!(&error, StoreError::Busy { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert!(began.elapsed() >= Duration::from_millis(90), "it waited");
    // Reads are not blocked by a writer in WAL mode.
    assert!(store.load_run(&"r".into()).await.expect("loads").is_some());

    other.execute_batch("COMMIT").expect("unlocks");
    start(&store, "r", "a")
        .await
        .expect("the store works again");
    let run = store.load_run(&"r".into()).await.expect("loads");
    assert_eq!(run.map(|r| r.steps.len()), Some(1));
}

/// A value whose serialization always fails.
#[derive(Debug, Deserialize)]
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses to be saved"))
    }
}

#[tokio::test]
async fn an_output_that_does_not_serialize_stops_the_run_with_a_codec_error() {
    let (_dir, path) = temp_db();
    let engine = Engine::open(&path).expect("opens");
    let mut b = Builder::<()>::new("Codec");
    let bad = b.step("bad", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(Unserializable)
    });
    b.step("after", StepOptions::new(), (bad,), |_, (_,)| async {
        Ok::<_, StepError>(())
    });
    let error = engine
        .start(&b.build(), "r", ())
        .await
        .expect("starts")
        .wait()
        .await
        .expect_err("the output cannot be stored");
    let RunError::Store { source, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        matches!(source, StoreError::Codec { run_id, step, message }
            if run_id.as_str() == "r" && step == "bad" && message.contains("refuses to be saved")),
        "{source:?}"
    );
    let run = engine
        .store()
        .load_run(&"r".into())
        .await
        .expect("loads")
        .expect("stored");
    assert_eq!(run.steps.len(), 1, "`after` never started");
    assert_eq!(
        (run.steps[0].status, run.steps[0].output.as_deref()),
        (StepStatus::Running, None),
        "nothing of the output was written"
    );
    assert_eq!(
        events(&path, "r"),
        [
            event("run_created", None, None),
            event("step_started", Some("bad"), Some(1))
        ]
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rows {
    day: u32,
    values: Vec<i64>,
}

#[tokio::test]
async fn a_workflow_runs_end_to_end_on_a_file() {
    let (_dir, path) = temp_db();
    let engine = Engine::open(&path).expect("opens");
    let mut b = Builder::<u32>::new("Etl");
    let input = b.input();
    let extract = b.step(
        "extract",
        StepOptions::new(),
        (input,),
        |_, (day,)| async move {
            Ok::<_, StepError>(Rows {
                day: *day,
                values: vec![3, -1, 4],
            })
        },
    );
    let retry = RetryPolicy {
        initial_interval: Duration::from_millis(1),
        backoff_coefficient: 1.0,
        maximum_interval: None,
        maximum_attempts: 3,
        jitter: 0.0,
    };
    let clean = b.step(
        "clean",
        StepOptions::new().retry(retry),
        (extract,),
        |ctx, (rows,)| async move {
            if ctx.attempt() < 2 {
                return Err(StepError::new("flaky"));
            }
            Ok(rows
                .values
                .iter()
                .copied()
                .filter(|v| *v >= 0)
                .collect::<Vec<_>>())
        },
    );
    let load = b.step(
        "load",
        StepOptions::new(),
        (clean,),
        |_, (values,)| async move { Ok::<_, StepError>(format!("{} rows", values.len())) },
    );
    let def = b.build_with_output(load);

    let report = engine
        .start(&def, "etl-21", 21)
        .await
        .expect("starts")
        .wait()
        .await
        .expect("completes");
    assert_eq!(*report.output, "2 rows");

    let run = engine
        .store()
        .load_run(&"etl-21".into())
        .await
        .expect("loads")
        .expect("stored");
    assert_eq!(run.status, StoredRunStatus::Completed);
    assert_eq!(run.input, "21");
    let graph = def.erased().graph().expect("valid");
    assert_eq!(run.graph_fingerprint, graph.fingerprint());
    let steps: Vec<_> = run
        .steps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.status,
                s.attempts,
                s.output.as_deref(),
                s.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (
                "extract",
                StepStatus::Completed,
                1,
                Some(r#"{"day":21,"values":[3,-1,4]}"#),
                None
            ),
            ("clean", StepStatus::Completed, 2, Some("[3,4]"), None),
            ("load", StepStatus::Completed, 1, Some("\"2 rows\""), None),
        ]
    );
    assert!(
        engine
            .store()
            .unfinished_runs()
            .await
            .expect("lists")
            .is_empty()
    );
    assert_eq!(
        events(&path, "etl-21"),
        [
            event("run_created", None, None),
            event("step_started", Some("extract"), Some(1)),
            event("step_completed", Some("extract"), Some(1)),
            event("step_started", Some("clean"), Some(1)),
            event("step_retrying", Some("clean"), Some(1)),
            event("step_started", Some("clean"), Some(2)),
            event("step_completed", Some("clean"), Some(2)),
            event("step_started", Some("load"), Some(1)),
            event("step_completed", Some("load"), Some(1)),
            event("run_completed", None, None),
        ]
    );
    let conn = Connection::open(&path).expect("opens");
    let (version, detail): (i64, String) = conn
        .query_row(
            "SELECT r.version, e.detail FROM runs r JOIN events e ON e.run_id = r.run_id \
             WHERE e.kind = 'step_retrying'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("reads");
    // Created at 1 and bumped by the run's end: a step's change rewrites the run's row only
    // to renew a lease more than half spent (`checkpoint_pages.rs`), and 30 s are far off.
    assert_eq!(version, 2, "created at 1, bumped by the run's end");
    let detail: serde_json::Value = serde_json::from_str(&detail).expect("JSON");
    assert_eq!(detail["error"], "flaky");
    assert_eq!(detail["delay_ms"], 1);
}

#[tokio::test]
async fn an_in_memory_store_runs_a_workflow() {
    let store = Arc::new(SqliteStore::in_memory().expect("opens"));
    let engine = Engine::builder().store(store.clone()).build();
    let mut b = Builder::<u32>::new("Double");
    let input = b.input();
    let out = b.step(
        "double",
        StepOptions::new(),
        (input,),
        |_, (x,)| async move { Ok::<_, StepError>(*x * 2) },
    );
    let report = engine
        .start(&b.build_with_output(out), "r", 21)
        .await
        .expect("starts")
        .wait()
        .await
        .expect("completes");
    assert_eq!(*report.output, 42);
    let run = store.load_run(&"r".into()).await.expect("loads");
    assert_eq!(
        run.map(|r| r.steps[0].output.clone()),
        Some(Some("42".into()))
    );
    assert_eq!(store.path(), ":memory:");
}

/// `Engine::open_in_memory` and its old name, kept deprecated for a release, both make an
/// engine on a SQLite database in memory: it keeps the outputs a saga compensates from.
#[tokio::test]
async fn open_in_memory_and_its_deprecated_alias_record_outputs() {
    #[allow(deprecated)]
    let old = Engine::in_memory().expect("opens");
    for engine in [Engine::open_in_memory().expect("opens"), old] {
        let mut b = Builder::<u32>::new("Double");
        let input = b.input();
        let out = b.step(
            "double",
            StepOptions::new(),
            (input,),
            |_, (x,)| async move { Ok::<_, StepError>(*x * 2) },
        );
        let handle = engine.start(&b.build_with_output(out), "r", 21).await;
        assert_eq!(
            *handle
                .expect("starts")
                .wait()
                .await
                .expect("completes")
                .output,
            42
        );
        let run = engine.store().load_run(&"r".into()).await.expect("loads");
        assert_eq!(
            run.map(|r| r.steps[0].output.clone()),
            Some(Some("42".into()))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkpoints_share_commits_and_a_bad_one_fails_alone() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    for i in 0..100 {
        create(&store, &format!("r{i}"), "W")
            .await
            .expect("created");
    }
    let commits_before = store.commits();
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (store, barrier) = (store.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            // Every tenth task writes to a run that does not exist: it alone must fail.
            let id = if i % 10 == 0 {
                format!("ghost{i}")
            } else {
                format!("r{i}")
            };
            let mut results = Vec::new();
            for s in 0..5 {
                let step = format!("s{s}");
                results.push(start(&store, &id, &step).await);
                results.push(complete(&store, &id, &step, &format!("{i}-{s}")).await);
            }
            (i, results)
        }));
    }
    let mut recorded = 0_u64;
    for task in tasks {
        let (i, results) = task.await.expect("the task finishes");
        for result in results {
            if i % 10 == 0 {
                assert!(
                    result.is_err(),
                    "task {i} writes to a run that does not exist"
                );
            } else {
                result.expect("acknowledged");
                recorded += 1;
            }
        }
    }
    assert_eq!(recorded, 900);
    let commits = store.commits() - commits_before;
    assert!(
        commits < recorded,
        "{recorded} checkpoints took {commits} commits: group commit shares them"
    );
    drop(store);

    // Every acknowledged checkpoint is in the file, as one event per change.
    let conn = Connection::open(&path).expect("opens");
    let changes: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE kind <> 'run_created'",
            [],
            |r| r.get(0),
        )
        .expect("reads");
    assert_eq!(changes, 900);
    let output: String = conn
        .query_row(
            "SELECT output FROM steps WHERE run_id = 'r42' AND name = 's3'",
            [],
            |r| r.get(0),
        )
        .expect("reads");
    assert_eq!(output, "\"42-3\"");
}

/// Group commit's fallback: a lock held by another connection makes the writes queue up into
/// one batch; one of them cannot fit, SQLite rolls the whole transaction back, and the writer
/// commits the others one by one, so only the oversized write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_does_not_fit_fails_alone_among_concurrent_ones() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    create(&store, "r", "W").await.expect("created");
    for i in 0..21 {
        start(&store, "r", &format!("s{i}"))
            .await
            .expect("recorded");
    }
    drop(store);
    let pages: u32 = Connection::open(&path)
        .expect("opens")
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("reads");
    let store = SqliteStore::open(&path, SqliteOptions::default().max_page_count(pages + 32))
        .expect("reopens");
    // A store writes only the runs it holds the lease on; the first store gave it up.
    store.acquire(&"r".into()).await.expect("the lease");
    let lock = Connection::open(&path).expect("opens");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("locks");
    let mut tasks = Vec::new();
    for i in 0..21 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let step = format!("s{i}");
            // Task 0's output is far larger than the database may grow. Tasks 1 to 10 come
            // first (the writer takes them into a batch that waits for the lock); task 0 and
            // tasks 11 to 20 come later, and queue up into the next batch together.
            let delay = match i {
                0 => 50,
                1..=10 => 0,
                _ => 100,
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let output = if i == 0 {
                "x".repeat(1 << 20)
            } else {
                format!("small {i}")
            };
            (i, complete(&store, "r", &step, &output).await)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.execute_batch("COMMIT").expect("unlocks");
    for task in tasks {
        let (i, result) = task.await.expect("the task finishes");
        if i == 0 {
            assert!(matches!(result, Err(StoreError::Full { .. })), "{result:?}");
        } else {
            result.expect("a small output fits");
        }
    }
    let run = store
        .load_run(&"r".into())
        .await
        .expect("loads")
        .expect("stored");
    let completed = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
        .count();
    assert_eq!(completed, 20);
    let s0 = run
        .steps
        .iter()
        .find(|s| s.name == "s0")
        .expect("s0 started");
    assert_eq!(
        (s0.status, s0.output.as_deref()),
        (StepStatus::Running, None)
    );
}

#[tokio::test]
async fn a_version_1_database_is_migrated_with_its_data_intact() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    create(&store, "old-run", "Wf").await.expect("created");
    drop(store);
    // Make the file what version 1 left: no signals table, no lease columns, user_version 1.
    let conn = Connection::open(&path).expect("opens");
    conn.execute_batch(&format!(
        "{REWIND_V3} DROP TABLE signals; PRAGMA user_version = 1;"
    ))
    .expect("rewinds");
    drop(conn);

    let store = open(&path);
    let conn = Connection::open(&path).expect("opens");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(version, SCHEMA_VERSION);
    let signals: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'signals'",
            [],
            |r| r.get(0),
        )
        .expect("reads");
    assert_eq!(signals, 1, "migration 2 created the signals table");
    let stored = store
        .load_run(&RunId::from("old-run"))
        .await
        .expect("loads")
        .expect("the run is still there");
    assert_eq!(stored.workflow, "Wf");
}
