//! Concurrency corners: dependents released together, a step running in another step's task,
//! a run cancelled or joined while the store is still creating it, and many runs at once on
//! a multi-threaded runtime.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{changes, engine_with_store, run};
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Change, Created, Engine, Handle, MemoryStore, NewRun, RecordedChange, RunError, RunId,
    StepError, StepStatus, StoreError,
};
use tokio::sync::{Barrier, Notify};

#[tokio::test(start_paused = true)]
async fn dependents_released_together_run_at_the_same_time() {
    let barrier = Arc::new(Barrier::new(2));
    let mut b = Builder::<()>::new("FanOut");
    let root = b.step("root", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(1_u8)
    });
    for name in ["left", "right"] {
        let barrier = Arc::clone(&barrier);
        b.step(name, StepOptions::new(), (root,), move |_, (_,)| {
            let barrier = Arc::clone(&barrier);
            async move {
                tokio::time::timeout(Duration::from_secs(5), barrier.wait())
                    .await
                    .map(|_| ())
                    .map_err(|_| StepError::permanent("the sibling did not run alongside"))
            }
        });
    }
    run(&Engine::ephemeral(), &b.build(), "r", ())
        .await
        .expect("both dependents meet at the barrier");
}

/// Ready steps are claimed a few at a time by each task (a current-thread runtime: one task,
/// eight of 64 steps at a claim); every one of them must still run alongside the others when
/// each waits, whether they are a run's first steps or the dependents of one step.
#[tokio::test(start_paused = true)]
async fn many_ready_steps_that_each_wait_all_run_at_the_same_time() {
    const WIDTH: usize = 64;
    for released in [false, true] {
        let barrier = Arc::new(Barrier::new(WIDTH));
        let mut b = Builder::<u8>::new("Wide");
        let input = b.input();
        let from = if released {
            b.step("root", StepOptions::new(), (input,), |_, (x,)| async move {
                Ok::<_, StepError>(*x)
            })
        } else {
            input
        };
        for i in 0..WIDTH {
            let barrier = Arc::clone(&barrier);
            b.step(
                format!("s{i}"),
                StepOptions::new(),
                (from,),
                move |_, (_,)| {
                    let barrier = Arc::clone(&barrier);
                    async move {
                        tokio::time::timeout(Duration::from_secs(5), barrier.wait())
                            .await
                            .map(|_| ())
                            .map_err(|_| StepError::permanent("a sibling did not run alongside"))
                    }
                },
            );
        }
        let report = run(&Engine::ephemeral(), &b.build(), "r", 0)
            .await
            .unwrap_or_else(|e| panic!("released: {released}: every step meets the others: {e}"));
        let completed = report
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Completed)
            .count();
        assert_eq!(completed, WIDTH + usize::from(released));
    }
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_a_step_that_runs_in_its_upstream_steps_task() {
    // `long` is made ready by `quick` and runs in `quick`'s task, not one of its own.
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Notify::new());
    let mut b = Builder::<()>::new("Chain");
    let quick = b.step("quick", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(1_u8)
    });
    let (flag, notify) = (Arc::clone(&dropped), Arc::clone(&started));
    b.step("long", StepOptions::new(), (quick,), move |_, (_,)| {
        let guard = DropFlag(Arc::clone(&flag));
        let notify = Arc::clone(&notify);
        async move {
            let _guard = guard;
            notify.notify_one();
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok::<_, StepError>(())
        }
    });
    let (engine, store) = engine_with_store();
    let handle = engine.start(&b.build(), "r", ()).await.expect("starts");
    started.notified().await;
    handle.cancel();
    let error = handle.wait().await.expect_err("cancelled");
    assert!(dropped.load(Ordering::SeqCst));
    let statuses: Vec<StepStatus> = error.steps().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Completed, StepStatus::Running]);
    assert_eq!(
        changes(&store, "r").last(),
        Some(&RecordedChange::RunCancelled)
    );
}

