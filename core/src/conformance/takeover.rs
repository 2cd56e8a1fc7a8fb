//! What the engine does on a durable store when a run changes hands: intent before effect,
//! a run taken over resumes with its steps' typed outputs and runs no completed step again,
//! a changed graph or an undecodable stored input or output is refused naming the run, a write refused as fenced
//! fails alone, signals cross stores, and a replay gives what a live subscriber saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::durable::{RECOVERIES, TestDatabase};
use super::runs::{create, start};
use crate::StepOptions;
use crate::runtime::definition::{Builder, Definition};
use crate::runtime::engine::{Engine, RunHandle};
use crate::runtime::error::{EngineError, StepError, StoreError};
use crate::runtime::events::{Event, EventKind};
use crate::runtime::id::RunId;
use crate::runtime::report::StepStatus;
use crate::runtime::store::{EventLog, LeaseStore, RunStore, SignalStore, Store};

const SHORT: Duration = Duration::from_millis(300);

/// How many times each step of [`chain`] ran, and whether `b` hangs.
#[derive(Default)]
struct Tally {
    a: AtomicU32,
    b: AtomicU32,
    c: AtomicU32,
    b_hangs: AtomicBool,
    /// What `a` found in the store while it ran: its own step, as recorded before it began.
    a_saw: std::sync::Mutex<Option<(StepStatus, u32)>>,
}

