//! An engine's memory does not grow with the runs it has finished: an engine whose store keeps
//! no runs keeps the last finished ones, up to a count and an age (a durable engine forgets a
//! run once it ends: `sqlite/tests/memory.rs`). And the
//! engine takes part in tokio's cooperative scheduling: a loop of runs whose steps never wait
//! leaves the runtime's timers and other tasks on time.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sagaflow_core::conformance::resume::{counted, start_and_wait};
use sagaflow_core::runtime::{DEFAULT_KEEP_FINISHED_RUNS, Engine, MemoryStore};

#[tokio::test]
async fn an_ephemeral_engine_keeps_no_more_finished_runs_than_its_default_bound() {
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    let engine = Engine::ephemeral();
    let runs = DEFAULT_KEEP_FINISHED_RUNS + 2_000;
    for i in 0..runs {
        start_and_wait(&engine, &def, &format!("r{i}"), 0).await;
        assert!(engine.runs_in_memory() <= DEFAULT_KEEP_FINISHED_RUNS);
    }
    assert_eq!(engine.runs_in_memory(), DEFAULT_KEEP_FINISHED_RUNS);
    assert_eq!(calls.load(Ordering::SeqCst), runs);
}

#[tokio::test]
async fn a_kept_run_is_handed_back_and_a_dropped_one_runs_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    let engine = Engine::builder().keep_finished_runs(3).build();
    for i in 0..5 {
        assert_eq!(
            start_and_wait(&engine, &def, &format!("r{i}"), i).await,
            i + 3
        );
    }
    assert_eq!(engine.runs_in_memory(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // `r4` is kept: the same run, its outcome and all, and `one` does not run again.
    assert_eq!(start_and_wait(&engine, &def, "r4", 100).await, 7);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // `r0` was dropped, the oldest: its id starts a new run, as the docs say.
    assert_eq!(start_and_wait(&engine, &def, "r0", 100).await, 103);
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert_eq!(engine.runs_in_memory(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_ephemeral_engine_drops_finished_runs_older_than_its_age() {
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    let engine = Engine::builder()
        .keep_finished_for(Duration::from_secs(60))
        .build();
    start_and_wait(&engine, &def, "old", 1).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    start_and_wait(&engine, &def, "younger", 1).await;
    assert_eq!(engine.runs_in_memory(), 2);
    tokio::time::advance(Duration::from_secs(31)).await;
    start_and_wait(&engine, &def, "new", 1).await;
    // `old` is 61 s old: dropped; `younger` (31 s) and `new` stay.
    assert_eq!(engine.runs_in_memory(), 2);
    assert_eq!(start_and_wait(&engine, &def, "younger", 50).await, 4);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_engine_on_a_memory_store_keeps_its_bound_too() {
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .store(Arc::clone(&store) as _)
        .keep_finished_runs(10)
        .build();
    for i in 0..100 {
        start_and_wait(&engine, &def, &format!("r{i}"), 0).await;
    }
    assert_eq!(engine.runs_in_memory(), 10);
    // The store lets go of what the engine drops: it holds the same ten runs.
    assert_eq!(store.len(), 10);
    assert!(store.changes(&"r99".into()).is_some());
    assert!(store.changes(&"r0".into()).is_none());
}

/// Two tasks start and wait for two-step runs whose steps never wait, in a loop, on a runtime
/// of two workers: both workers are busy with them. A third task's 200 ms timer must still
/// fire on time. Before the engine spent tokio's task budget, the loops never yielded and the
/// timer never fired at all.
#[test]
fn loops_of_runs_that_never_wait_leave_a_timer_on_time() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (fired, timer) = std::sync::mpsc::channel();
    runtime.block_on(async {
        let engine = Engine::ephemeral();
        let calls = Arc::new(AtomicUsize::new(0));
        let def = counted(&calls);
        let mut loops = Vec::new();
        for l in 0..2 {
            let (engine, def, stop) = (engine.clone(), def.clone(), Arc::clone(&stop));
            loops.push(tokio::spawn(async move {
                let mut i = 0_u64;
                // Bounded in time by the test's own deadline, below, whatever happens.
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("loop{l}-{i}");
                    start_and_wait(&engine, &def, &id, i).await;
                    i += 1;
                }
                i
            }));
        }
        let fired = fired.clone();
        tokio::spawn(async move {
            let begun = Instant::now();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = fired.send(begun.elapsed());
        });
        // Watched from outside the runtime: the workers may all be busy.
        let watcher = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let elapsed = timer.recv_timeout(Duration::from_secs(3));
                stop.store(true, Ordering::Relaxed);
                elapsed
            })
        };
        let mut total = 0;
        for handle in loops {
            total += handle.await.unwrap();
        }
        let elapsed = watcher.join().unwrap();
        let elapsed = elapsed.expect("the timer did not fire within 3 s while the loops ran");
        assert!(
            elapsed < Duration::from_millis(600),
            "the 200 ms timer fired after {elapsed:?}"
        );
        assert!(total > 100, "the loops ran {total} runs");
    });
}
