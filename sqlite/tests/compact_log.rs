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
use sagaflow_core::runtime::store::Retention;
use sagaflow_core::runtime::{
    Builder, Definition, Engine, Event, EventKind, EventLog, RunId, RunStore, StepError,
};
use sagaflow_core::{RetryPolicy, StepOptions};
use sagaflow_sqlite::inspect::Inspector;
use sagaflow_sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// A chain of four steps each adding one; `s1` fails its first attempt in every run (a retry
/// and a second start, which no row shares), and `s3` waits for `gate` in the run `held`.
fn chain(failed: Arc<AtomicU32>, gate: Arc<tokio::sync::Notify>) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Compact");
    let s0 = b.step("s0", StepOptions::new(), (b.input(),), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    let retry = RetryPolicy {
        initial_interval: Duration::from_millis(1),
        maximum_attempts: 2,
        ..RetryPolicy::default()
    };
    let s1 = b.step(
        "s1",
        StepOptions::new().retry(retry),
        (s0,),
        move |ctx, (x,)| {
            let x = *x;
            let first = ctx.attempt() == 1;
            let failed = Arc::clone(&failed);
            async move {
                if first {
                    failed.fetch_add(1, Ordering::SeqCst);
                    return Err(StepError::new("the first attempt fails"));
                }
                Ok(x + 1)
            }
        },
    );
    let s2 = b.step("s2", StepOptions::new(), (s1,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    let s3 = b.step("s3", StepOptions::new(), (s2,), move |ctx, (x,)| {
        let x = *x;
        let gate = Arc::clone(&gate);
        let held = ctx.run_id().as_str() == "held";
        async move {
            if held {
                gate.notified().await;
            }
            Ok::<_, StepError>(x + 1)
        }
    });
    b.build_with_output(s3)
}

/// What a run's log says, without the numbers and times.
fn shape(events: &[Event]) -> Vec<(EventKind, Option<String>, Option<u32>)> {
    events
        .iter()
        .map(|e| (e.kind, e.step.as_deref().map(str::to_owned), e.attempt))
        .collect()
}

/// A step as a reader gives it: name, status, attempts, error.
type StepRow = (String, String, u32, Option<String>);

/// An event as `inspect` reads it: seq, kind, step, attempt.
type InspectedEvent = (i64, String, Option<String>, Option<i64>);

/// What one file made of the same runs.
struct Seen {
    /// Each run's events, read back from the log in pages of 3.
    logs: Vec<Vec<Event>>,
    /// Each run's steps as the store folds them (`load_run`).
    loaded: Vec<Vec<StepRow>>,
    /// Each run's steps through `inspect` (the `steps` view).
    viewed: Vec<Vec<StepRow>>,
    /// The events the engine's live feed delivered, in order.
    fed: Vec<Event>,
    /// Each run's events through `inspect`.
    inspected: Vec<Vec<InspectedEvent>>,
    /// The rows of `events`, and those that log a next start too.
    rows: (i64, i64),
    /// The whole log, as read before the finished runs were deleted.
    every: Vec<Event>,
    /// How many events retention says it deleted with the finished runs.
    deleted: u64,
}

fn options(compact: bool) -> SqliteOptions {
    SqliteOptions::default()
        .synchronous(Synchronous::Normal)
        .compact_log(compact)
}

/// Runs one run alone (its checkpoints committed one by one), 30 at once (shared commits),
/// and one held at its last step, on the file at `path`; reads back what it wrote.
async fn run_on(path: &Path, compact: bool) -> Seen {
    let store = SqliteStore::open(path, options(compact)).unwrap();
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let (failed, gate) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(tokio::sync::Notify::new()),
    );
    let def = chain(Arc::clone(&failed), Arc::clone(&gate));
    engine.register(&def).unwrap();
    let mut feed = engine.subscribe();

    let alone = engine.start(&def, "alone", 0).await.unwrap();
    assert_eq!(*alone.wait().await.unwrap().output, 4);
    let many: Vec<_> = futures_util::future::join_all(
        (0..30_u64).map(|k| engine.start(&def, format!("many-{k:02}"), k)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    for (k, handle) in many.into_iter().enumerate() {
        assert_eq!(*handle.wait().await.unwrap().output, k as u64 + 4);
    }
    let held = engine.start(&def, "held", 0).await.unwrap();
    let inspector = Inspector::open(path).unwrap();
    // Until `s3` has started (its start logged with `s2`'s completion).
    let began = std::time::Instant::now();
    while !inspector
        .steps("held")
        .unwrap()
        .iter()
        .any(|s| s.name == "s3")
    {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "s3 never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(failed.load(Ordering::SeqCst), 32, "s1 failed once a run");

    let ids: Vec<String> = std::iter::once("alone".to_owned())
        .chain((0..30).map(|k| format!("many-{k:02}")))
        .chain(std::iter::once("held".to_owned()))
        .collect();
    let mut seen = Seen {
        logs: Vec::new(),
        loaded: Vec::new(),
        viewed: Vec::new(),
        fed: Vec::new(),
        inspected: Vec::new(),
        rows: (0, 0),
        every: Vec::new(),
        deleted: 0,
    };
    for id in &ids {
        // Pages of 3, so that a page ends between a row's two events.
        let (mut log, mut after) = (Vec::new(), 0);
        loop {
            let page = store
                .events(Some(&RunId::from(id.as_str())), after, 3)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            log.extend(page);
        }
        seen.logs.push(log);
        let run = store.load_run(&id.as_str().into()).await.unwrap().unwrap();
        seen.loaded.push(
            run.steps
                .into_iter()
                .map(|s| {
                    let status = format!("{:?}", s.status).to_lowercase();
                    (s.name, status, s.attempts, s.error)
                })
                .collect(),
        );
        seen.viewed.push(
            inspector
                .steps(id)
                .unwrap()
                .into_iter()
                .map(|s| (s.name, s.status, s.attempts, s.error))
                .collect(),
        );
        seen.inspected.push(
            inspector
                .events(std::slice::from_ref(id), 0)
                .unwrap()
                .into_iter()
                .map(|e| (e.seq, e.kind, e.step, e.attempt))
                .collect(),
        );
    }
    // The feed delivers every event of the log, the held run's included, in order.
    let every: usize = seen.logs.iter().map(Vec::len).sum();
    while seen.fed.len() < every {
        let event = tokio::time::timeout(Duration::from_secs(20), feed.next())
            .await
            .expect("the feed delivers every event")
            .expect("the feed is open")
            .expect("the feed reads the log");
        seen.fed.push(event);
    }
    {
        let conn = Connection::open(path).unwrap();
        seen.rows = conn
            .query_row("SELECT count(*), count(next_step) FROM events", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
    }
    gate.notify_one();
    assert_eq!(*held.wait().await.unwrap().output, 4);
    // The whole log in pages of 2, then the finished runs deleted (all of them).
    let mut after = 0;
    loop {
        let page = store.events(None, after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        seen.every.extend(page);
    }
    let ids: Vec<RunId> = ids.iter().map(|id| RunId::from(id.as_str())).collect();
    seen.deleted = store.delete_runs(&ids).await.unwrap().events;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_log_reads_as_the_log_it_stands_for() {
    let dir = tempfile::tempdir().unwrap();
    let plain = run_on(&dir.path().join("plain.db"), false).await;
    let compact = run_on(&dir.path().join("compact.db"), true).await;

    for (p, c) in plain.logs.iter().zip(&compact.logs) {
        assert_eq!(shape(p), shape(c));
        assert!(c.windows(2).all(|w| w[0].seq < w[1].seq), "{c:?}");
    }
    assert_eq!(plain.loaded, compact.loaded);
    assert_eq!(plain.viewed, compact.viewed);
    // The store's fold and the view agree.
    assert_eq!(compact.loaded, compact.viewed);
    // The held run, as read before its last step ended: `s3` running, its first attempt,
    // started in the row of `s2`'s completion.
    assert_eq!(
        compact.viewed.last().unwrap().last().unwrap(),
        &("s3".to_owned(), "running".to_owned(), 1, None)
    );
    // `inspect` reads the same events, numbers included, as the store.
    for (log, inspected) in compact.logs.iter().zip(&compact.inspected) {
        let expected: Vec<_> = log
            .iter()
            .map(|e| {
                (
                    e.seq.cast_signed(),
                    e.kind.as_str().to_owned(),
                    e.step.as_deref().map(str::to_owned),
                    e.attempt.map(i64::from),
                )
            })
            .collect();
        assert_eq!(inspected, &expected);
    }
    // The feed: every event of the log once, in the log's order.
    let mut logged: Vec<(u64, &str)> = compact
        .logs
        .iter()
        .flatten()
        .map(|e| (e.seq, e.kind.as_str()))
        .collect();
    logged.sort_unstable();
    let fed: Vec<(u64, &str)> = compact
        .fed
        .iter()
        .map(|e| (e.seq, e.kind.as_str()))
        .collect();
    assert_eq!(fed, logged);
    assert_eq!(plain.fed.len(), fed.len());
    // The whole log is gapless, numbered 1, 2, 3, ..., in either form.
    for seen in [&plain, &compact] {
        let seqs: Vec<u64> = seen.every.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        // Retention counts events, not rows.
        assert_eq!(seen.deleted, seen.every.len() as u64);
    }
    assert_eq!(plain.every.len(), compact.every.len());

    // Every step's completion that another's first start followed shares its row, and so
    // does the run's creation with its first step's start: four a run (creation → s0, s0 →
    // s1, s1 → s2, s2 → s3; s1's second start follows a retry).
    assert_eq!(plain.rows.1, 0);
    assert_eq!(compact.rows.1, 4 * 32);
    assert_eq!(compact.rows.0, plain.rows.0 - 4 * 32);
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
