//! What the engine tells its store, in what order, and what happens when the store fails.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Log, changes, engine_with_store, ms, policy, run};
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Change, Created, Definition, Engine, EngineError, MemoryStore, NewRun, RecordedChange,
    RunError, RunId, StepError, StoreError,
};

/// `a -> b`, where `b` records whether it ran.
fn two_steps(b_ran: Arc<AtomicBool>) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Two");
    let input = b.input();
    let first = b.step("a", StepOptions::new(), (input,), |_, (x,)| async move {
        Ok::<_, StepError>(*x + 1)
    });
    let second = b.step("b", StepOptions::new(), (first,), move |_, (x,)| {
        b_ran.store(true, Ordering::SeqCst);
        async move { Ok::<_, StepError>(*x * 2) }
    });
    b.build_with_output(second)
}

fn started(step: &str, attempt: u32) -> RecordedChange {
    RecordedChange::StepStarted {
        step: step.into(),
        attempt,
    }
}

fn completed(step: &str, attempt: u32) -> RecordedChange {
    RecordedChange::StepCompleted {
        step: step.into(),
        attempt,
    }
}

#[tokio::test]
async fn the_store_sees_the_exact_change_sequence_of_a_run() {
    let (engine, store) = engine_with_store();
    let report = run(&engine, &two_steps(Arc::default()), "r", 1)
        .await
        .expect("completes");
    assert_eq!(*report.output, 4);
    assert_eq!(
        changes(&store, "r"),
        [
            started("a", 1),
            completed("a", 1),
            started("b", 1),
            completed("b", 1),
            RecordedChange::RunCompleted
        ]
    );
    let (workflow, fingerprint) = store.run_info(&RunId::from("r")).expect("stored");
    assert_eq!(workflow, "Two");
    let def = two_steps(Arc::default());
    let graph = def.erased().graph().expect("valid");
    assert_eq!(fingerprint, graph.fingerprint());
}

