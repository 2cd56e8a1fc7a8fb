//! The engine's scheduling, failure handling, cancellation and idempotency.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Log, changes, engine_with_store, ms, run};
use sagaflow_core::runtime::{
    Builder, DefinitionError, Engine, EngineError, RecordedChange, RunError, RunId, StepError,
    StepStatus,
};
use sagaflow_core::{OnError, StepOptions};
use tokio::sync::{Barrier, Notify};
use tokio::time::Instant;

/// Two steps that can only finish if both run at the same time.
fn overlapping() -> sagaflow_core::runtime::Definition<(), ()> {
    let barrier = Arc::new(Barrier::new(2));
    let mut b = Builder::<()>::new("Overlap");
    for name in ["left", "right"] {
        let barrier = Arc::clone(&barrier);
        b.step(name, StepOptions::new(), (), move |_, ()| {
            let barrier = Arc::clone(&barrier);
            async move {
                tokio::time::timeout(Duration::from_secs(5), barrier.wait())
                    .await
                    .map(|_| ())
                    .map_err(|_| StepError::permanent("the other step did not run alongside"))
            }
        });
    }
    b.build()
}

#[tokio::test(start_paused = true)]
async fn independent_steps_overlap_in_time() {
    let report = run(&Engine::ephemeral(), &overlapping(), "r", ())
        .await
        .expect("both steps meet at the barrier");
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Completed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_steps_overlap_on_a_multi_threaded_runtime() {
    let report = run(&Engine::ephemeral(), &overlapping(), "r", ())
        .await
        .expect("both steps meet at the barrier");
    assert_eq!(report.steps.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_step_starts_when_its_own_inputs_are_ready() {
    let log: Log<(&'static str, Instant)> = Log::new();
    let mut b = Builder::<()>::new("Dataflow");
    let l = log.clone();
    let slow = b.step("slow", StepOptions::new(), (), move |_, ()| {
        let l = l.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            l.push(("slow ends", Instant::now()));
            Ok::<_, StepError>(1_u32)
        }
    });
    let fast = b.step("fast", StepOptions::new(), (), |_, ()| async {
        tokio::time::sleep(ms(10)).await;
        Ok::<_, StepError>(2_u32)
    });
    let l = log.clone();
    let after_fast = b.step("after_fast", StepOptions::new(), (fast,), move |_, (x,)| {
        l.push(("after_fast starts", Instant::now()));
        async move { Ok::<_, StepError>(*x + 1) }
    });
    let join = b.step(
        "join",
        StepOptions::new(),
        (slow, after_fast),
        |_, (a, b)| async move { Ok::<_, StepError>(*a + *b) },
    );
    let def = b.build_with_output(join);
    let start = Instant::now();
    let report = run(&Engine::ephemeral(), &def, "r", ())
        .await
        .expect("completes");
    assert_eq!(*report.output, 4);
    let events = log.items();
    assert_eq!(events[0].0, "after_fast starts", "{events:?}");
    assert_eq!(events[0].1 - start, ms(10));
    assert_eq!(events[1].0, "slow ends");
    assert_eq!(events[1].1 - start, Duration::from_secs(1));
}

#[tokio::test]
async fn values_flow_along_a_diamond_in_argument_order() {
    let mut b = Builder::<u32>::new("Diamond");
    let input = b.input();
    let extract = b.step(
        "extract",
        StepOptions::new(),
        (input,),
        |_, (x,)| async move { Ok::<_, StepError>(*x * 10) },
    );
    let clean = b.step(
        "clean",
        StepOptions::new(),
        (extract,),
        |_, (x,)| async move { Ok::<_, StepError>(format!("clean {x}")) },
    );
    let audit = b.step(
        "audit",
        StepOptions::new(),
        (extract,),
        |_, (x,)| async move { Ok::<_, StepError>(*x + 1) },
    );
    let load = b.step(
        "load",
        StepOptions::new(),
        (audit, clean, input),
        |_, (a, c, i)| async move { Ok::<_, StepError>(format!("{c}, audit {a}, input {i}")) },
    );
    let def = b.build_with_output(load);
    let report = run(&Engine::ephemeral(), &def, "r", 4).await.expect("runs");
    assert_eq!(*report.output, "clean 40, audit 41, input 4");
    let names: Vec<&str> = report.steps.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["extract", "clean", "audit", "load"]);
    assert_eq!(&*report.workflow, "Diamond");
    assert_eq!(report.run_id, RunId::from("r"));
}

#[tokio::test(start_paused = true)]
async fn max_concurrent_steps_bounds_the_attempts_running_at_once() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut b = Builder::<()>::new("Wide");
    for i in 0..10 {
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        b.step(format!("s{i}"), StepOptions::new(), (), move |_, ()| {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(ms(10)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, StepError>(())
            }
        });
    }
    let def = b.build();
    let engine = Engine::builder().max_concurrent_steps(2).build();
    let start = Instant::now();
    run(&engine, &def, "r", ()).await.expect("completes");
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert_eq!(Instant::now() - start, ms(50), "five rounds of two");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_step_fails_its_run_and_other_runs_go_on() {
    let mut b = Builder::<()>::new("Panics");
    b.step("boom", StepOptions::new(), (), |ctx, ()| async move {
        if ctx.attempt() == 1 {
            panic!("boom at {}", 42);
        }
        Ok::<_, StepError>(())
    });
    let panics = b.build();
    let mut b = Builder::<()>::new("PanicsEarly");
    b.step(
        "early",
        StepOptions::new(),
        (),
        |_, ()| -> std::future::Ready<Result<(), StepError>> { panic!("before the future") },
    );
    let panics_early = b.build();
    let mut b = Builder::<u32>::new("Fine");
    let input = b.input();
    let slow = b.step("slow", StepOptions::new(), (input,), |_, (x,)| async move {
        tokio::time::sleep(ms(100)).await;
        Ok::<_, StepError>(*x + 1)
    });
    let fine = b.build_with_output(slow);

    let engine = Engine::ephemeral();
    let fine_run = engine.start(&fine, "fine", 1).await.expect("starts");
    let error = run(&engine, &panics, "boom", ()).await.expect_err("fails");
    let RunError::StepFailed {
        step,
        attempts,
        error,
        ..
    } = error
    else {
        panic!("not a step failure: {error:?}");
    };
    assert_eq!((step.as_str(), attempts), ("boom", 1));
    assert!(error.is_permanent());
    assert_eq!(error.message(), "step `boom` panicked: boom at 42");
    let error = run(&engine, &panics_early, "early", ())
        .await
        .expect_err("fails");
    assert!(
        error.to_string().contains("panicked: before the future"),
        "{error}"
    );
    assert_eq!(
        *fine_run
            .wait()
            .await
            .expect("the other run completes")
            .output,
        2
    );
}

#[tokio::test]
async fn on_error_continue_lets_the_run_finish_with_none_downstream() {
    let mut b = Builder::<()>::new("Continue");
    let audit = b.step(
        "audit",
        StepOptions::new().on_error(OnError::Continue),
        (),
        |_, ()| async { Err::<u32, _>(StepError::permanent("audit service down")) },
    );
    let load = b.step(
        "load",
        StepOptions::new(),
        (audit.optional(),),
        |_, (audit,)| async move {
            Ok::<_, StepError>(match audit {
                Some(a) => format!("audited {a}"),
                None => "no audit".to_owned(),
            })
        },
    );
    let def = b.build_with_output(load);
    let (engine, store) = engine_with_store();
    let report = run(&engine, &def, "r", ())
        .await
        .expect("the run completes");
    assert_eq!(*report.output, "no audit");
    let audit = report.step("audit").expect("reported");
    assert_eq!(audit.status, StepStatus::Failed);
    assert_eq!(
        audit.error.as_ref().map(StepError::message),
        Some("audit service down")
    );
    assert_eq!(
        report.step("load").map(|s| s.status),
        Some(StepStatus::Completed)
    );
    assert_eq!(
        changes(&store, "r").last(),
        Some(&RecordedChange::RunCompleted)
    );
}

#[tokio::test]
async fn a_false_guard_skips_the_step_and_dependents_see_none() {
    let ran = Arc::new(AtomicBool::new(false));
    let mut b = Builder::<u32>::new("Guarded");
    let input = b.input();
    let flag = Arc::clone(&ran);
    let clean = b.step_when(
        "clean",
        StepOptions::new(),
        (input,),
        |(rows,)| *rows > 0,
        move |_, (rows,)| {
            flag.store(true, Ordering::SeqCst);
            async move { Ok::<_, StepError>(*rows * 2) }
        },
    );
    let load = b.step(
        "load",
        StepOptions::new(),
        (clean.optional(),),
        |_, (clean,)| async move { Ok::<_, StepError>(clean.map(|c| *c)) },
    );
    let def = b.build_with_output(load);
    let (engine, store) = engine_with_store();

    let report = run(&engine, &def, "empty", 0).await.expect("completes");
    assert_eq!(*report.output, None);
    assert!(!ran.load(Ordering::SeqCst), "a skipped step never runs");
    let clean = report.step("clean").expect("reported");
    assert_eq!((clean.status, clean.attempts), (StepStatus::Skipped, 0));
    assert_eq!(
        changes(&store, "empty")[0],
        RecordedChange::StepSkipped {
            step: "clean".into()
        }
    );

    let report = run(&engine, &def, "rows", 3).await.expect("completes");
    assert_eq!(*report.output, Some(6));
}

#[tokio::test(start_paused = true)]
async fn a_failed_step_stops_the_run_and_aborts_the_others() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut b = Builder::<()>::new("Fails");
    let flag = Arc::clone(&dropped);
    b.step("long", StepOptions::new(), (), move |_, ()| {
        let guard = DropFlag(Arc::clone(&flag));
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok::<_, StepError>(())
        }
    });
    let bad = b.step("bad", StepOptions::new(), (), |_, ()| async {
        tokio::time::sleep(ms(10)).await;
        Err::<u32, _>(StepError::new("no luck"))
    });
    b.step("after", StepOptions::new(), (bad,), |_, (_,)| async {
        Ok::<_, StepError>(())
    });
    let def = b.build();
    let (engine, store) = engine_with_store();
    let error = run(&engine, &def, "r", ()).await.expect_err("fails");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the running step was dropped"
    );
    let RunError::StepFailed {
        step,
        attempts,
        error: cause,
        steps,
        ..
    } = &error
    else {
        panic!("not a step failure: {error:?}");
    };
    assert_eq!(
        (step.as_str(), *attempts, cause.message()),
        ("bad", 1, "no luck")
    );
    let statuses: Vec<StepStatus> = steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [StepStatus::Running, StepStatus::Failed, StepStatus::NotRun]
    );
    assert_eq!(steps[1].duration, Some(ms(10)));
    assert!(matches!(
        changes(&store, "r").last(),
        Some(RecordedChange::RunFailed { error }) if error.contains("no luck")
    ));
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_a_run_and_drops_its_running_step() {
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Notify::new());
    let mut b = Builder::<()>::new("Long");
    let (flag, notify) = (Arc::clone(&dropped), Arc::clone(&started));
    let long = b.step("long", StepOptions::new(), (), move |_, ()| {
        let guard = DropFlag(Arc::clone(&flag));
        let notify = Arc::clone(&notify);
        async move {
            let _guard = guard;
            notify.notify_one();
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok::<_, StepError>(1_u8)
        }
    });
    b.step("next", StepOptions::new(), (long,), |_, (_,)| async {
        Ok::<_, StepError>(())
    });
    let def = b.build();
    let (engine, store) = engine_with_store();

    let handle = engine.start(&def, "by-handle", ()).await.expect("starts");
    started.notified().await;
    handle.cancel();
    let error = handle.wait().await.expect_err("cancelled");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the step's future was dropped"
    );
    let RunError::Cancelled { steps, .. } = &error else {
        panic!("not cancelled: {error:?}");
    };
    assert_eq!(
        (steps[0].status, steps[0].attempts),
        (StepStatus::Running, 1)
    );
    assert_eq!(steps[1].status, StepStatus::NotRun);
    assert_eq!(
        changes(&store, "by-handle"),
        [
            RecordedChange::StepStarted {
                step: "long".into(),
                attempt: 1
            },
            RecordedChange::RunCancelled
        ]
    );

    dropped.store(false, Ordering::SeqCst);
    let id = RunId::from("by-engine");
    let handle = engine.start(&def, id.clone(), ()).await.expect("starts");
    started.notified().await;
    assert!(engine.cancel(&id));
    assert!(matches!(
        handle.wait().await,
        Err(RunError::Cancelled { .. })
    ));
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!engine.cancel(&id), "a finished run cannot be cancelled");
    assert!(!engine.cancel(&RunId::from("unknown")));
}

