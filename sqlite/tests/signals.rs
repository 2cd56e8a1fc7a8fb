//! Signals: a step waits for a named, typed value from outside; `Engine::signal` delivers it,
//! once. On SQLite the wait survives a crash, and a signal sent while no process runs the
//! run is found when the run is taken up again (that check is
//! `sagaflow_core::conformance::resume`'s, run by `tests/resume.rs` on every durable store).
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sagaflow_core::conformance::resume::{Approval, approval_flow};
use sagaflow_core::runtime::{
    DeliveredSignal, Engine, EngineError, RunError, RunId, SignalStore, StoreError,
};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::{SqliteOptions, SqliteStore};

async fn until(counter: &AtomicU32, value: u32) {
    for _ in 0..5_000 {
        if counter.load(Ordering::SeqCst) >= value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never reached {value}");
}

#[tokio::test]
async fn a_waiting_step_receives_the_typed_signal_once() {
    let (prepared, asked) = (Arc::default(), Arc::new(AtomicU32::new(0)));
    let def = approval_flow(prepared, Arc::clone(&asked));
    let engine = Engine::ephemeral();
    let handle = engine.start(&def, "doc-1", ()).await.unwrap();
    until(&asked, 1).await;
    let approval = Approval {
        by: "ana".into(),
        ok: true,
    };
    engine.signal("doc-1", "approval", &approval).await.unwrap();
    let report = handle.wait().await.unwrap();
    assert_eq!(*report.output, "draft approved by ana (true)");

    let again = engine
        .signal("doc-1", "approval", &approval)
        .await
        .unwrap_err();
    assert!(
        matches!(&again, EngineError::SignalAlreadyDelivered { name, .. } if name == "approval"),
        "{again}"
    );
    let unknown = engine
        .signal("nobody", "approval", &approval)
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("nobody"), "{unknown}");
}

#[tokio::test]
async fn a_signal_sent_before_the_step_waits_is_found_at_once() {
    let (prepared, asked) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let def = approval_flow(Arc::clone(&prepared), asked);
    let engine = Engine::ephemeral();
    // The run exists as soon as start returns; the signal may arrive before `approve` asks.
    let handle = engine.start(&def, "doc-2", ()).await.unwrap();
    engine
        .signal(
            "doc-2",
            "approval",
            &Approval {
                by: "bo".into(),
                ok: false,
            },
        )
        .await
        .unwrap();
    let report = handle.wait().await.unwrap();
    assert_eq!(*report.output, "draft approved by bo (false)");
}

