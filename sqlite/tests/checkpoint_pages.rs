//! What a checkpoint writes. With `synchronous = NORMAL` a commit's cost is the pages it
//! appends to the WAL, so the pages per checkpoint are held to a bound here (the schema and
//! SQL decide them, deterministically); and the two changes that cut them are checked for
//! what they must keep: a step's write still renews a lease more than half spent, and the
//! `events` table of an older file keeps its numbers when migrated off `AUTOINCREMENT`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rusqlite::Connection;
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Change, Codec, Definition, Engine, EventKind, EventLog, NewRun, RunId, RunStore,
    StepError, Value,
};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous};

fn chain(n: usize) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new(format!("chain_{n}"));
    let mut last = b.input();
    for i in 0..n {
        last = b.step(
            format!("s{i}"),
            StepOptions::new(),
            (last,),
            |_, (x,)| async move { Ok::<u64, StepError>(*x + 1) },
        );
    }
    b.build_with_output(last)
}

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(db.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// A 40-step chain is 41 commits: the run's creation with its first step's start, one per
/// later step (its start, with the previous step's completion), and the last completion with
/// the run's end (42 before the creation carried the first start). Each appends the
/// pages it changed to the WAL: the events and their `events_by_run` entries (93 frames, 2.2 a
/// commit, on the log of schema 12). Before `steps` became a view of the events (schema 11)
/// it was 4 pages a commit (the `steps` row and its key as well); before the `runs` row was
/// left alone on a step's change and `events` lost `AUTOINCREMENT`, 7 (300 frames).
async fn sequential_checkpoints(compact: bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pages.db");
    let options = SqliteOptions::default()
        .synchronous(Synchronous::Normal)
        .compact_log(compact);
    let store = SqliteStore::open(&path, options).unwrap();
    let engine = Engine::builder()
        .store(std::sync::Arc::new(store.clone()))
        .build();
    let def = chain(40);
    // The first run grows the file's tables; the second is the steady state.
    engine
        .start(&def, "warm", 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let (before, commits) = (wal_len(&path), store.commits());
    let report = engine
        .start(&def, "r", 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(*report.output, 40);
    let commits = store.commits() - commits;
    assert_eq!(
        commits, 41,
        "the run's creation with the first start, one per later step, the last completion with the run's end"
    );
    // The shared commits keep the log's order: the creation, then the first start; the last
    // step's completion, then the end. Read as the events, whichever rows hold them.
    let events: Vec<(EventKind, Option<String>)> = store
        .events(Some(&RunId::from("r")), 0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.step.map(|s| s.to_string())))
        .collect();
    assert_eq!(
        events.len(),
        82,
        "created, 40 started, 40 completed, completed"
    );
    let (s0, s39) = (Some("s0".to_owned()), Some("s39".to_owned()));
    assert_eq!(
        events[..3],
        [
            (EventKind::RunCreated, None),
            (EventKind::StepStarted, s0.clone()),
            (EventKind::StepCompleted, s0),
        ]
    );
    assert_eq!(
        events[79..],
        [
            (EventKind::StepStarted, s39.clone()),
            (EventKind::StepCompleted, s39),
            (EventKind::RunCompleted, None),
        ]
    );
    let rows: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM events WHERE run_id = 'r'", [], |r| {
            r.get(0)
        })
        .unwrap();
    // The compact log: the creation and every completion but the last carry the next start.
    assert_eq!(rows, if compact { 42 } else { 82 }, "rows of the log");
    let page = 4096 + 24; // a WAL frame: its header and a default-sized page
    let frames = (wal_len(&path) - before) / page;
    assert!(
        frames <= 42 * 5 / 2,
        "{frames} WAL frames for {commits} commits: more than 2.5 pages a checkpoint"
    );
    frames
}

#[tokio::test]
async fn a_sequential_checkpoint_appends_about_two_pages_to_the_wal() {
    let plain = sequential_checkpoints(false).await;
    let compact = sequential_checkpoints(true).await;
    // Half the rows and index entries: the same pages or fewer (each commit still touches
    // the table's last page and the index's).
    assert!(
        compact <= plain,
        "{compact} WAL frames on the compact log against {plain} on the plain one"
    );
}

fn lease_expires(path: &Path, run: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT lease_expires FROM runs WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )
        .unwrap()
}