/// `a -> b -> c` over a `Vec<String>` that each step extends with its name; `b` hangs while
/// the tally says so. `a` reads the run back from `store` as it runs.
fn chain<S: Store + Clone>(
    tally: &Arc<Tally>,
    store: &S,
    with_b: bool,
) -> Definition<String, Vec<String>> {
    let mut builder = Builder::<String>::new("Chain");
    let input = builder.input();
    let (t, s) = (Arc::clone(tally), store.clone());
    let a = builder.step("a", StepOptions::new(), (input,), move |ctx, (seed,)| {
        let (t, s, seed) = (Arc::clone(&t), s.clone(), (*seed).clone());
        let run = ctx.run_id().clone();
        async move {
            t.a.fetch_add(1, Ordering::SeqCst);
            let stored = s
                .load_run(&run)
                .await
                .map_err(|e| StepError::permanent(e.to_string()))?;
            let own = stored.and_then(|r| r.steps.into_iter().find(|step| step.name == "a"));
            *t.a_saw.lock().unwrap() = own.map(|step| (step.status, step.attempts));
            Ok::<_, StepError>(vec![seed, "a".to_owned()])
        }
    });
    let before_c = if with_b {
        let t = Arc::clone(tally);
        builder.step("b", StepOptions::new(), (a,), move |_, (path,)| {
            let (t, mut path) = (Arc::clone(&t), (*path).clone());
            async move {
                t.b.fetch_add(1, Ordering::SeqCst);
                if t.b_hangs.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                path.push("b".to_owned());
                Ok::<_, StepError>(path)
            }
        })
    } else {
        a
    };
    let t = Arc::clone(tally);
    let c = builder.step("c", StepOptions::new(), (before_c,), move |_, (path,)| {
        let (t, mut path) = (Arc::clone(&t), (*path).clone());
        async move {
            t.c.fetch_add(1, Ordering::SeqCst);
            path.push("c".to_owned());
            Ok::<_, StepError>(path)
        }
    });
    builder.build_with_output(c)
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let began = Instant::now();
    while !done() {
        assert!(began.elapsed() < Duration::from_secs(10), "{what}: never");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts `def` as run `r` on `engine` until `b` hangs, then lets the run go, as a process
/// that stalled would: its lease expires and nothing of the stalled run writes again.
async fn stall_in_b<S: Store + Clone>(
    engine: &Engine,
    store: &S,
    tally: &Arc<Tally>,
) -> RunHandle<Vec<String>> {
    tally.b_hangs.store(true, Ordering::SeqCst);
    let def = chain(tally, store, true);
    let handle = engine.start(&def, "r", "seed".to_owned()).await.unwrap();
    until("b started", || tally.b.load(Ordering::SeqCst) == 1).await;
    store.release(&"r".into());
    handle
}

/// Starts `def` as run `r` on `engine` once the stalled owner's lease has expired.
async fn take_over<I, O>(
    engine: &Engine,
    def: &Definition<I, O>,
    input: I,
) -> Result<RunHandle<O>, EngineError>
where
    I: crate::runtime::definition::StepValue + Clone,
    O: crate::runtime::definition::StepValue,
{
    let began = Instant::now();
    loop {
        match engine.start(def, "r", input.clone()).await {
            Err(EngineError::Leased { .. }) if began.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

fn engine_on<S: Store + Clone>(store: &S) -> Engine {
    Engine::builder().store(Arc::new(store.clone())).build()
}

/// A step's start is recorded before its function runs (the function finds it running); a
/// run another owner takes over resumes after its last completed step, with that step's
/// output decoded into its type, and runs no completed step again.
pub async fn a_run_taken_over_resumes_with_typed_outputs(db: &impl TestDatabase) {
    let tally = Arc::new(Tally::default());
    let a_store = db.open("A", SHORT, RECOVERIES).await;
    let engine_a = engine_on(&a_store);
    let _stalled = stall_in_b(&engine_a, &a_store, &tally).await;
    assert_eq!(
        *tally.a_saw.lock().unwrap(),
        Some((StepStatus::Running, 1)),
        "the step's start was recorded before it ran"
    );

    tally.b_hangs.store(false, Ordering::SeqCst);
    let b_store = db.open("B", SHORT, RECOVERIES).await;
    let engine_b = engine_on(&b_store);
    let def = chain(&tally, &b_store, true);
    let report = take_over(&engine_b, &def, "other".to_owned())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(
        *report.output,
        ["seed", "a", "b", "c"],
        "the stored input and `a`'s output"
    );
    let ran = |n: &AtomicU32| n.load(Ordering::SeqCst);
    assert_eq!((ran(&tally.a), ran(&tally.b), ran(&tally.c)), (1, 2, 1));
}

/// A run taken up under a graph that lost a step is refused, naming the run and the step.
pub async fn a_run_under_a_changed_graph_is_refused(db: &impl TestDatabase) {
    let tally = Arc::new(Tally::default());
    let a_store = db.open("A", SHORT, RECOVERIES).await;
    let engine_a = engine_on(&a_store);
    let _stalled = stall_in_b(&engine_a, &a_store, &tally).await;
    let b_store = db.open("B", SHORT, RECOVERIES).await;
    let engine_b = engine_on(&b_store);
    let without_b = chain(&tally, &b_store, false);
    match take_over(&engine_b, &without_b, "seed".to_owned()).await {
        Err(EngineError::GraphChanged {
            run_id, changed, ..
        }) => {
            assert_eq!(run_id.as_str(), "r");
            assert!(changed.contains('b'), "{changed}");
        }
        other => panic!("a changed graph was not refused: {:?}", other.map(|_| ())),
    }
    assert_eq!(tally.c.load(Ordering::SeqCst), 0);
}

/// A stored input that no longer decodes into the workflow's input type is an error naming
/// the run, not a panic and not a fresh run.
pub async fn an_input_that_no_longer_decodes_is_an_error(db: &impl TestDatabase) {
    let tally = Arc::new(Tally::default());
    let a_store = db.open("A", SHORT, RECOVERIES).await;
    let engine_a = engine_on(&a_store);
    let _stalled = stall_in_b(&engine_a, &a_store, &tally).await;
    let b_store = db.open("B", SHORT, RECOVERIES).await;
    let engine_b = engine_on(&b_store);
    // The same graph, names and steps, over a number instead of a string.
    let mut builder = Builder::<u64>::new("Chain");
    let input = builder.input();
    let a = builder.step("a", StepOptions::new(), (input,), |_, (n,)| {
        let n = *n;
        async move { Ok::<_, StepError>(n) }
    });
    let b = builder.step("b", StepOptions::new(), (a,), |_, (n,)| {
        let n = *n;
        async move { Ok::<_, StepError>(n) }
    });
    let c = builder.step("c", StepOptions::new(), (b,), |_, (n,)| {
        let n = *n;
        async move { Ok::<_, StepError>(n) }
    });
    let numbers = builder.build_with_output(c);
    match take_over(&engine_b, &numbers, 7).await {
        Err(EngineError::Store(StoreError::Codec { run_id, step, .. })) => {
            assert_eq!((run_id.as_str(), step.as_str()), ("r", "(input)"));
        }
        other => panic!(
            "an undecodable input was not refused: {:?}",
            other.map(|_| ())
        ),
    }
}

/// A completed step's stored output that no longer decodes into the step's type is an error
/// naming the run and the step, not a panic and not a step run again.
pub async fn an_output_that_no_longer_decodes_is_an_error(db: &impl TestDatabase) {
    let tally = Arc::new(Tally::default());
    let a_store = db.open("A", SHORT, RECOVERIES).await;
    let engine_a = engine_on(&a_store);
    let _stalled = stall_in_b(&engine_a, &a_store, &tally).await;
    let b_store = db.open("B", SHORT, RECOVERIES).await;
    let engine_b = engine_on(&b_store);
    // The same graph and input, but `a` now makes a number, not a list of strings.
    let mut builder = Builder::<String>::new("Chain");
    let input = builder.input();
    let a = builder.step("a", StepOptions::new(), (input,), |_, (s,)| {
        let n = s.len() as u64;
        async move { Ok::<_, StepError>(n) }
    });
    let b = builder.step("b", StepOptions::new(), (a,), |_, (n,)| {
        let n = *n;
        async move { Ok::<_, StepError>(n) }
    });
    let c = builder.step("c", StepOptions::new(), (b,), |_, (n,)| {
        let n = *n;
        async move { Ok::<_, StepError>(n) }
    });
    let numbers = builder.build_with_output(c);
    match take_over(&engine_b, &numbers, "seed".to_owned()).await {
        Err(EngineError::Store(StoreError::Codec { run_id, step, .. })) => {
            assert_eq!((run_id.as_str(), step.as_str()), ("r", "a"));
        }
        other => panic!(
            "an undecodable output was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    assert_eq!(tally.a.load(Ordering::SeqCst), 1, "`a` did not run again");
}

/// Of two writes issued at once by one store, the one its lease no longer covers is refused
/// as fenced, and the other is written all the same.
pub async fn a_fenced_write_fails_alone(db: &impl TestDatabase) {
    let a = db.open("A", SHORT, RECOVERIES).await;
    let b = db.open("B", SHORT, RECOVERIES).await;
    create(&a, "lost", "W").await.unwrap();
    create(&a, "kept", "W").await.unwrap();
    let lost = RunId::from("lost");
    a.release(&lost);
    let began = Instant::now();
    while b.acquire(&lost).await.is_err() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (refused, written) = tokio::join!(start(&a, "lost", "x"), start(&a, "kept", "x"));
    assert!(
        matches!(&refused, Err(StoreError::Fenced { run_id, .. }) if run_id.as_str() == "lost"),
        "{refused:?}"
    );
    written.unwrap();
    let kept = a.load_run(&"kept".into()).await.unwrap().unwrap();
    assert_eq!(
        kept.steps.len(),
        1,
        "the write beside the refused one is there"
    );
    let lost = b.load_run(&lost).await.unwrap().unwrap();
    assert!(lost.steps.is_empty(), "the refused write left nothing");
}

/// A signal one store delivered, another store on the database finds, and numbers the same.
pub async fn a_signal_crosses_stores(db: &impl TestDatabase) {
    let a = db.open("A", SHORT, RECOVERIES).await;
    let b = db.open("B", SHORT, RECOVERIES).await;
    create(&a, "r", "W").await.unwrap();
    let before = b.signal_position().await.unwrap();
    assert!(
        a.deliver_signal(&"r".into(), "go", "\"yes\"")
            .await
            .unwrap()
    );
    assert!(!b.deliver_signal(&"r".into(), "go", "\"no\"").await.unwrap());
    let found = b.signal(&"r".into(), "go").await.unwrap();
    assert_eq!(found.as_deref(), Some("\"yes\""));
    if let Some(before) = before {
        let listed = b.signals_after(before, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].run_id.as_str(), listed[0].name.as_str()),
            ("r", "go")
        );
    }
}

/// What a live subscriber saw of a run, the event log replays: the same events in the same
/// order, from the run's creation to its end.
pub async fn a_replay_gives_what_a_live_subscriber_saw(db: &impl TestDatabase) {
    let store = db.open("A", SHORT, RECOVERIES).await;
    let engine = engine_on(&store);
    let mut live = engine.subscribe();
    let tally = Arc::new(Tally::default());
    let def = chain(&tally, &store, true);
    let report = engine
        .start(&def, "r", "s".to_owned())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(*report.unwrap().output, ["s", "a", "b", "c"]);
    let mut seen: Vec<Event> = Vec::new();
    while !seen.iter().any(|e| e.kind == EventKind::RunCompleted) {
        let next = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .expect("the run's events arrive")
            .expect("the feed is open")
            .unwrap();
        seen.push(next);
    }
    let replay = store
        .events(Some(&"r".into()), 0, usize::MAX)
        .await
        .unwrap();
    assert_eq!(replay, seen);
    let kinds: Vec<_> = seen.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.first(), Some(&EventKind::RunCreated), "{kinds:?}");
    let completed = seen
        .iter()
        .filter(|e| e.kind == EventKind::StepCompleted)
        .count();
    assert_eq!(completed, 3);
}

/// Runs every takeover check as a test of its own (multi-threaded, since a stalled run's step
/// hangs on its worker), each on a fresh database made by `$make`.
#[macro_export]
macro_rules! takeover_conformance {
    ($make:expr) => {
        $crate::__conformance_checks!(takeover, $make,
            [(flavor = "multi_thread", worker_threads = 2)]:
            a_run_taken_over_resumes_with_typed_outputs,
            a_run_under_a_changed_graph_is_refused,
            an_input_that_no_longer_decodes_is_an_error,
            an_output_that_no_longer_decodes_is_an_error,
            a_fenced_write_fails_alone,
            a_signal_crosses_stores,
            a_replay_gives_what_a_live_subscriber_saw,
        );
    };
}
