//! The writer's two paths: a write commits on the caller's thread when the connection is free,
//! and goes to the writer thread, which waits for the lock, when another connection holds the
//! database. The caller's thread is never blocked waiting for that lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rusqlite::Connection;
use sagaflow_core::conformance::runs::create;
use sagaflow_core::runtime::{Change, Codec, MachineStore, RunId, RunStore};
use sagaflow_sqlite::{Advanced, MachineStep, SqliteOptions, SqliteStore, Synchronous};

fn step(expected_version: u64, to: &str) -> MachineStep {
    MachineStep {
        expected_version,
        state: format!("\"{to}\""),
        from: "?".to_owned(),
        event: "Go".to_owned(),
        to: to.to_owned(),
    }
}

/// On a runtime with one thread, a write that meets another connection's lock must not block
/// that thread: the test's own task goes on while the write waits, and the write commits once
/// the lock is let go, long before the busy timeout.
#[tokio::test(flavor = "current_thread")]
async fn a_write_that_meets_another_connection_s_lock_waits_off_the_caller_s_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writer.db");
    let store = SqliteStore::open(
        &path,
        SqliteOptions::default().busy_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    store.insert_machine("m", "M", "\"A\"").await.unwrap();
    // Free: committed at once, one commit for one write.
    let commits = store.commits();
    let first = store.advance_machine("m", step(0, "B")).await.unwrap();
    assert!(
        matches!(first, Advanced::Applied { version: 1, .. }),
        "{first:?}"
    );
    assert_eq!(store.commits(), commits + 1);

    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let writing = tokio::spawn({
        let store = store.clone();
        async move { store.advance_machine("m", step(1, "C")).await }
    });
    // The spawned write runs on this very thread at the first yield; had it waited for the
    // lock there, this task would resume only after the 30 s busy timeout.
    let began = std::time::Instant::now();
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "the thread was blocked for {:?}",
        began.elapsed()
    );
    assert!(!writing.is_finished(), "the write waits for the lock");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!writing.is_finished(), "the write still waits for the lock");
    other.execute_batch("COMMIT").unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), writing)
        .await
        .expect("committed soon after the lock is let go")
        .unwrap()
        .unwrap();
    assert!(
        matches!(second, Advanced::Applied { version: 2, .. }),
        "{second:?}"
    );
    let stored = store.load_machine("m").await.unwrap().unwrap();
    assert_eq!((stored.version, stored.state.as_str()), (2, "\"C\""));
    // And the store commits on the caller's thread again.
    let commits = store.commits();
    store.advance_machine("m", step(2, "D")).await.unwrap();
    assert_eq!(store.commits(), commits + 1);
}

/// A version that moved between read and write is a conflict, and nothing is written, on the
/// caller's path as on the writer thread's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_transitions_of_one_machine_apply_once_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    store.insert_machine("m", "M", "\"A\"").await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut applied = 0;
            for version in 0..20 {
                if let Advanced::Applied { .. } = store
                    .advance_machine("m", step(version, &format!("S{i}-{version}")))
                    .await
                    .unwrap()
                {
                    applied += 1;
                }
            }
            applied
        });
    }
    let mut applied = 0;
    while let Some(result) = tasks.join_next().await {
        applied += result.unwrap();
    }
    assert_eq!(applied, 20, "each version was taken exactly once");
    let log = store.machine_log("m", 0, 100).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    let stored = store.load_machine("m").await.unwrap().unwrap();
    assert_eq!(stored.version, 20);
    assert_eq!(stored.state, format!("\"{}\"", log[19].to));
}