/// A store whose `create_run` waits until the test opens the gate.
struct GateStore {
    inner: MemoryStore,
    entered: Notify,
    gate: Notify,
}

sagaflow_core::forward_store!(GateStore => inner: RunStore with {
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError> {
        self.entered.notify_one();
        self.gate.notified().await;
        self.inner.create_run(run).await
    }

    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError> {
        self.inner.record(run_id, change).await
    }
});
sagaflow_core::forward_store!(GateStore => inner: LeaseStore, SignalStore, EventLog, Retention, QueueStore);

fn gate_store() -> Arc<GateStore> {
    Arc::new(GateStore {
        inner: MemoryStore::new(),
        entered: Notify::new(),
        gate: Notify::new(),
    })
}

/// One step that counts its executions.
fn counted(calls: &Arc<AtomicUsize>) -> sagaflow_core::runtime::Definition<(), u32> {
    let mut b = Builder::<()>::new("Counted");
    let calls = Arc::clone(calls);
    let out = b.step("count", StepOptions::new(), (), move |_, ()| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, StepError>(7_u32) }
    });
    b.build_with_output(out)
}

#[tokio::test]
async fn a_run_cancelled_while_the_store_creates_it_never_runs_a_step() {
    let store = gate_store();
    let engine = Engine::builder().store(store.clone()).build();
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    let starting = tokio::spawn({
        let engine = engine.clone();
        async move { engine.start(&def, "r", ()).await }
    });
    store.entered.notified().await;
    assert!(
        engine.cancel(&RunId::from("r")),
        "a starting run can be cancelled"
    );
    store.gate.notify_one();
    let handle = starting.await.expect("joins").expect("starts");
    let error = handle.wait().await.expect_err("cancelled");
    assert!(
        matches!(&error, RunError::Cancelled { steps, .. } if steps[0].status == StepStatus::NotRun)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_start_joined_while_the_store_creates_the_run_shares_its_outcome() {
    let store = gate_store();
    let engine = Engine::builder().store(store.clone()).build();
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    let first = tokio::spawn({
        let (engine, def) = (engine.clone(), def.clone());
        async move { engine.start(&def, "r", ()).await }
    });
    store.entered.notified().await;
    let joined = engine
        .start(&def, "r", ())
        .await
        .expect("joins the starting run");
    store.gate.notify_one();
    let first = first.await.expect("joins").expect("starts");
    let (a, b) = tokio::join!(first.wait(), joined.wait());
    let (a, b) = (a.expect("completes"), b.expect("completes"));
    assert!(Arc::ptr_eq(&a.output, &b.output));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_start_dropped_half_way_releases_the_id() {
    let store = gate_store();
    let engine = Engine::builder().store(store.clone()).build();
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    let starting = tokio::spawn({
        let (engine, def) = (engine.clone(), def.clone());
        async move { engine.start(&def, "r", ()).await }
    });
    store.entered.notified().await;
    let joined = engine
        .start(&def, "r", ())
        .await
        .expect("joins the starting run");
    starting.abort();
    assert!(starting.await.is_err(), "the start was dropped");
    let error = joined.wait().await.expect_err("the run never started");
    assert!(matches!(error, RunError::NotStarted { .. }), "{error:?}");
    // The id is free again; this start reaches the store itself.
    let again = tokio::spawn({
        let (engine, def) = (engine.clone(), def.clone());
        async move { engine.start(&def, "r", ()).await }
    });
    store.entered.notified().await;
    store.gate.notify_one();
    let report = again
        .await
        .expect("joins")
        .expect("starts")
        .wait()
        .await
        .expect("completes");
    assert_eq!(*report.output, 7);
}

/// Layers of steps, each taking two inputs from the layer above: a wide and deep graph whose
/// output is known.
fn layered(layers: usize, width: usize) -> sagaflow_core::runtime::Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Layered");
    let input = b.input();
    let mut above: Vec<Handle<u64>> = (0..width)
        .map(|i| {
            b.step(
                format!("l0s{i}"),
                StepOptions::new(),
                (input,),
                |_, (x,)| async move {
                    tokio::task::yield_now().await;
                    Ok::<_, StepError>(*x)
                },
            )
        })
        .collect();
    for layer in 1..layers {
        above = (0..width)
            .map(|i| {
                let (a, c) = (above[i], above[(i + 1) % width]);
                b.step(
                    format!("l{layer}s{i}"),
                    StepOptions::new(),
                    (a, c),
                    |_, (a, c)| async move { Ok::<_, StepError>((*a + *c) % 1_000_003) },
                )
            })
            .collect();
    }
    let last = above[0];
    let out = b.step("out", StepOptions::new(), (last,), |_, (x,)| async move {
        Ok::<_, StepError>(*x)
    });
    b.build_with_output(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_of_a_wide_graph_complete_on_a_multi_threaded_runtime() {
    let def = layered(8, 24);
    // Each layer doubles the sum of the layer above; every node of layer k holds 2^k * x.
    let expected = |x: u64| (x << 7) % 1_000_003;
    let engine = Engine::builder().max_concurrent_steps(16).build();
    let mut waits = Vec::new();
    for i in 0..40_u64 {
        let handle = engine
            .start(&def, format!("run-{i}"), i)
            .await
            .expect("starts");
        waits.push(tokio::spawn(async move { (i, handle.wait().await) }));
    }
    for wait in waits {
        let (i, report) = wait.await.expect("joins");
        let report = report.expect("completes");
        assert_eq!(*report.output, expected(i));
        assert!(
            report
                .steps
                .iter()
                .all(|s| s.status == StepStatus::Completed)
        );
    }
}

/// Sets its flag when dropped (a step's output: it serializes as nothing).
#[derive(serde::Serialize, serde::Deserialize)]
struct Dropped {
    #[serde(skip)]
    flag: Option<Arc<AtomicBool>>,
}

impl Drop for Dropped {
    fn drop(&mut self) {
        if let Some(flag) = &self.flag {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// A step's output that no dependent takes and that is not the run's is dropped when the
/// step ends, not kept with the run until its end; one that a dependent takes is kept.
#[tokio::test(start_paused = true)]
async fn an_output_nothing_reads_is_dropped_when_its_step_ends() {
    let (sink_dropped, kept_dropped) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut b = Builder::<()>::new("Outputs");
    let root = b.step("root", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(())
    });
    let flag = Arc::clone(&sink_dropped);
    b.step("sink", StepOptions::new(), (root,), move |_, (_,)| {
        let flag = Arc::clone(&flag);
        async move { Ok::<_, StepError>(Dropped { flag: Some(flag) }) }
    });
    let flag = Arc::clone(&kept_dropped);
    let kept = b.step("kept", StepOptions::new(), (root,), move |_, (_,)| {
        let flag = Arc::clone(&flag);
        async move { Ok::<_, StepError>(Dropped { flag: Some(flag) }) }
    });
    let (sink, kept_flag) = (Arc::clone(&sink_dropped), Arc::clone(&kept_dropped));
    let last = b.step("last", StepOptions::new(), (kept,), move |_, (_,)| {
        let (sink, kept) = (Arc::clone(&sink), Arc::clone(&kept_flag));
        async move {
            // `sink` ran alongside: wait for its end (5 s of the paused clock at most).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !sink.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, StepError>((sink.load(Ordering::SeqCst), kept.load(Ordering::SeqCst)))
        }
    });
    let report = run(&Engine::ephemeral(), &b.build_with_output(last), "r", ())
        .await
        .expect("completes");
    assert_eq!(
        *report.output,
        (true, false),
        "while the run went on: the sink's output dropped, the one `last` takes kept"
    );
}