#[tokio::test(start_paused = true)]
async fn starting_an_existing_id_returns_the_same_run() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut b = Builder::<u32>::new("Once");
    let input = b.input();
    let counter = Arc::clone(&calls);
    let out = b.step("count", StepOptions::new(), (input,), move |_, (x,)| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(ms(100)).await;
            Ok::<_, StepError>(*x * 2)
        }
    });
    let def = b.build_with_output(out);
    let (engine, store) = engine_with_store();

    let first = engine.start(&def, "order-1", 21).await.expect("starts");
    let second = engine.start(&def, "order-1", 99).await.expect("joins");
    assert_eq!(second.run_id(), &RunId::from("order-1"));
    let (a, b) = tokio::join!(first.wait(), second.wait());
    let (a, b) = (a.expect("completes"), b.expect("completes"));
    assert!(Arc::ptr_eq(&a.output, &b.output), "one shared outcome");
    assert_eq!(*a.output, 42);
    let again = run(&engine, &def, "order-1", 7)
        .await
        .expect("finished run");
    assert_eq!(*again.output, 42);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the step ran once");
    assert_eq!(store.len(), 1);

    let mut other = Builder::<u32>::new("Other");
    let input = other.input();
    let o = other.step("o", StepOptions::new(), (input,), |_, (x,)| async move {
        Ok::<_, StepError>(*x)
    });
    let other = other.build_with_output(o);
    let conflict = engine
        .start(&other, "order-1", 1)
        .await
        .expect_err("conflict");
    assert!(
        matches!(&conflict, EngineError::RunIdConflict { workflow, existing, .. }
            if workflow == "Other" && existing == "Once"),
        "{conflict:?}"
    );
}

