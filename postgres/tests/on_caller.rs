//! A write that comes alone, while no writer is busy, is committed by its caller on a writer's
//! connection (`PgOptions::commit_on_caller`), without the hand-off to the writer's task and
//! back; writes that come together still go to the writers and share transactions; and a
//! caller that stops waiting leaves its commit to finish, answered and counted, on a task of
//! its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::conformance::runs::{create, start};
use sagaflow_core::runtime::Engine;
use sagaflow_postgres::PgStore;

/// Runs a 10-step chain to its end; gives the writes it took and how many of them their
/// callers committed.
async fn sequential_run(store: &PgStore, id: &str) -> (u64, u64) {
    let (writes, on_caller) = (store.writes(), store.writes_on_caller());
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let report = engine
        .start(&support::chain("OnCaller", 10), id, 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(*report.output, 10);
    (
        store.writes() - writes,
        store.writes_on_caller() - on_caller,
    )
}

/// Creates 100 runs at once; gives the commits they took and how many of them their callers
/// committed.
async fn burst(store: &PgStore, prefix: &str) -> (u64, u64) {
    let (commits, on_caller) = (store.commits(), store.writes_on_caller());
    let ids: Vec<String> = (0..100).map(|i| format!("{prefix}{i:03}")).collect();
    let created = futures_util::future::join_all(ids.iter().map(|id| create(store, id, "W"))).await;
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    (
        store.commits() - commits,
        store.writes_on_caller() - on_caller,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_alone_is_committed_by_its_caller_and_writes_together_by_the_writers() {
    let db = fresh_db!();
    let store = db.store().await;

    // A run alone: every write of it (its creation, each checkpoint, its end) committed by
    // the run's own task.
    let (writes, on_caller) = sequential_run(&store, "alone").await;
    assert!(writes >= 10, "{writes} writes");
    assert_eq!(on_caller, writes, "every write of a run alone");

    // 100 creations at once: the first finds no writer busy and commits itself; the rest find
    // it busy and are gathered by the writers into shared transactions.
    let (commits, on_caller) = burst(&store, "a").await;
    assert_eq!(on_caller, 1, "only the first of the burst");
    assert!(commits <= 10, "100 creations took {commits} commits");
    // After a batch of several, the next burst goes to the writers from its first write.
    let (commits, on_caller) = burst(&store, "b").await;
    assert_eq!(on_caller, 0, "a burst after a shared commit");
    assert!(commits <= 10, "100 creations took {commits} commits");

    // Turned off, every write goes through the writers' tasks.
    let handed = PgStore::connect(&db.url, db.options().commit_on_caller(false))
        .await
        .unwrap();
    let (writes, on_caller) = sequential_run(&handed, "handed").await;
    assert!(writes >= 10, "{writes} writes");
    assert_eq!(on_caller, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_stops_waiting_is_committed_and_counted_all_the_same() {
    let db = fresh_db!();
    let store = db.store().await;
    create(&store, "r", "W").await.unwrap();
    let (writes, commits, on_caller) = (store.writes(), store.commits(), store.writes_on_caller());
    {
        let mut write = std::pin::pin!(start(&store, "r", "a"));
        // One poll: the caller takes the free writer and sends its statement, then waits for
        // the server's answer, which it never reads: the future is dropped.
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "answered within one poll: {polled:?}");
    }
    assert_eq!(
        store.writes_on_caller() - on_caller,
        1,
        "taken by its caller"
    );
    // The commit went on without it: answered (the store counts a write once its answer is
    // read) on a task of its own.
    let began = std::time::Instant::now();
    while store.writes() == writes {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the dropped write was never finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(store.writes() - writes, 1);
    assert_eq!(store.commits() - commits, 1);
    let client = support::client(&db.url).await;
    let started: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{}\".events WHERE run_id = 'r' AND kind = 'step_started'",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(started, 1, "logged once");
    // And the writer it held takes the next write as before.
    start(&store, "r", "b").await.unwrap();
    assert_eq!(store.writes() - writes, 2);
}
