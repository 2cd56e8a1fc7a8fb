//! `Engine::shutdown` on the engine alone, on tokio's paused clock: what ends in the grace
//! period ends, what is still running at its end is cut, waits that would outlast the drain
//! end at once, and a draining engine starts nothing. (Two replicas on one store, and the
//! hand-over of the leases, are in the conformance suite: `conformance::replicas`.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sagaflow_core::runtime::{Builder, Definition, Engine, EngineError, RunError, StepError};
use sagaflow_core::{RetryPolicy, StepOptions};
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