#[tokio::test]
async fn a_payload_of_the_wrong_type_fails_the_step_naming_the_signal() {
    let def = approval_flow(Arc::default(), Arc::default());
    let engine = Engine::ephemeral();
    let handle = engine.start(&def, "doc-3", ()).await.unwrap();
    engine.signal("doc-3", "approval", &42_u32).await.unwrap();
    match handle.wait().await.unwrap_err() {
        RunError::StepFailed { step, error, .. } => {
            assert_eq!(step, "approve");
            assert!(error.message().contains("signal `approval`"), "{error}");
            assert!(error.is_permanent());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn signals_and_events_work_on_a_sqlite_database_in_memory() {
    let (prepared, asked) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let def = approval_flow(prepared, Arc::clone(&asked));
    let engine = Engine::open_in_memory().unwrap();
    let mut events = engine.subscribe();
    let handle = engine.start(&def, "doc-5", ()).await.unwrap();
    until(&asked, 1).await;
    engine
        .signal(
            "doc-5",
            "approval",
            &Approval {
                by: "di".into(),
                ok: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        *handle.wait().await.unwrap().output,
        "draft approved by di (true)"
    );
    let mut kinds = Vec::new();
    while let Some(event) = events.next().await {
        let event = event.unwrap();
        let ends = event.kind.ends_run();
        kinds.push(event.kind);
        if ends {
            break;
        }
    }
    assert_eq!(
        kinds.len(),
        6,
        "created, 2 × (started, completed), completed: {kinds:?}"
    );
}

/// Keeps the runtime busy, so that the paused clock moves only when the test advances it:
/// with nothing to do, it would jump to the next timer while SQLite works on its own thread.
fn hold_the_clock() {
    tokio::spawn(async {
        loop {
            tokio::task::yield_now().await;
        }
    });
}

/// Waits, without moving the clock, until `done` holds; fails after ten seconds of real time.
async fn settle(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::task::yield_now().await;
    }
}

/// `future`, which must end without the clock moving; fails after ten seconds of real time.
async fn without_time<T>(what: &str, future: impl Future<Output = T>) -> T {
    let start = std::time::Instant::now();
    tokio::select! {
        value = future => value,
        () = async {
            while start.elapsed() < Duration::from_secs(10) {
                tokio::task::yield_now().await;
            }
        } => panic!("never: {what}"),
    }
}

/// A SQLite store that counts the questions about signals it has answered.
struct Counting {
    inner: SqliteStore,
    /// `signal`: a waiting step asking for its own signal.
    own: AtomicU32,
    /// `signals_after`: the engine's poller asking for every new one.
    polls: AtomicU32,
}

#[async_trait::async_trait]
impl SignalStore for Counting {
    async fn deliver_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &str,
    ) -> Result<bool, StoreError> {
        self.inner.deliver_signal(run_id, name, payload).await
    }
    async fn signal(&self, run_id: &RunId, name: &str) -> Result<Option<String>, StoreError> {
        let answer = self.inner.signal(run_id, name).await;
        self.own.fetch_add(1, Ordering::SeqCst);
        answer
    }
    async fn signal_position(&self) -> Result<Option<u64>, StoreError> {
        self.inner.signal_position().await
    }
    async fn signals_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeliveredSignal>, StoreError> {
        let answer = self.inner.signals_after(after, limit).await;
        self.polls.fetch_add(1, Ordering::SeqCst);
        answer
    }
    fn signal_notices(&self) -> Option<sagaflow_core::runtime::store::SignalNotices> {
        self.inner.signal_notices()
    }
}
sagaflow_core::forward_store!(Counting => inner: RunStore, LeaseStore, EventLog, Retention, QueueStore);

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn many_waiting_steps_cost_one_question_a_second_and_hear_another_process() {
    hold_the_clock();
    const RUNS: u32 = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signals.db");
    let store = Arc::new(Counting {
        inner: SqliteStore::open(&path, SqliteOptions::default()).unwrap(),
        own: AtomicU32::new(0),
        polls: AtomicU32::new(0),
    });
    let own = || store.own.load(Ordering::SeqCst);
    let polls = || store.polls.load(Ordering::SeqCst);
    let engine = Engine::builder().store(Arc::clone(&store) as _).build();
    let def = approval_flow(Arc::default(), Arc::default());
    let mut handles = Vec::new();
    for i in 0..RUNS {
        handles.push(engine.start(&def, format!("doc-{i}"), ()).await.unwrap());
    }
    settle("every step asks for its signal", || own() == RUNS).await;
    assert_eq!(polls(), 0);

    // Twenty seconds of 200 steps waiting: not one of them asks again (each asking once a
    // second would be 4,000 questions); the engine's poller asks for all of them, once a
    // second.
    for second in 1..=20 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle("the poller asks", || polls() >= second).await;
    }
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    assert_eq!((own(), polls()), (RUNS, 20));

    // Another process (another connection to the file, with no way to wake this one)
    // delivers a signal: the poller hears of it at its next question and wakes that step,
    // which asks once more and ends.
    let other = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let approval = |by: &str| {
        serde_json::to_string(&Approval {
            by: by.into(),
            ok: true,
        })
        .unwrap()
    };
    let mut handles = handles.into_iter();
    let first = handles.next().unwrap();
    assert!(
        other
            .deliver_signal(&"doc-0".into(), "approval", &approval("bo"))
            .await
            .unwrap()
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let report = without_time("doc-0 hears of its signal", first.wait())
        .await
        .unwrap();
    assert_eq!(*report.output, "draft approved by bo (true)");
    assert_eq!((own(), polls()), (RUNS + 1, 21));

    // Every other run hears of its own at the poller's next question.
    for i in 1..RUNS {
        let by = format!("approver {i}");
        other
            .deliver_signal(&format!("doc-{i}").into(), "approval", &approval(&by))
            .await
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    for (i, handle) in (1..RUNS).zip(handles) {
        let report = without_time("every run hears of its signal", handle.wait())
            .await
            .unwrap();
        assert_eq!(
            *report.output,
            format!("draft approved by approver {i} (true)")
        );
    }
    assert_eq!((own(), polls()), (2 * RUNS, 22));
}
