//! Many replicas on one store: a replica that drains hands its runs over at once, and one
//! that dies has its runs taken up by the others by themselves, once its leases run out; in
//! both, no completed step runs again, and a run of a graph no replica registered is left
//! alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::durable::{RECOVERIES, TestDatabase};
use crate::StepOptions;
use crate::runtime::definition::{Builder, Definition, Handle};
use crate::runtime::engine::{Engine, Enqueue};
use crate::runtime::error::{EngineError, RunError, StepError};
use crate::runtime::id::RunId;
use crate::runtime::report::StepStatus;
use crate::runtime::store::{LeaseStore, RunStore, Store, StoredRunStatus};

/// A lease no test waits for: only a given-up lease lets another replica in before it ends.
const LONG: Duration = Duration::from_secs(30);
/// A lease a test outlives.
const SHORT: Duration = Duration::from_millis(400);
/// The runs each check spreads over its replicas.
const RUNS: usize = 4;

/// How many times each step of each run ran, by run and step.
#[derive(Default)]
struct Counts(Mutex<HashMap<(String, String), u32>>);

impl Counts {
    fn ran(&self, run: &RunId, step: &str) {
        let mut counts = self.0.lock().unwrap();
        *counts
            .entry((run.as_str().to_owned(), step.to_owned()))
            .or_default() += 1;
    }