fn set_lease_expires(path: &Path, run: &str, at: i64) {
    Connection::open(path)
        .unwrap()
        .execute(
            "UPDATE runs SET lease_expires = ?2 WHERE run_id = ?1",
            rusqlite::params![run, at],
        )
        .unwrap();
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// A step's change leaves a fresh lease as it is, and renews one more than half spent, as
/// every write used to: a store whose heartbeats stall keeps the runs it is writing.
#[tokio::test]
async fn a_step_s_write_renews_a_lease_more_than_half_spent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lease.db");
    let lease = std::time::Duration::from_secs(60);
    let store = SqliteStore::open(&path, SqliteOptions::default().lease(lease)).unwrap();
    store.pause_heartbeats();
    let engine = Engine::builder()
        .store(std::sync::Arc::new(store.clone()))
        .build();
    let def = chain(1);
    engine
        .start(&def, "done", 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    // A run held by this store, written to by hand through the store's own API.
    let input = 0_u64;
    let run = RunId::from("r");
    let codec = Codec {
        encode: |v| {
            v.downcast_ref::<u64>()
                .map(u64::to_string)
                .ok_or_else(|| "not a u64".to_owned())
        },
        decode: |t| {
            t.parse::<u64>()
                .map(|v| std::sync::Arc::new(v) as Value)
                .map_err(|e| e.to_string())
        },
    };
    store
        .create_run(&NewRun {
            run_id: &run,
            workflow: "W",
            graph_fingerprint: 1,
            input: &input,
            input_codec: codec,
            graph: None,
            first_step: None,
        })
        .await
        .unwrap();
    let started = |step: &'static str| Change::StepStarted { step, attempt: 1 };

    // 40 s of 60 left: not renewed.
    let fresh = now_ms() + 40_000;
    set_lease_expires(&path, "r", fresh);
    store.record(&run, &started("a")).await.unwrap();
    assert_eq!(
        lease_expires(&path, "r"),
        fresh,
        "a fresh lease is left alone"
    );

    // 20 s of 60 left: renewed to a full lease from the write.
    set_lease_expires(&path, "r", now_ms() + 20_000);
    let before = now_ms();
    store.record(&run, &started("b")).await.unwrap();
    let renewed = lease_expires(&path, "r");
    assert!(
        renewed >= before + 60_000 && renewed <= now_ms() + 60_000,
        "renewed to {renewed}, written at {before}"
    );
}

/// A version-5 file, whose `events` table numbers with `AUTOINCREMENT`, keeps every event and
/// its number, and its next events are numbered after them; its steps keep their order and
/// their outputs, which schema 11 moves onto the completion events.
#[tokio::test]
async fn a_version_5_event_log_keeps_its_numbers_and_new_events_follow_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    let def = chain(3);
    {
        // A release of version 5 wrote no compact rows.
        let store = SqliteStore::open(&path, SqliteOptions::default().compact_log(false));
        let engine = Engine::builder()
            .store(std::sync::Arc::new(store.unwrap()))
            .build();
        engine
            .start(&def, "old", 0)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    // Make the file what version 5 left: `events` numbered by `AUTOINCREMENT`, `steps`
    // checked with an `IN` list, machines not indexed by type.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE steps_v5 (
             run_id      TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
             name        TEXT    NOT NULL,
             status      TEXT    NOT NULL
                 CHECK (status IN ('running', 'completed', 'failed', 'skipped')),
             attempts    INTEGER NOT NULL,
             output      TEXT,
             error       TEXT,
             started_at  INTEGER,
             finished_at INTEGER,
             PRIMARY KEY (run_id, name)
         ) STRICT;
         INSERT INTO steps_v5 (run_id, name, status, attempts, output, error, started_at,
                               finished_at)
             SELECT run_id, name, status, attempts, output, error, started_at, finished_at
             FROM steps ORDER BY first_seq;
         DROP VIEW steps;
         ALTER TABLE steps_v5 RENAME TO steps;
         CREATE TABLE events_v5 (
             seq     INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
             run_id  TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
             at      INTEGER NOT NULL,
             kind    TEXT    NOT NULL,
             step    TEXT,
             attempt INTEGER,
             detail  TEXT
         ) STRICT;
         INSERT INTO events_v5 SELECT seq, run_id, at, kind, step, attempt, detail FROM events;
         DROP TABLE events;
         ALTER TABLE events_v5 RENAME TO events;
         CREATE INDEX events_by_run ON events (run_id, seq);
         DROP INDEX machines_by_type;
         DROP TABLE replicas; DROP TABLE schema_compat;
         UPDATE runs SET graph = (SELECT g.graph FROM graphs g
             WHERE g.workflow = runs.workflow AND g.fingerprint = runs.graph_fingerprint);
         DROP TABLE graphs;
         DROP INDEX runs_started; DROP INDEX runs_keyed; \
    ALTER TABLE runs DROP COLUMN queue_key; ALTER TABLE runs DROP COLUMN started_at; \
    DROP INDEX runs_queued; ALTER TABLE runs DROP COLUMN queue;
         ALTER TABLE runs DROP COLUMN priority;
         PRAGMA user_version = 5;",
    )
    .unwrap();
    let old: Vec<(i64, String)> = conn
        .prepare("SELECT seq, kind FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(old.len(), 8, "created, 3 started, 3 completed, completed");
    drop(conn);

    let engine = Engine::open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
    // The steps read off the events keep the order they started in and their outputs, which
    // moved from the old table onto the completions (schema 11), and `steps` is a view.
    let steps: Vec<(String, String)> = conn
        .prepare("SELECT name, output FROM steps WHERE run_id = 'old' ORDER BY first_seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<(String, String)> = (0..3)
        .map(|i| (format!("s{i}"), (i + 1).to_string()))
        .collect();
    assert_eq!(steps, expected);
    let outputs: Vec<String> = conn
        .prepare(
            "SELECT output FROM events WHERE run_id = 'old' AND kind = 'step_completed' \
             ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(outputs, ["1", "2", "3"]);
    let kind: String = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'steps'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kind, "view");
    engine
        .start(&def, "new", 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let all: Vec<(i64, String, String)> = conn
        .prepare("SELECT seq, kind, run_id FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let kept: Vec<(i64, String)> = all
        .iter()
        .filter(|(_, _, run)| run == "old")
        .map(|(seq, kind, _)| (*seq, kind.clone()))
        .collect();
    assert_eq!(kept, old, "the old events and their numbers");
    let last_old = old.last().unwrap().0;
    // The store reads the migrated log back, and the new run's events (on a compact log,
    // some of them in one row) are numbered on from the old ones.
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let new: Vec<u64> = store
        .events(Some(&RunId::from("new")), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    let last_old = u64::try_from(last_old).unwrap();
    assert_eq!(
        new,
        (last_old + 1..=last_old + 8).collect::<Vec<_>>(),
        "new events follow the old ones"
    );
    assert!(
        all.iter().filter(|(_, _, run)| run == "new").count() < 8,
        "the new run's log is compact"
    );
    let events = store
        .events(Some(&RunId::from("old")), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        old.iter()
            .map(|(seq, _)| u64::try_from(*seq).unwrap())
            .collect::<Vec<_>>()
    );
}
