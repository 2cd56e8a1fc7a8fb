//! `Engine::shutdown` on the engine alone, on tokio's paused clock: what ends in the grace
//! period ends, what is still running at its end is cut, waits that would outlast the drain
//! end at once, and a draining engine starts nothing. (Two replicas on one store, and the
//! hand-over of the leases, are in the conformance suite: `conformance::replicas`.)

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::runtime::store::replicas::ServedQueue;
use sagaflow_core::runtime::{
    Builder, Definition, Engine, EngineError, FreeRun, KnownGraph, Lease, LeaseStore, MemoryStore,
    RunError, RunId, StepError, Store, StoreError,
};
use sagaflow_core::{RetryPolicy, StepOptions};
use tokio::sync::Notify;
use tokio::time::Instant;

/// `first` sleeps `first_takes`, then `second` counts itself.
fn two_steps(first_takes: Duration, second_ran: &Arc<AtomicU32>) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Two");
    let input = b.input();
    let first = b.step("first", StepOptions::new(), (input,), move |_, (x,)| {
        let x = *x;
        async move {
            tokio::time::sleep(first_takes).await;
            Ok::<_, StepError>(x + 1)
        }
    });
    let ran = Arc::clone(second_ran);
    let second = b.step("second", StepOptions::new(), (first,), move |_, (x,)| {
        ran.fetch_add(1, Ordering::SeqCst);
        let x = *x;
        async move { Ok::<_, StepError>(x * 2) }
    });
    b.build_with_output(second)
}

#[tokio::test(start_paused = true)]
async fn a_step_that_ends_in_the_grace_period_ends_and_the_next_is_not_started() {
    let second = Arc::new(AtomicU32::new(0));
    let def = two_steps(Duration::from_secs(5), &second);
    let engine = Engine::ephemeral();
    let run = engine.start(&def, "r", 1).await.unwrap();
    let began = Instant::now();
    let drained = engine.shutdown(Duration::from_secs(60)).await;
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(5),
        "waited for `first` alone"
    );
    assert_eq!(drained.released, ["r".into()]);
    assert!(drained.cut.is_empty() && drained.finished.is_empty());
    match run.wait().await {
        Err(RunError::Released { steps, .. }) => {
            assert_eq!(
                steps[0].status,
                sagaflow_core::runtime::StepStatus::Completed
            );
            assert_eq!(steps[1].status, sagaflow_core::runtime::StepStatus::NotRun);
        }
        other => panic!("not released: {:?}", other.map(|r| *r.output)),
    }
    assert_eq!(second.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_step_still_running_when_the_grace_period_ends_is_cut() {
    let second = Arc::new(AtomicU32::new(0));
    let def = two_steps(Duration::from_secs(3_600), &second);
    let engine = Engine::ephemeral();
    let run = engine.start(&def, "r", 1).await.unwrap();
    let began = Instant::now();
    let drained = engine.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(10),
        "the grace period, no more"
    );
    assert_eq!(drained.cut, ["r".into()]);
    assert_eq!(drained.released, ["r".into()]);
    match run.wait().await {
        Err(RunError::Released { steps, .. }) => {
            assert_eq!(steps[0].status, sagaflow_core::runtime::StepStatus::Running);
        }
        other => panic!("not released: {:?}", other.map(|r| *r.output)),
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_last_step_ends_in_the_grace_period_completes() {
    let mut b = Builder::<u32>::new("One");
    let input = b.input();
    let out = b.step("only", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, StepError>(x + 1)
        }
    });
    let def = b.build_with_output(out);
    let engine = Engine::ephemeral();
    let run = engine.start(&def, "r", 1).await.unwrap();
    let drained = engine.shutdown(Duration::from_secs(10)).await;
    assert_eq!(drained.finished, ["r".into()]);
    assert!(drained.released.is_empty());
    assert_eq!(*run.wait().await.unwrap().output, 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waiting_for_its_delay_does_not_hold_the_drain_up() {
    let attempts = Arc::new(AtomicU32::new(0));
    let mut b = Builder::<()>::new("Flaky");
    let counted = Arc::clone(&attempts);
    b.step(
        "flaky",
        StepOptions::new().retry(RetryPolicy {
            initial_interval: Duration::from_secs(3_600),
            jitter: 0.0,
            ..RetryPolicy::default()
        }),
        (),
        move |_, ()| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(StepError::new("not yet")) }
        },
    );
    let def = b.build();
    let engine = Engine::ephemeral();
    let run = engine.start(&def, "r", ()).await.unwrap();
    tokio::task::yield_now().await;
    let began = Instant::now();
    let drained = engine.shutdown(Duration::from_secs(60)).await;
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(drained.released, ["r".into()]);
    assert!(drained.cut.is_empty());
    assert!(matches!(run.wait().await, Err(RunError::Released { .. })));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "no attempt after the drain"
    );
}