/// Where a write that finds the connection free commits: on the caller's thread by default;
/// with `commit_on_caller(false)`, on the writer thread, so that a tokio worker never blocks
/// on the disk. The same writes land either way, one commit each.
#[tokio::test(flavor = "current_thread")]
async fn with_commit_on_caller_off_every_write_commits_on_the_writer_thread() {
    for on_caller in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            dir.path().join("writer.db"),
            SqliteOptions::default()
                .synchronous(Synchronous::Normal)
                .commit_on_caller(on_caller),
        )
        .unwrap();
        store.insert_machine("m", "M", "\"S0\"").await.unwrap();
        let (commits, here) = (store.commits(), store.commits_on_caller());
        for v in 0..20 {
            let to = format!("S{}", v + 1);
            let advanced = store.advance_machine("m", step(v, &to)).await.unwrap();
            assert!(
                matches!(advanced, Advanced::Applied { version, .. } if version == v + 1),
                "{advanced:?}"
            );
        }
        let made = store.commits() - commits;
        let made_here = store.commits_on_caller() - here;
        assert_eq!(made, 20, "commit_on_caller({on_caller})");
        assert_eq!(made_here, if on_caller { 20 } else { 0 });
        let stored = store.load_machine("m").await.unwrap().unwrap();
        assert_eq!((stored.version, stored.state.as_str()), (20, "\"S20\""));
    }
}

