//! Sagas across replicas on one SQLite file: a replica that drains in the middle of a saga's
//! forward run, or of its compensation, hands the saga over, and another replica with the
//! saga registered takes it up by itself at once and finishes it; no step or compensation
//! that completed runs again.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Engine, StepContext, StepError};
use sagaflow_saga::{SagaBuilder, SagaDefinition, SagaStatus};
use sagaflow_sqlite::{SqliteOptions, SqliteStore};
use tokio::sync::watch;

/// What ran, and how often.
#[derive(Default)]
struct Ran {
    reserve: AtomicU32,
    charge: AtomicU32,
    unreserve: AtomicU32,
}

/// `reserve -> charge`, `reserve` undone by `unreserve`; `charge` fails for an input of 1.
/// `reserve` and `unreserve` wait for their gates to open.
fn saga(
    ran: &Arc<Ran>,
    reserve_gate: &Arc<watch::Sender<bool>>,
    undo_gate: &Arc<watch::Sender<bool>>,
) -> SagaDefinition<u32, u32> {
    let mut b = SagaBuilder::<u32>::new("Handover");
    let input = b.input();
    let (r, gate) = (Arc::clone(ran), Arc::clone(reserve_gate));
    let reserve = b.step("reserve", StepOptions::new(), (input,), move |_, (x,)| {
        r.reserve.fetch_add(1, Ordering::SeqCst);
        let (x, mut gate) = (*x, gate.subscribe());
        async move {
            let _ = gate.wait_for(|open| *open).await;
            Ok::<_, StepError>(x)
        }
    });
    let (r, gate) = (Arc::clone(ran), Arc::clone(undo_gate));
    b.undo(
        reserve,
        "unreserve",
        StepOptions::new(),
        (input,),
        move |_: StepContext, (_,), _: Arc<u32>| {
            r.unreserve.fetch_add(1, Ordering::SeqCst);
            let mut gate = gate.subscribe();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok::<(), StepError>(())
            }
        },
    );
    let r = Arc::clone(ran);
    let charge = b.step("charge", StepOptions::new(), (reserve,), move |_, (x,)| {
        r.charge.fetch_add(1, Ordering::SeqCst);
        let x = *x;
        async move {
            if x == 1 {
                return Err(StepError::permanent("card declined"));
            }
            Ok::<_, StepError>(x + 10)
        }
    });
    b.build_with_output(charge)
}

fn replica(dir: &std::path::Path, owner: &str) -> Engine {
    let options = SqliteOptions::default()
        .owner(owner)
        .lease(Duration::from_secs(30));
    let store = SqliteStore::open(dir.join("sagas.db"), options).unwrap();
    Engine::builder()
        .store(Arc::new(store))
        .takeover_every(Duration::from_millis(100))
        .build()
}

async fn until(what: &str, done: impl AsyncFn() -> bool) {
    let began = Instant::now();
    while !done().await {
        assert!(began.elapsed() < Duration::from_secs(10), "{what}: never");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Drains `a` while `gate`'s step runs, opening the gate once the drain began; returns when
/// the drain has given the leases up.
async fn drain_while(a: &Engine, gate: &watch::Sender<bool>) -> Instant {
    let shutdown = tokio::spawn({
        let a = a.clone();
        async move { a.shutdown(Duration::from_secs(20)).await }
    });
    until("A drains", async || a.is_shutting_down()).await;
    gate.send_replace(true);
    let drained = shutdown.await.unwrap();
    assert_eq!(drained.released.len(), 1, "{drained:?}");
    assert!(drained.error.is_none());
    Instant::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_drained_mid_forward_run_is_finished_by_another_replica() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Arc::new(Ran::default());
    let (gate, undo_gate) = (
        Arc::new(watch::Sender::new(false)),
        Arc::new(watch::Sender::new(true)),
    );
    let def = saga(&ran, &gate, &undo_gate);
    let (a, b) = (replica(dir.path(), "A"), replica(dir.path(), "B"));
    def.register(&a).unwrap();
    def.register(&b).unwrap();
    let _handle = def.start(&a, "order-1", 0).await.unwrap();
    until("`reserve` runs", async || {
        ran.reserve.load(Ordering::SeqCst) == 1
    })
    .await;
    let handed = drain_while(&a, &gate).await;
    until("B completes the saga", async || {
        matches!(def.status(&b, "order-1").await, Ok(SagaStatus::Completed))
    })
    .await;
    assert!(
        handed.elapsed() < Duration::from_secs(3),
        "{:?}",
        handed.elapsed()
    );
    assert_eq!(ran.reserve.load(Ordering::SeqCst), 1, "`reserve` ran once");
    assert_eq!(ran.charge.load(Ordering::SeqCst), 1);
    assert_eq!(ran.unreserve.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_drained_mid_compensation_is_compensated_by_another_replica() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Arc::new(Ran::default());
    let (gate, undo_gate) = (
        Arc::new(watch::Sender::new(true)),
        Arc::new(watch::Sender::new(false)),
    );
    let def = saga(&ran, &gate, &undo_gate);
    let (a, b) = (replica(dir.path(), "A"), replica(dir.path(), "B"));
    def.register(&a).unwrap();
    def.register(&b).unwrap();
    let _handle = def.start(&a, "order-2", 1).await.unwrap();
    until("`unreserve` runs", async || {
        ran.unreserve.load(Ordering::SeqCst) == 1
    })
    .await;
    let handed = drain_while(&a, &undo_gate).await;
    until("B compensates the saga", async || {
        matches!(
            def.status(&b, "order-2").await,
            Ok(SagaStatus::Compensated { .. })
        )
    })
    .await;
    assert!(
        handed.elapsed() < Duration::from_secs(3),
        "{:?}",
        handed.elapsed()
    );
    assert_eq!(ran.reserve.load(Ordering::SeqCst), 1);
    assert_eq!(ran.charge.load(Ordering::SeqCst), 1);
    assert_eq!(
        ran.unreserve.load(Ordering::SeqCst),
        1,
        "the compensation that ended in the grace period did not run again"
    );
}
