//! Retries, backoff, jitter, per-attempt timeouts and deadlines, all under tokio's paused
//! clock: every instant below is exact, not "roughly after a sleep".

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Log, changes, engine_with_store, gaps, ms, policy, run};
use sagaflow_core::runtime::{
    Builder, Definition, Engine, MemoryStore, RecordedChange, RunError, StepError, StepStatus,
};
use sagaflow_core::{RetryPolicy, StepOptions};
use tokio::time::Instant;

/// A one-step workflow whose step logs each attempt's start, then fails until attempt
/// `succeed_at` (never if 0) with a retryable error, sleeping `work` first.
fn flaky(
    options: StepOptions,
    succeed_at: u32,
    work: Duration,
) -> (Definition<(), u32>, Log<Instant>) {
    let log: Log<Instant> = Log::new();
    let mut b = Builder::<()>::new("Flaky");
    let l = log.clone();
    let out = b.step("flaky", options, (), move |ctx, ()| {
        l.push(Instant::now());
        async move {
            tokio::time::sleep(work).await;
            if ctx.attempt() == succeed_at {
                Ok(ctx.attempt())
            } else {
                Err(StepError::new(format!("attempt {} failed", ctx.attempt())))
            }
        }
    });
    (b.build_with_output(out), log)
}

fn step_failure(error: RunError) -> (u32, StepError) {
    match error {
        RunError::StepFailed {
            attempts, error, ..
        } => (attempts, error),
        other => panic!("not a step failure: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_configured_backoff() {
    let options = StepOptions::new().retry(policy(100, 2.0, None, 5));
    let (def, log) = flaky(options, 4, Duration::ZERO);
    let (engine, store) = engine_with_store();
    let report = run(&engine, &def, "r", ())
        .await
        .expect("succeeds on attempt 4");
    assert_eq!(*report.output, 4);
    assert_eq!(gaps(&log.items()), [ms(100), ms(200), ms(400)]);
    let step = report.step("flaky").expect("reported");
    assert_eq!(
        (step.status, step.attempts, step.duration),
        (StepStatus::Completed, 4, Some(ms(700)))
    );
    let delays: Vec<Duration> = changes(&store, "r")
        .into_iter()
        .filter_map(|c| match c {
            RecordedChange::StepRetrying { delay, .. } => Some(delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [ms(100), ms(200), ms(400)]);
}

#[tokio::test(start_paused = true)]
async fn the_maximum_interval_caps_the_delays_and_attempts_run_out() {
    let options = StepOptions::new().retry(policy(100, 10.0, Some(300), 4));
    let (def, log) = flaky(options, 0, Duration::ZERO);
    let error = run(&Engine::ephemeral(), &def, "r", ())
        .await
        .expect_err("never succeeds");
    assert_eq!(gaps(&log.items()), [ms(100), ms(300), ms(300)]);
    let (attempts, error) = step_failure(error);
    assert_eq!((attempts, error.message()), (4, "attempt 4 failed"));
}

/// The delays a seeded engine waits before the retries of one run.
async fn jittered_delays(seed: u64) -> Vec<Duration> {
    let options = StepOptions::new().retry(RetryPolicy {
        jitter: 0.5,
        ..policy(100, 1.0, None, 6)
    });
    let (def, log) = flaky(options, 0, Duration::ZERO);
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder()
        .store(store.clone())
        .jitter_seed(seed)
        .build();
    let _ = run(&engine, &def, "jittery", ()).await;
    let delays: Vec<Duration> = changes(&store, "jittery")
        .into_iter()
        .filter_map(|c| match c {
            RecordedChange::StepRetrying { delay, .. } => Some(delay),
            _ => None,
        })
        .collect();
    // The engine waited the delays it recorded (the paused clock rounds up to the millisecond).
    for (gap, delay) in gaps(&log.items()).into_iter().zip(&delays) {
        assert!(
            gap >= *delay && gap <= *delay + ms(1),
            "{gap:?} vs {delay:?}"
        );
    }
    delays
}

#[tokio::test(start_paused = true)]
async fn a_seeded_jitter_repeats_its_delays_within_the_band() {
    let first = jittered_delays(7).await;
    assert_eq!(first.len(), 5);
    assert_eq!(first, jittered_delays(7).await, "same seed, same delays");
    assert_ne!(
        first,
        jittered_delays(8).await,
        "another seed, other delays"
    );
    assert!(
        first.iter().all(|d| (ms(50)..ms(150)).contains(d)),
        "±50% around 100ms: {first:?}"
    );
    assert!(first.iter().any(|d| *d != ms(100)), "jitter applied");
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut b = Builder::<()>::new("Permanent");
    let counter = Arc::clone(&calls);
    b.step(
        "refused",
        StepOptions::new().retry(policy(10, 2.0, None, 5)),
        (),
        move |_, ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(StepError::permanent("card declined")) }
        },
    );
    let error = run(&Engine::ephemeral(), &b.build(), "r", ())
        .await
        .expect_err("fails");
    let (attempts, error) = step_failure(error);
    assert_eq!((attempts, error.message()), (1, "card declined"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried() {
    let options = StepOptions::new()
        .timeout(Duration::from_secs(1))
        .retry(policy(100, 2.0, None, 3));
    // Attempt 1 sleeps past the timeout; attempt 2 returns at once.
    let log: Log<Instant> = Log::new();
    let mut b = Builder::<()>::new("Slow");
    let l = log.clone();
    let out = b.step("slow", options, (), move |ctx, ()| {
        l.push(Instant::now());
        async move {
            if ctx.attempt() == 1 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, StepError>(ctx.attempt())
        }
    });
    let def = b.build_with_output(out);
    let (engine, store) = engine_with_store();
    let report = run(&engine, &def, "r", ())
        .await
        .expect("attempt 2 succeeds");
    assert_eq!(*report.output, 2);
    assert_eq!(gaps(&log.items()), [ms(1_100)]);
    let retried = changes(&store, "r")
        .into_iter()
        .find_map(|c| match c {
            RecordedChange::StepRetrying { error, .. } => Some(error),
            _ => None,
        })
        .expect("a retry was recorded");
    assert_eq!(retried.message(), "attempt 1 timed out after 1s");
    assert!(!retried.is_permanent());
}

#[tokio::test(start_paused = true)]
async fn timeouts_count_against_the_attempts() {
    let options = StepOptions::new()
        .timeout(Duration::from_secs(1))
        .retry(policy(100, 2.0, None, 2));
    let (def, _) = flaky(options, 1, Duration::from_secs(60));
    let start = Instant::now();
    let error = run(&Engine::ephemeral(), &def, "r", ())
        .await
        .expect_err("every attempt times out");
    assert_eq!(Instant::now() - start, ms(2_100));
    let (attempts, error) = step_failure(error);
    assert_eq!(
        (attempts, error.message()),
        (2, "attempt 2 timed out after 1s")
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_retries_that_would_end_past_it() {
    let options = StepOptions::new()
        .deadline(Duration::from_secs(5))
        .retry(policy(1_000, 2.0, None, 0));
    let (def, log) = flaky(options, 0, Duration::ZERO);
    let start = Instant::now();
    let error = run(&Engine::ephemeral(), &def, "r", ())
        .await
        .expect_err("the deadline ends it");
    // Attempts at 0s, 1s and 3s; the next delay (4s) would end at 7s, past the 5s deadline.
    assert_eq!(gaps(&log.items()), [ms(1_000), ms(2_000)]);
    assert_eq!(Instant::now() - start, ms(3_000));
    let (attempts, error) = step_failure(error);
    assert_eq!(attempts, 3);
    assert!(error.is_permanent());
    assert!(
        error.message().contains("deadline of 5s")
            && error.message().contains("3 attempt(s)")
            && error.message().contains("attempt 3 failed"),
        "{}",
        error.message()
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_a_running_attempt() {
    let options = StepOptions::new()
        .timeout(Duration::from_secs(1))
        .deadline(ms(2_500))
        .retry(policy(100, 1.0, None, 0));
    let (def, log) = flaky(options, 0, Duration::from_secs(60));
    let start = Instant::now();
    let error = run(&Engine::ephemeral(), &def, "r", ())
        .await
        .expect_err("the deadline ends it");
    // Attempts at 0s and 1.1s time out; attempt 3 starts at 2.2s and is cut at 2.5s.
    assert_eq!(gaps(&log.items()), [ms(1_100), ms(1_100)]);
    assert_eq!(Instant::now() - start, ms(2_500));
    let (attempts, error) = step_failure(error);
    assert_eq!(attempts, 3);
    assert!(error.is_permanent());
    assert_eq!(
        error.message(),
        "deadline of 2.5s reached during attempt 3; 3 attempt(s) made"
    );
}