#[tokio::test]
async fn a_draining_engine_starts_and_takes_up_nothing() {
    let second = Arc::new(AtomicU32::new(0));
    let def = two_steps(Duration::ZERO, &second);
    let engine = Engine::ephemeral();
    engine.register(&def).unwrap();
    assert!(!engine.is_shutting_down());
    let drained = engine.clone().shutdown(Duration::from_secs(1)).await;
    assert!(drained.finished.is_empty() && drained.released.is_empty());
    assert!(engine.is_shutting_down(), "clones share the drain");
    assert!(matches!(
        engine.start(&def, "r", 1).await,
        Err(EngineError::ShuttingDown { run_id }) if run_id.as_str() == "r"
    ));
    assert!(matches!(
        engine.resume(&def, "s").await,
        Err(EngineError::ShuttingDown { .. })
    ));
    // Again: nothing left, nothing changes.
    let again = engine.shutdown(Duration::from_secs(1)).await;
    assert!(again.finished.is_empty() && again.released.is_empty());
    assert_eq!(second.load(Ordering::SeqCst), 0);
}

/// A store that lists two made-up runs as free, once, after letting the test start a drain
/// while the listing is under way, and records what the engine gives up.
struct ListingStore {
    inner: MemoryStore,
    listing: Notify,
    go_on: Notify,
    listed: AtomicBool,
    given_up: Mutex<Vec<RunId>>,
}

#[async_trait::async_trait]
impl LeaseStore for ListingStore {
    async fn acquire(&self, run_id: &RunId) -> Result<Lease, StoreError> {
        self.inner.acquire(run_id).await
    }
    fn release(&self, run_id: &RunId) {
        self.inner.release(run_id);
    }
    async fn give_up(&self, run_ids: &[RunId]) -> Result<(), StoreError> {
        self.given_up.lock().unwrap().extend_from_slice(run_ids);
        self.inner.give_up(run_ids).await
    }
    async fn free_runs(
        &self,
        known: &[KnownGraph],
        _limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        if self.listed.swap(true, Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        self.listing.notify_one();
        self.go_on.notified().await;
        Ok(["left-1", "left-2"]
            .into_iter()
            .map(|id| FreeRun {
                run_id: id.into(),
                workflow: known[0].workflow.clone(),
                graph_fingerprint: known[0].fingerprint.unwrap_or(0),
            })
            .collect())
    }
    async fn heartbeat(
        &self,
        known: &[KnownGraph],
        queues: &[ServedQueue],
    ) -> Result<(), StoreError> {
        self.inner.heartbeat(known, queues).await
    }
    fn holds(&self, run_id: &RunId) -> bool {
        self.inner.holds(run_id)
    }
}
sagaflow_core::forward_store!(ListingStore => inner: RunStore, SignalStore, EventLog, Retention, QueueStore);

/// Runs listed as free while the engine began to drain are not taken up, and are given up
/// at once: a store that leased them as it listed them (PostgreSQL's claim) frees them for
/// another engine now, not once the lease runs out.
#[tokio::test]
async fn runs_listed_as_the_drain_begins_are_given_up_not_taken() {
    let store = Arc::new(ListingStore {
        inner: MemoryStore::new(),
        listing: Notify::new(),
        go_on: Notify::new(),
        listed: AtomicBool::new(false),
        given_up: Mutex::new(Vec::new()),
    });
    let engine = Engine::builder()
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .takeover_every(Duration::from_secs(3_600))
        .build();
    let second = Arc::new(AtomicU32::new(0));
    engine
        .register(&two_steps(Duration::ZERO, &second))
        .unwrap();
    // The loop's first poll lists at once; the drain begins while it does.
    store.listing.notified().await;
    let draining = tokio::spawn({
        let engine = engine.clone();
        async move { engine.shutdown(Duration::from_secs(1)).await }
    });
    while !engine.is_shutting_down() {
        tokio::task::yield_now().await;
    }
    store.go_on.notify_one();
    let drained = draining.await.unwrap();
    assert!(drained.released.is_empty(), "{drained:?}");
    let began = std::time::Instant::now();
    loop {
        let mut given_up = store.given_up.lock().unwrap().clone();
        given_up.sort();
        if !given_up.is_empty() {
            assert_eq!(given_up, [RunId::from("left-1"), RunId::from("left-2")]);
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the runs listed were not given up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(second.load(Ordering::SeqCst), 0, "nothing was taken up");
}
