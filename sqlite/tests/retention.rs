//! An engine's automatic retention policy on a SQLite file: finished runs are pruned in the
//! background, and the loop stops when the engine drains. What a policy deletes, on every
//! store, is the conformance suite's (`retention_conformance!`).
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::retention::RetentionPolicy;
use sagaflow_core::runtime::{Builder, Definition, Engine, RunStore, StepError, Store};
use sagaflow_sqlite::{SqliteOptions, SqliteStore, Synchronous};

fn double() -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Double");
    let input = b.input();
    let out = b.step(
        "double",
        StepOptions::new(),
        (input,),
        |_, (x,)| async move { Ok::<_, StepError>(*x * 2) },
    );
    b.build_with_output(out)
}

fn open(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    let options = SqliteOptions::default().synchronous(Synchronous::Normal);
    Arc::new(SqliteStore::open(dir.path().join("retention.db"), options).unwrap())
}

async fn run_all(engine: &Engine, ids: &[&str]) {
    let def = double();
    for id in ids {
        let report = engine
            .start(&def, *id, 21)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, 42);
    }
}

async fn stored(store: &SqliteStore, ids: &[&str]) -> usize {
    let mut found = 0;
    for id in ids {
        found += usize::from(store.load_run(&(*id).into()).await.unwrap().is_some());
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_prunes_its_finished_runs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let policy = RetentionPolicy::new()
        .keep(2)
        .batch(2)
        .every(Duration::from_millis(20));
    let engine = Engine::builder()
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .retention(policy)
        .build();
    let ids = ["r1", "r2", "r3", "r4", "r5"];
    run_all(&engine, &ids).await;
    let began = Instant::now();
    while stored(&store, &ids).await > 2 {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the policy never pruned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stored(&store, &["r4", "r5"]).await,
        2,
        "the newest two are kept"
    );
    // A pass by hand finds nothing more.
    let report = engine.prune_now().await.unwrap().unwrap();
    assert_eq!(report.deleted.runs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_engine_prunes_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let engine = Engine::builder()
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .retention(RetentionPolicy::new().every(Duration::from_millis(10)))
        .build();
    engine.shutdown(Duration::from_secs(1)).await;
    // Another engine on the store, without a policy, finishes runs.
    let other = Engine::builder()
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .build();
    let ids = ["a", "b", "c"];
    run_all(&other, &ids).await;
    // Many periods of the drained engine's loop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stored(&store, &ids).await, 3, "the drained engine pruned");
    assert!(
        Engine::builder().build().prune_now().await.is_none(),
        "an engine without a policy has no pass"
    );
}
