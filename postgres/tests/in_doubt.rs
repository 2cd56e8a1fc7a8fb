//! A batch whose connection is lost while the server still runs it, on PostgreSQL: a test
//! binary of its own, since it holds a transaction with an id open for a second and a half,
//! which holds back the event log's horizon for every store on the server (other tests'
//! readers would wait for it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::time::Duration;

use sagaflow_core::runtime::{Change, EventKind, RunId, RunStore};
use sagaflow_postgres::{PgOptions, PgStore};
use support::proxy::{Cut, Proxy};

/// The connection is lost while the server still runs the batch (it waits for a row lock
/// another session holds): the writer, on its new connection, asks whether the batch
/// committed before the server has finished it. The question must wait for the batch's end
/// (it locks the run's row, which the batch holds `FOR KEY SHARE` to its end); asked at once,
/// it would hear "not committed", send the batch again, and both would commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_still_running_when_its_connection_is_lost_is_kept_once() {
    let Some(url) = support::server().await else {
        return;
    };
    let (proxy, through) = Proxy::before(&url).await;
    let schema = support::fresh_schema();
    let store = PgStore::connect(&through, PgOptions::default().schema(&schema))
        .await
        .unwrap();
    let run = RunId::from("r");
    sagaflow_core::conformance::runs::create(&store, "r", "W")
        .await
        .unwrap();
    // Another session holds the run's row: the batch waits on the server for its fence. (A
    // table lock would not do: the writer's new connection prepares its statements, which
    // takes the tables' locks, and so would wait too, asking only once the batch is done.)
    let mut holder = support::client(&url).await;
    let held = holder.transaction().await.unwrap();
    held.execute(
        &format!("SELECT 1 FROM \"{schema}\".runs WHERE run_id = 'r' FOR UPDATE"),
        &[],
    )
    .await
    .unwrap();
    proxy.arm(Cut::AfterCommit);
    let writer = {
        let store = store.clone();
        let run = run.clone();
        tokio::spawn(async move {
            store
                .record(
                    &run,
                    &Change::StepStarted {
                        step: "a",
                        attempt: 1,
                    },
                )
                .await
        })
    };
    // The cut comes 300 ms after the batch was sent; the writer then reconnects and asks.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(proxy.cuts(), 1, "the proxy cut the writer's connection");
    held.commit().await.unwrap();
    let recorded = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("the write is answered")
        .unwrap();
    assert!(recorded.is_ok(), "{recorded:?}");
    assert_eq!(
        support::count_events(&store, "r", EventKind::StepStarted).await,
        1,
        "the batch committed once, not again on the new connection"
    );
    drop(store);
    let _ = holder
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}