/// Reads have a connection of their own: one that comes while a write waits for another
/// connection's lock is answered at once, with the last committed state, instead of queueing
/// behind that write until the lock goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_is_not_held_up_by_a_write_waiting_for_a_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writer.db");
    let store = SqliteStore::open(
        &path,
        SqliteOptions::default().busy_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    store.insert_machine("m", "M", "\"A\"").await.unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let writing = tokio::spawn({
        let store = store.clone();
        async move { store.advance_machine("m", step(0, "B")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!writing.is_finished(), "the write waits for the lock");
    let read = tokio::time::timeout(Duration::from_secs(10), store.load_machine("m"))
        .await
        .expect("the read is answered while the write waits")
        .unwrap()
        .unwrap();
    assert_eq!((read.version, read.state.as_str()), (0, "\"A\""));
    assert!(!writing.is_finished(), "the write still waits for the lock");
    other.execute_batch("COMMIT").unwrap();
    let written = tokio::time::timeout(Duration::from_secs(10), writing)
        .await
        .expect("committed soon after the lock is let go")
        .unwrap()
        .unwrap();
    assert!(
        matches!(written, Advanced::Applied { version: 1, .. }),
        "{written:?}"
    );
    // And the next read sees it.
    let read = store.load_machine("m").await.unwrap().unwrap();
    assert_eq!((read.version, read.state.as_str()), (1, "\"B\""));
}

/// Writes that share a commit are applied with no savepoint between them. One refused before
/// it changed anything (a run the store does not have) and one that fails having changed rows
/// (its step's completion logged, then the next start refused by a trigger the test adds)
/// are each undone alone: their callers hear why, nothing of theirs is in the log, and every
/// other write of the commit is there. On the log of schema 12, where the completion and
/// the start are two rows: the failing write has changed a row when it fails.
#[tokio::test(flavor = "current_thread")]
async fn a_write_that_fails_in_a_shared_commit_is_undone_alone() {
    undone_alone(false).await;
}

/// The same on a compact log, where the completion and the start are one row.
#[tokio::test(flavor = "current_thread")]
async fn a_write_that_fails_in_a_shared_commit_of_a_compact_log_is_undone_alone() {
    undone_alone(true).await;
}

async fn undone_alone(compact: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.db");
    let store = SqliteStore::open(
        &path,
        SqliteOptions::default()
            .busy_timeout(Duration::from_secs(30))
            .compact_log(compact),
    )
    .unwrap();
    for i in 0..=10 {
        create(&store, &format!("r{i}"), "W").await.unwrap();
    }
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON events \
             WHEN (NEW.step = 'poison' AND NEW.kind = 'step_started') \
                 OR NEW.next_step = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned start'); END;",
        )
        .unwrap();
    // Another connection holds the database: the writes queue up behind the first, which the
    // writer thread holds while it waits for the lock, and then share the next commit.
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let commits = store.commits();
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..12 {
        let store = store.clone();
        writes.spawn(async move {
            let (run, next) = match i {
                10 => ("ghost".to_owned(), "b"),
                11 => ("r10".to_owned(), "poison"),
                i => (format!("r{i}"), "b"),
            };
            let output = "1".to_owned();
            let done = Change::StepCompleted {
                step: "a",
                attempt: 1,
                output: &output,
                codec: Codec::of::<String>(),
            };
            let start = Change::StepStarted {
                step: next,
                attempt: 1,
            };
            let run = RunId::from(run.as_str());
            (i, store.record_pair(&run, &done, &start).await)
        });
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    other.execute_batch("COMMIT").unwrap();
    let mut answers = Vec::new();
    while let Some(answer) = writes.join_next().await {
        answers.push(answer.unwrap());
    }
    answers.sort_by_key(|(i, _)| *i);
    for (i, answer) in &answers {
        match i {
            10 => assert!(
                answer
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("no run `ghost`")),
                "{answer:?}"
            ),
            11 => assert!(
                answer
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("poisoned start")),
                "{answer:?}"
            ),
            _ => assert!(answer.is_ok(), "write {i}: {answer:?}"),
        }
    }
    assert!(
        store.commits() - commits <= 2,
        "{} commits: the writes did not share them",
        store.commits() - commits
    );
    // The rows, and the starts they log too on a compact log.
    let logged: Vec<(String, String, String)> = other
        .prepare(
            "SELECT run_id, seq, kind, step FROM events WHERE step IS NOT NULL \
             UNION ALL SELECT run_id, seq + 1, 'step_started', next_step FROM events \
             WHERE next_step IS NOT NULL ORDER BY 1, 2",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let rows: i64 = other
        .query_row(
            "SELECT count(*) FROM events WHERE step IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, if compact { 10 } else { 20 }, "rows of the log");
    let expected: Vec<(String, String, String)> = (0..10)
        .flat_map(|i| {
            [
                (format!("r{i}"), "step_completed".to_owned(), "a".to_owned()),
                (format!("r{i}"), "step_started".to_owned(), "b".to_owned()),
            ]
        })
        .collect();
    assert_eq!(
        logged, expected,
        "r10's completion went with its refused start"
    );
}

/// Writes that come in a burst go to the writer thread, which gathers them into one commit;
/// a write alone commits on its caller's thread. After a commit of several writes the next
/// write is handed over (the rest of its burst is likely on the way); after a commit of one,
/// the caller commits again.
#[tokio::test(flavor = "current_thread")]
async fn after_a_shared_commit_the_next_write_is_gathered_on_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burst.db");
    let store = SqliteStore::open(
        &path,
        SqliteOptions::default().busy_timeout(Duration::from_secs(30)),
    )
    .unwrap();
    for i in 0..5 {
        create(&store, &format!("r{i}"), "W").await.unwrap();
    }
    let start = |store: &SqliteStore, run: String, step: &'static str| {
        let store = store.clone();
        async move {
            let change = Change::StepStarted { step, attempt: 1 };
            store.record(&RunId::from(run.as_str()), &change).await
        }
    };
    // Alone: on the caller's thread.
    let on_caller = store.commits_on_caller();
    start(&store, "r0".to_owned(), "a").await.unwrap();
    assert_eq!(store.commits_on_caller(), on_caller + 1);
    // Five writes that share a commit (queued while another connection holds the file: those
    // that come after the writer thread began to wait for the lock join the first).
    let before_burst = store.commits();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..5 {
        writes.spawn(start(&store, format!("r{i}"), "b"));
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    other.execute_batch("COMMIT").unwrap();
    while let Some(done) = writes.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(
        store.commits(),
        before_burst + 1,
        "the burst shared one commit"
    );
    // The next write is gathered on the writer thread; it commits alone there, and the one
    // after it is the caller's again.
    let (commits, on_caller) = (store.commits(), store.commits_on_caller());
    start(&store, "r0".to_owned(), "c").await.unwrap();
    assert_eq!(
        (store.commits(), store.commits_on_caller()),
        (commits + 1, on_caller),
        "committed on the writer thread"
    );
    start(&store, "r0".to_owned(), "d").await.unwrap();
    assert_eq!(
        (store.commits(), store.commits_on_caller()),
        (commits + 2, on_caller + 1),
        "committed on the caller's thread"
    );
}