    fn of(&self, run: &str, step: &str) -> u32 {
        let counts = self.0.lock().unwrap();
        counts
            .get(&(run.to_owned(), step.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn total(&self, step: &str) -> u32 {
        let counts = self.0.lock().unwrap();
        counts
            .iter()
            .filter(|((_, s), _)| s == step)
            .map(|(_, n)| *n)
            .sum()
    }
}

/// How `two` behaves: waits for the gate to open, or hangs at its first attempt (a replica
/// that stalls there).
#[derive(Clone)]
enum Two {
    Gate(Arc<watch::Sender<bool>>),
    HangsFirst,
}

/// `one -> two -> three -> four` over a number, each step counted; `extra` adds a fifth step
/// (another version of the workflow, under another graph).
fn counted(counts: &Arc<Counts>, two: &Two, extra: bool) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Counted");
    let input = b.input();
    let step = |b: &mut Builder<u64>, name: &'static str, from: Handle<u64>| {
        let counts = Arc::clone(counts);
        b.step(
            name,
            StepOptions::new(),
            (from,),
            move |ctx: crate::runtime::StepContext, (n,): (Arc<u64>,)| {
                counts.ran(ctx.run_id(), name);
                let n = *n;
                async move { Ok::<_, StepError>(n + 1) }
            },
        )
    };
    let one = step(&mut b, "one", input);
    let counts2 = Arc::clone(counts);
    let two = two.clone();
    let two = b.step("two", StepOptions::new(), (one,), move |ctx, (n,)| {
        counts2.ran(ctx.run_id(), "two");
        let (n, two, attempt) = (*n, two.clone(), ctx.attempt());
        async move {
            match two {
                Two::Gate(gate) => {
                    let _ = gate.subscribe().wait_for(|open| *open).await;
                }
                Two::HangsFirst if attempt == 1 => std::future::pending::<()>().await,
                Two::HangsFirst => {}
            }
            Ok::<_, StepError>(n + 1)
        }
    });
    let three = step(&mut b, "three", two);
    let mut last = step(&mut b, "four", three);
    if extra {
        last = step(&mut b, "five", last);
    }
    b.build_with_output(last)
}

fn engine_on<S: Store + Clone>(store: &S, every: Duration) -> Engine {
    Engine::builder()
        .store(Arc::new(store.clone()))
        .takeover_every(every)
        .build()
}

async fn until(what: &str, within: Duration, done: impl AsyncFn() -> bool) {
    let began = Instant::now();
    while !done().await {
        assert!(began.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status(store: &impl RunStore, run: &str) -> StoredRunStatus {
    store
        .load_run(&run.into())
        .await
        .unwrap()
        .expect("the run is stored")
        .status
}

/// Waits until `b_store` shows every run of a replica that died at `died` completed, taken up
/// once that replica's lease (`SHORT`) ran out: each completed step not run again, the
/// interrupted `two` once more.
async fn went_on_where_they_stopped(b_store: &impl RunStore, counts: &Counts, died: Instant) {
    for i in 0..RUNS {
        let run = run_name(i);
        until("B completes the run", Duration::from_secs(10), async || {
            status(b_store, &run).await == StoredRunStatus::Completed
        })
        .await;
    }
    // The dead replica's heartbeat renewed its leases every third of a lease until it died,
    // so the last renewal came at most a third of a lease before `died`, and no lease could
    // run out before two thirds of a lease after it (a take-up that ignored the leases would
    // come within a poll, 50 ms). Asking for the whole lease after `died` failed once under a
    // load average of 9, with the last renewal just before the third.
    let earliest = SHORT * 2 / 3;
    assert!(
        died.elapsed() >= earliest,
        "taken up {:?} after the replica died, before its lease of {SHORT:?} could have run out",
        died.elapsed()
    );
    for i in 0..RUNS {
        let run = run_name(i);
        assert_eq!(counts.of(&run, "one"), 1, "`one` of `{run}` ran once");
        assert_eq!(counts.of(&run, "two"), 2, "`two` of `{run}` ran once more");
        assert_eq!(counts.of(&run, "three"), 1);
        assert_eq!(counts.of(&run, "four"), 1);
    }
}

fn run_name(i: usize) -> String {
    format!("run-{i}")
}

/// A replica that drains lets its running steps end and checkpoints them, starts no further
/// step, and gives its leases up: another replica with the definition registered takes every
/// run up within a poll (far sooner than the lease), each run completes, and no step that
/// completed runs again. The drained engine starts no run after.
pub async fn a_drained_replica_hands_its_runs_over_at_once(db: &impl TestDatabase) {
    let counts = Arc::new(Counts::default());
    let gate = Arc::new(watch::Sender::new(false));
    let def = counted(&counts, &Two::Gate(Arc::clone(&gate)), false);
    let a_store = db.open("A", LONG, RECOVERIES).await;
    let b_store = db.open("B", LONG, RECOVERIES).await;
    let a = engine_on(&a_store, Duration::from_millis(100));
    let b = engine_on(&b_store, Duration::from_millis(100));
    a.register(&def).unwrap();
    b.register(&def).unwrap();
    let mut handles = Vec::new();
    for i in 0..RUNS {
        handles.push(a.start(&def, run_name(i), 1).await.unwrap());
    }
    until(
        "every run is in `two`",
        Duration::from_secs(10),
        async || counts.total("two") == RUNS as u32,
    )
    .await;
    // B polls meanwhile, and takes nothing A holds.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let shutdown = tokio::spawn({
        let a = a.clone();
        async move { a.shutdown(Duration::from_secs(20)).await }
    });
    until("A drains", Duration::from_secs(10), async || {
        a.is_shutting_down()
    })
    .await;
    // The steps running when the drain began end in its grace period.
    gate.send_replace(true);
    let drained = shutdown.await.unwrap();
    let handed_at = Instant::now();
    assert!(drained.error.is_none(), "{:?}", drained.error);
    assert_eq!(drained.released.len(), RUNS, "{drained:?}");
    assert!(
        drained.finished.is_empty() && drained.cut.is_empty(),
        "{drained:?}"
    );
    for handle in handles {
        match handle.wait().await {
            Err(RunError::Released { steps, .. }) => {
                let of = |name: &str| steps.iter().find(|s| &*s.name == name).unwrap().status;
                assert_eq!(
                    of("two"),
                    StepStatus::Completed,
                    "ended in the grace period"
                );
                assert_eq!(
                    of("three"),
                    StepStatus::NotRun,
                    "not started by a draining replica"
                );
            }
            other => panic!("a drained run was not released: {:?}", other.map(|_| ())),
        }
    }
    for i in 0..RUNS {
        let run = run_name(i);
        until("B completes the run", Duration::from_secs(10), async || {
            status(&b_store, &run).await == StoredRunStatus::Completed
        })
        .await;
    }
    let taken_in = handed_at.elapsed();
    assert!(
        taken_in < Duration::from_secs(3),
        "the runs were taken up in {taken_in:?}: a given-up lease is free at once, and the lease is {LONG:?}"
    );
    for i in 0..RUNS {
        let run = run_name(i);
        for step in ["one", "two", "three", "four"] {
            assert_eq!(counts.of(&run, step), 1, "`{step}` of `{run}` ran once");
        }
    }
    assert!(matches!(
        a.start(&def, "late", 1).await,
        Err(EngineError::ShuttingDown { .. })
    ));
    let again = a.shutdown(Duration::from_secs(1)).await;
    assert!(again.released.is_empty() && again.finished.is_empty());
}

/// A replica that dies (its leases are no longer renewed) has its runs taken up by another
/// replica by itself once the leases run out, with no call to `recover`: every run completes,
/// its interrupted step runs once more and its completed steps not again. A run started under
/// a graph the other replica did not register is left alone.
pub async fn a_dead_replica_s_runs_are_taken_up_by_themselves(db: &impl TestDatabase) {
    let counts = Arc::new(Counts::default());
    let def = counted(&counts, &Two::HangsFirst, false);
    let newer = counted(&counts, &Two::HangsFirst, true);
    let a_store = db.open("A", SHORT, RECOVERIES).await;
    let a = engine_on(&a_store, Duration::from_millis(50));
    for i in 0..RUNS {
        drop(a.start(&def, run_name(i), 1).await.unwrap());
    }
    drop(a.start(&newer, "newer", 1).await.unwrap());
    until(
        "every run is in `two`",
        Duration::from_secs(10),
        async || counts.total("two") == RUNS as u32 + 1,
    )
    .await;
    // A dies: its leases are no longer renewed, and its stalled steps never end.
    for i in 0..RUNS {
        a_store.release(&run_name(i).into());
    }
    a_store.release(&"newer".into());
    let died = Instant::now();

    let b_store = db.open("B", SHORT, RECOVERIES).await;
    let b = engine_on(&b_store, Duration::from_millis(50));
    b.register(&def).unwrap();
    went_on_where_they_stopped(&b_store, &counts, died).await;
    // A few more polls: the run of the unregistered graph is still A's, untouched.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&b_store, "newer").await, StoredRunStatus::Running);
    assert_eq!(counts.of("newer", "two"), 1, "not taken up");
    let stored = b_store.load_run(&"newer".into()).await.unwrap().unwrap();
    let two = stored.steps.iter().find(|s| s.name == "two").unwrap();
    assert_eq!((two.status, two.attempts), (StepStatus::Running, 1));
    // Once a replica registers that graph too, it is taken up as well.
    b.register(&newer).unwrap();
    until(
        "B completes the newer run",
        Duration::from_secs(10),
        async || status(&b_store, "newer").await == StoredRunStatus::Completed,
    )
    .await;
    assert_eq!(counts.of("newer", "five"), 1);
}

/// A queue's runs that a replica took and then died with (its leases no longer renewed) are
/// claimed by another replica serving the queue once the leases run out, and go on where they
/// stopped: their completed steps do not run again, their interrupted step once more. A claim
/// that takes a run up at once must not take a run that had started for one that had not.
pub async fn a_dead_replica_s_queued_runs_go_on_where_they_stopped(db: &impl TestDatabase) {
    let counts = Arc::new(Counts::default());
    let def = counted(&counts, &Two::HangsFirst, false);
    let a_store = db.open("A", SHORT, RECOVERIES).await;
    let a = engine_on(&a_store, Duration::from_millis(20));
    a.register(&def).unwrap();
    a.serve("work").unwrap();
    for i in 0..RUNS {
        a.enqueue(&def, run_name(i), 1, &Enqueue::on("work"))
            .await
            .unwrap();
    }
    until(
        "A runs every run into `two`",
        Duration::from_secs(10),
        async || counts.total("two") == RUNS as u32,
    )
    .await;
    // A dies: it serves the queue no more, its leases are no longer renewed, and its stalled
    // steps never end.
    drop(a);
    for i in 0..RUNS {
        a_store.release(&run_name(i).into());
    }
    let died = Instant::now();

    let b_store = db.open("B", SHORT, RECOVERIES).await;
    let b = engine_on(&b_store, Duration::from_millis(20));
    b.register(&def).unwrap();
    b.serve("work").unwrap();
    went_on_where_they_stopped(&b_store, &counts, died).await;
    for i in 0..RUNS {
        let run = run_name(i);
        let report = b.wait_for(&def, run.as_str()).await.unwrap().wait().await;
        assert_eq!(
            *report.unwrap().output,
            5,
            "`{run}`'s outcome, from the store"
        );
    }
}

/// Runs every replica check as a test of its own (multi-threaded, since a stalled step hangs
/// on its worker), each on a fresh database made by `$make`.
#[macro_export]
macro_rules! replica_conformance {
    ($make:expr) => {
        $crate::__conformance_checks!(replicas, $make,
            [(flavor = "multi_thread", worker_threads = 2)]:
            a_drained_replica_hands_its_runs_over_at_once,
            a_dead_replica_s_runs_are_taken_up_by_themselves,
            a_dead_replica_s_queued_runs_go_on_where_they_stopped,
        );
    };
}
