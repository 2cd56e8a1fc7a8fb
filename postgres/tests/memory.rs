//! A durable engine on PostgreSQL holds no run it has finished, as on SQLite
//! (`sqlite/tests/memory.rs`): it forgets a run once it ends, lets its lease go, and reads the
//! run back from the store when its id is started again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Builder, Definition, Engine, StepError};

/// `one -> two`, adding 1 and then 2, counting the calls of `one`.
fn counted(calls: &Arc<AtomicUsize>) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Counted");
    let input = b.input();
    let calls = Arc::clone(calls);
    let one = b.step("one", StepOptions::new(), (input,), move |_, (x,)| {
        calls.fetch_add(1, Ordering::SeqCst);
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    let two = b.step("two", StepOptions::new(), (one,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x + 2) }
    });
    b.build_with_output(two)
}

async fn start_and_wait(engine: &Engine, def: &Definition<u64, u64>, id: &str, x: u64) -> u64 {
    *engine
        .start(def, id, x)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap()
        .output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_engine_holds_no_finished_run_and_finds_it_in_the_store() {
    let db = fresh_db!(compact);
    let store = db.store().await;
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    for i in 0..500 {
        assert_eq!(
            start_and_wait(&engine, &def, &format!("r{i}"), i).await,
            i + 3
        );
        assert_eq!(engine.runs_in_memory(), 0, "run {i} is still held");
        assert_eq!(store.leases_held(), 0, "run {i}'s lease is still held");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 500);
    // Starting a finished id hands that run back, read from the store: nothing runs again.
    assert_eq!(start_and_wait(&engine, &def, "r7", 1_000).await, 10);
    assert_eq!(calls.load(Ordering::SeqCst), 500);
    assert_eq!(engine.runs_in_memory(), 0);
    // A run still going is held, and found by its id.
    let mut b = Builder::<u64>::new("Slow");
    let input = b.input();
    let out = b.step("wait", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, StepError>(x)
        }
    });
    let slow = b.build_with_output(out);
    let first = engine.start(&slow, "slow", 5).await.unwrap();
    assert_eq!((engine.runs_in_memory(), store.leases_held()), (1, 1));
    let second = engine.start(&slow, "slow", 6).await.unwrap();
    assert_eq!(*first.wait().await.unwrap().output, 5);
    assert_eq!(*second.wait().await.unwrap().output, 5);
    assert_eq!((engine.runs_in_memory(), store.leases_held()), (0, 0));
}