#[tokio::test]
async fn an_id_known_only_to_the_store_is_a_conflict_or_not_resumable() {
    let mut b = Builder::<()>::new("W");
    b.step("a", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(())
    });
    let def = b.build();
    let mut b = Builder::<()>::new("V");
    b.step("a", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(())
    });
    let other = b.build();
    let (engine, store) = engine_with_store();
    run(&engine, &def, "r", ()).await.expect("completes");
    let second = Engine::builder().store(store).build();
    assert!(matches!(
        second.start(&other, "r", ()).await,
        Err(EngineError::RunIdConflict { .. })
    ));
    assert!(matches!(
        second.start(&def, "r", ()).await,
        Err(EngineError::RunNotResumable { .. })
    ));
    // A failed start leaves nothing behind: the same engine can still start other runs.
    run(&second, &def, "fresh", ()).await.expect("completes");
}

#[tokio::test]
async fn an_invalid_definition_is_refused_with_every_problem() {
    let mut b = Builder::<()>::new("Broken");
    let guarded = b.step_when(
        "maybe",
        StepOptions::new(),
        (),
        |()| true,
        |_, ()| async { Ok::<_, StepError>(1_u8) },
    );
    b.step("needs", StepOptions::new(), (guarded,), |_, (_,)| async {
        Ok::<_, StepError>(())
    });
    b.step(
        "needs_too",
        StepOptions::new(),
        (guarded,),
        |_, (_,)| async { Ok::<_, StepError>(()) },
    );
    let error = Engine::ephemeral()
        .start(&b.build(), "r", ())
        .await
        .expect_err("invalid");
    let EngineError::InvalidDefinition { workflow, problems } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(workflow, "Broken");
    assert_eq!(problems.len(), 2);
    assert!(
        problems
            .iter()
            .all(|p| matches!(p, DefinitionError::RequiredOptional { .. }))
    );

    let mut b = Builder::<()>::new("MaybeNoOutput");
    let out = b.step_when(
        "maybe",
        StepOptions::new(),
        (),
        |()| false,
        |_, ()| async { Ok::<_, StepError>(1_u8) },
    );
    let error = Engine::ephemeral()
        .start(&b.build_with_output(out), "r", ())
        .await
        .expect_err("invalid");
    assert!(
        matches!(&error, EngineError::InvalidDefinition { problems, .. }
            if matches!(problems.as_slice(), [DefinitionError::OptionalOutput { step }] if step == "maybe")),
        "{error:?}"
    );

    let mut b = Builder::<()>::new("BadDefaults");
    b.defaults(StepOptions::new().retry(sagaflow_core::RetryPolicy {
        jitter: 3.0,
        ..sagaflow_core::RetryPolicy::default()
    }));
    b.step("a", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(())
    });
    let error = Engine::ephemeral()
        .start(&b.build(), "r", ())
        .await
        .expect_err("invalid");
    assert!(
        matches!(&error, EngineError::InvalidDefinition { problems, .. }
            if matches!(problems.as_slice(), [DefinitionError::Policy { .. }])),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_wait_are_send() {
    let mut b = Builder::<u64>::new("Send");
    let input = b.input();
    let out = b.step(
        "inc",
        StepOptions::new(),
        (input,),
        |ctx, (x,)| async move {
            tokio::task::yield_now().await;
            Ok::<_, StepError>(format!("{}:{}", ctx.idempotency_key(), *x + 1))
        },
    );
    let def = b.build_with_output(out);
    let engine = Engine::ephemeral();
    let handle = tokio::spawn({
        let engine = engine.clone();
        async move { engine.start(&def, "sent", 1).await }
    })
    .await
    .expect("the start task runs")
    .expect("starts");
    let report = tokio::spawn(handle.wait())
        .await
        .expect("the wait task runs")
        .expect("completes");
    assert_eq!(*report.output, "sent:inc:2");
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let mut b = Builder::<()>::new("W");
    b.step("a", StepOptions::new(), (), |_, ()| async {
        Ok::<_, StepError>(())
    });
    let def = b.build();
    let engine = Engine::ephemeral();
    let result = futures_lite_block_on(engine.start(&def, "r", ()));
    assert!(matches!(result, Err(EngineError::NoRuntime)));
}

/// Polls a future to completion without a tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}