#[tokio::test]
async fn a_step_runs_only_once_its_start_and_its_inputs_are_recorded() {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder().store(store.clone()).build();
    let seen: Log<Vec<RecordedChange>> = Log::new();
    let mut b = Builder::<()>::new("Intent");
    let first = b.step("a", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(1_u8)
    });
    let (store_in_step, log) = (Arc::clone(&store), seen.clone());
    b.step("b", StepOptions::new(), (first,), move |_, (_,)| {
        log.push(store_in_step.changes(&RunId::from("r")).unwrap_or_default());
        async { Ok::<_, StepError>(()) }
    });
    run(&engine, &b.build(), "r", ()).await.expect("completes");
    assert_eq!(
        seen.items(),
        [vec![started("a", 1), completed("a", 1), started("b", 1)]],
        "when `b` runs, `a`'s output and `b`'s start are already recorded"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_and_failures_are_recorded_in_order() {
    let mut b = Builder::<()>::new("Retry");
    b.step(
        "s",
        StepOptions::new().retry(policy(10, 2.0, None, 2)),
        (),
        |ctx, ()| async move { Err::<(), _>(StepError::new(format!("no {}", ctx.attempt()))) },
    );
    let (engine, store) = engine_with_store();
    let error = run(&engine, &b.build(), "r", ()).await.expect_err("fails");
    assert_eq!(
        changes(&store, "r"),
        [
            started("s", 1),
            RecordedChange::StepRetrying {
                step: "s".into(),
                attempt: 1,
                error: StepError::new("no 1"),
                delay: ms(10)
            },
            started("s", 2),
            RecordedChange::StepFailed {
                step: "s".into(),
                attempts: 2,
                error: StepError::new("no 2")
            },
            RecordedChange::RunFailed {
                error: error.to_string()
            }
        ]
    );
}

/// A memory store that refuses one kind of change.
struct FailingStore {
    inner: MemoryStore,
    fail_create: bool,
    fail_on: Option<&'static str>,
}

sagaflow_core::forward_store!(FailingStore => inner: RunStore with {
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError> {
        if self.fail_create {
            return Err(StoreError::Backend("disk full".into()));
        }
        self.inner.create_run(run).await
    }

    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError> {
        if let Change::StepCompleted { step, .. } = change
            && Some(*step) == self.fail_on
        {
            return Err(StoreError::Backend(format!("cannot checkpoint `{step}`")));
        }
        self.inner.record(run_id, change).await
    }
});
sagaflow_core::forward_store!(FailingStore => inner: LeaseStore, SignalStore, EventLog, Retention, QueueStore);

#[tokio::test]
async fn a_failing_store_stops_the_run() {
    let store = Arc::new(FailingStore {
        inner: MemoryStore::new(),
        fail_create: false,
        fail_on: Some("a"),
    });
    let engine = Engine::builder().store(store.clone()).build();
    let b_ran = Arc::new(AtomicBool::new(false));
    let error = run(&engine, &two_steps(Arc::clone(&b_ran)), "r", 1)
        .await
        .expect_err("the store failed");
    assert!(
        matches!(&error, RunError::Store { source: StoreError::Backend(m), .. } if m == "cannot checkpoint `a`"),
        "{error:?}"
    );
    assert!(
        !b_ran.load(Ordering::SeqCst),
        "no step runs past an unrecorded checkpoint"
    );
    assert_eq!(
        store.inner.changes(&RunId::from("r")),
        Some(vec![started("a", 1)]),
        "nothing is recorded after the failure, so a durable store could resume the run"
    );
}

#[tokio::test]
async fn a_store_that_refuses_the_run_fails_the_start() {
    let store = Arc::new(FailingStore {
        inner: MemoryStore::new(),
        fail_create: true,
        fail_on: None,
    });
    let engine = Engine::builder().store(store).build();
    let result = engine.start(&two_steps(Arc::default()), "r", 1).await;
    assert!(matches!(result, Err(EngineError::Store(StoreError::Backend(m))) if m == "disk full"));
    // The id was not kept: nothing half-started lingers in the engine.
    assert!(!engine.cancel(&RunId::from("r")));
}

/// A store that encodes what it is handed, as the durable store will.
#[derive(Default)]
struct EncodingStore {
    inner: MemoryStore,
    encoded: Log<String>,
}

sagaflow_core::forward_store!(EncodingStore => inner: RunStore with {
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError> {
        let input = (run.input_codec.encode)(run.input).map_err(StoreError::Backend)?;
        self.encoded.push(format!("input {input}"));
        self.inner.create_run(run).await
    }

    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError> {
        if let Change::StepCompleted {
            step,
            output,
            codec,
            ..
        } = change
        {
            let text = (codec.encode)(*output).map_err(StoreError::Backend)?;
            let back = (codec.decode)(&text).map_err(StoreError::Backend)?;
            let again = (codec.encode)(&*back).map_err(StoreError::Backend)?;
            assert_eq!(text, again, "the codec round-trips");
            self.encoded.push(format!("{step} {text}"));
        }
        self.inner.record(run_id, change).await
    }
});
sagaflow_core::forward_store!(EncodingStore => inner: LeaseStore, SignalStore, EventLog, Retention, QueueStore);

#[tokio::test]
async fn the_store_can_encode_the_input_and_outputs_it_is_handed() {
    let store = Arc::new(EncodingStore::default());
    let engine = Engine::builder().store(store.clone()).build();
    run(&engine, &two_steps(Arc::default()), "r", 1)
        .await
        .expect("completes");
    assert_eq!(store.encoded.items(), ["input 1", "a 2", "b 4"]);
}

/// A store that logs what the engine asks of it: each creation's first step, and each start
/// recorded by a change of its own (alone or after a completion).
#[derive(Default)]
struct CallStore {
    inner: MemoryStore,
    calls: Log<String>,
}

sagaflow_core::forward_store!(CallStore => inner: RunStore with {
    async fn create_run(&self, run: &NewRun<'_>) -> Result<Created, StoreError> {
        self.calls.push(format!("create {} {:?}", run.run_id, run.first_step));
        self.inner.create_run(run).await
    }

    async fn record(&self, run_id: &RunId, change: &Change<'_>) -> Result<(), StoreError> {
        if let Change::StepStarted { step, attempt } = change {
            self.calls.push(format!("start {run_id} {step} {attempt}"));
        }
        self.inner.record(run_id, change).await
    }
});
sagaflow_core::forward_store!(CallStore => inner: LeaseStore, SignalStore, EventLog, Retention, QueueStore);

/// A run's creation carries its first step's start when the engine starts that step at once
/// (`NewRun::first_step`): the step's first attempt then records no start of its own, its
/// retry does, and the store's history is the same as if it had. Not for a guarded first
/// step (its guard may skip it), an at-most-once one (a start recorded before its attempt
/// began would keep it from ever running after a crash), nor a run of two first steps.
#[tokio::test]
async fn a_run_s_creation_carries_its_first_step_s_start() {
    let store = Arc::new(CallStore::default());
    let engine = Engine::builder().store(store.clone()).build();
    let flaky = Arc::new(AtomicBool::new(true));
    let mut b = Builder::<u32>::new("Chain");
    let input = b.input();
    let retried = StepOptions::new().retry(policy(0, 1.0, None, 2));
    let a = b.step("a", retried, (input,), move |_, (x,)| {
        let fail = flaky.swap(false, Ordering::SeqCst);
        let x = *x;
        async move {
            if fail {
                return Err(StepError::new("once"));
            }
            Ok::<_, StepError>(x + 1)
        }
    });
    let second = b.step("b", StepOptions::new(), (a,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x * 2) }
    });
    let chain = b.build_with_output(second);
    assert_eq!(
        *run(&engine, &chain, "chain", 1)
            .await
            .expect("completes")
            .output,
        4
    );

    let mut b = Builder::<u32>::new("Guarded");
    let input = b.input();
    b.step_when(
        "g",
        StepOptions::new(),
        (input,),
        |_| true,
        |_, (x,)| {
            let x = *x;
            async move { Ok::<_, StepError>(x) }
        },
    );
    let guarded = b.build();
    run(&engine, &guarded, "guarded", 1)
        .await
        .expect("completes");

    let mut b = Builder::<u32>::new("Once");
    let input = b.input();
    let once = b.step(
        "o",
        StepOptions::new().at_most_once(),
        (input,),
        |_, (x,)| {
            let x = *x;
            async move { Ok::<_, StepError>(x) }
        },
    );
    let once = b.build_with_output(once);
    run(&engine, &once, "once", 1).await.expect("completes");

    let mut b = Builder::<u32>::new("Two");
    let input = b.input();
    let left = b.step("l", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x) }
    });
    let right = b.step("r", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x) }
    });
    let both = b.step("both", StepOptions::new(), (left, right), |_, (l, r)| {
        let sum = *l + *r;
        async move { Ok::<_, StepError>(sum) }
    });
    let two = b.build_with_output(both);
    run(&engine, &two, "two", 1).await.expect("completes");

    let calls = store.calls.items();
    let of = |run: &str| -> Vec<&str> {
        calls
            .iter()
            .filter(|c| c.split(' ').nth(1) == Some(run))
            .map(String::as_str)
            .collect()
    };
    assert_eq!(
        of("chain"),
        [
            "create chain Some(\"a\")",
            "start chain a 2",
            "start chain b 1"
        ]
    );
    assert_eq!(of("guarded"), ["create guarded None", "start guarded g 1"]);
    assert_eq!(of("once"), ["create once None", "start once o 1"]);
    let two = of("two");
    assert_eq!(two[0], "create two None");
    assert!(
        two.contains(&"start two l 1") && two.contains(&"start two r 1"),
        "{two:?}"
    );
    assert_eq!(
        store.inner.changes(&RunId::from("chain")).expect("kept")[..3],
        [
            started("a", 1),
            RecordedChange::StepRetrying {
                step: "a".into(),
                attempt: 1,
                error: StepError::new("once"),
                delay: ms(0),
            },
            started("a", 2),
        ]
    );
}
