//! One step of a run: its guard, then its attempts, with retries, timeouts and a deadline.
//!
//! Kept apart from the run's task management because this is where a step's policy lives:
//! what counts as a failure, which failures are retried and after how long, and which end a
//! step for good. Every outcome is recorded through the store before the step is over.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::{Carry, Run, StepCell};
use crate::runtime::context::{RunId, StepContext};
use crate::runtime::definition::{StepDef, Value};
use crate::runtime::error::{StepError, StoreError};
use crate::runtime::store::Change;

/// How a step ended, as its task reports it.
pub(super) enum StepEnd {
    Completed(Value),
    Skipped,
    Failed { attempts: u32, error: StepError },
    Store(StoreError),
}

/// How an attempt ended, short of success.
enum AttemptError {
    Step(StepError),
    Store(StoreError),
}

/// A step's inputs; inline for the usual few, so gathering them allocates nothing.
enum Inputs {
    Inline([Option<Value>; 4], usize),
    Heap(Vec<Option<Value>>),
}

impl Inputs {
    fn as_slice(&self) -> &[Option<Value>] {
        match self {
            Inputs::Inline(values, len) => values.get(..*len).unwrap_or_default(),
            Inputs::Heap(values) => values,
        }
    }
}

/// The step's inputs, in argument order: slot 0 is the run's input, slot `i + 1` the output
/// of step `i` (absent if that step was skipped or failed with `on_error = continue`).
fn inputs(run: &Run, def: &StepDef) -> Inputs {
    let value = |slot: usize| match slot {
        0 => Some(Arc::clone(&run.input)),
        _ => run.steps.get(slot - 1).and_then(StepCell::output).cloned(),
    };
    let slots = def.inputs();
    if slots.len() <= 4 {
        let mut values: [Option<Value>; 4] = Default::default();
        for (value_of, &slot) in values.iter_mut().zip(slots) {
            *value_of = value(slot);
        }
        Inputs::Inline(values, slots.len())
    } else {
        Inputs::Heap(slots.iter().map(|&slot| value(slot)).collect())
    }
}

/// Runs a step's guard, then its attempts until one succeeds or the step fails for good.
/// `carry` holds what the previous step run by this task left: the time it ended (which is
/// now), so that the step's start costs no clock read, and its permit, which this step takes
/// over unless attempts are queued for one; a successful attempt leaves its permit there for
/// the next step. When the first attempt begins, its time is put in `started`.
pub(super) async fn run_step<'r>(
    run: &'r Run,
    index: usize,
    def: &StepDef,
    cell: &StepCell,
    carry: &mut Carry<'r>,
    started: &mut Option<Instant>,
) -> StepEnd {
    let mut clock = carry.clock.take();
    let mut held = carry.permit.take();
    // The previous step's completion, recorded with this step's first start.
    let mut deferred = carry.deferred.take();
    let name = &cell.name;
    let inputs = inputs(run, def);
    let inputs = inputs.as_slice();
    if def.is_guarded() {
        clock = None;
        held = None;
        if let Some(done) = deferred.take()
            && let Err(error) = super::flush(run, done).await
        {
            return StepEnd::Store(error);
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| def.guard(inputs))) {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::debug!("step skipped by its guard");
                return match run.record(&Change::StepSkipped { step: name }).await {
                    Ok(()) => StepEnd::Skipped,
                    Err(error) => StepEnd::Store(error),
                };
            }
            Ok(Err(error)) => return fail(run, name, 0, error).await,
            Err(payload) => {
                let error = panicked(name, "'s guard", payload.as_ref());
                return fail(run, name, 0, error).await;
            }
        }
    }

    let options = def.options();
    let policy = options.retry_policy();
    let mut deadline_at: Option<Instant> = None;
    // A step taken up after a crash counts its attempts on from those it made before.
    let mut attempt: u32 = cell.attempts.load(Ordering::Acquire);
    let mut first = true;
    loop {
        attempt = attempt.saturating_add(1);
        // The previous step's permit, if no attempt is queued for it; else a free permit,
        // taken with one atomic operation; only a wait needs a future.
        let handed = held.take().filter(|_| run.engine.permits.unqueued());
        let permit = match handed.or_else(|| run.engine.permits.take_now()) {
            Some(permit) => permit,
            None => {
                clock = None;
                // Not left pending across a wait, where the run could be stopped.
                if let Some(done) = deferred.take()
                    && let Err(error) = super::flush(run, done).await
                {
                    return StepEnd::Store(error);
                }
                run.engine.permits.take().await
            }
        };
        if first {
            first = false;
            let now = clock.take().unwrap_or_else(Instant::now);
            *started = Some(now);
            deadline_at = options.deadline.and_then(|d| now.checked_add(d));
        }
        cell.attempts.store(attempt, Ordering::Release);
        let span = tracing::debug_span!("attempt", run_id = %run.run_id, step = %name, attempt);
        let limits = Limits {
            timeout: options.timeout,
            deadline: options.deadline.zip(deadline_at),
        };
        let result = run_attempt(run, def, name, attempt, inputs, limits, deferred.take())
            .instrument(span)
            .await;
        #[cfg(feature = "fault-injection")]
        if result.is_ok() {
            crate::fault::hit(crate::fault::Point::AfterEffect);
        }
        let error = match result {
            Ok(output) if !run.engine.records => {
                carry.permit = Some(permit);
                return StepEnd::Completed(output);
            }
            Ok(output) => {
                // Recorded by whoever runs next (see `Carry::deferred`), before any
                // dependent starts.
                carry.permit = Some(permit);
                carry.deferred = Some(super::Deferred {
                    index,
                    attempt,
                    output: Arc::clone(&output),
                });
                return StepEnd::Completed(output);
            }
            Err(AttemptError::Store(error)) => return StepEnd::Store(error),
            Err(AttemptError::Step(error)) => {
                drop(permit);
                error
            }
        };
        if error.is_permanent() || !policy.allows_attempt_after(attempt) {
            return fail(run, name, attempt, error).await;
        }
        let unit = if policy.jitter == 0.0 {
            0.5
        } else {
            jitter_unit(run.engine.jitter_seed, &run.run_id, name, attempt)
        };
        let delay = policy.delay_with_jitter(attempt, unit);
        if let Some((deadline, at)) = options.deadline.zip(deadline_at)
            && Instant::now()
                .checked_add(delay)
                .is_none_or(|next| next >= at)
        {
            let error = StepError::permanent(format!(
                "deadline of {deadline:?} reached after {attempt} attempt(s): no time left for another; last error: {error}"
            ));
            return fail(run, name, attempt, error).await;
        }
        tracing::debug!(attempt, error = %error, ?delay, "attempt failed; retrying");
        let change = Change::StepRetrying {
            step: name,
            attempt,
            error: &error,
            delay,
        };
        if let Err(error) = run.record(&change).await {
            return StepEnd::Store(error);
        }
        tokio::time::sleep(delay).await;
    }
}

/// The time limits of one attempt.
#[derive(Clone, Copy)]
struct Limits {
    /// Per attempt.
    timeout: Option<Duration>,
    /// Over all attempts: the configured length, and when it ends.
    deadline: Option<(Duration, Instant)>,
}

async fn run_attempt(
    run: &Run,
    def: &StepDef,
    name: &Arc<str>,
    attempt: u32,
    inputs: &[Option<Value>],
    limits: Limits,
    deferred: Option<super::Deferred>,
) -> Result<Value, AttemptError> {
    if run.engine.records {
        let started = Change::StepStarted {
            step: name,
            attempt,
        };
        match deferred {
            None => run.record(&started).await,
            Some(done) => run.record_completed(&done, Some(&started)).await,
        }
        .map_err(AttemptError::Store)?;
    }
    let ctx = StepContext::new(run.run_id.clone(), Arc::clone(name), attempt)
        .with_signals(Arc::clone(&run.engine.signals) as _);
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| def.call(ctx, inputs))) {
        Ok(Ok(future)) => future,
        Ok(Err(error)) => return Err(AttemptError::Step(error)),
        Err(payload) => return Err(AttemptError::Step(panicked(name, "", payload.as_ref()))),
    };
    let future = AssertUnwindSafe(future).catch_unwind();
    let timeout_at = limits
        .timeout
        .and_then(|t| Instant::now().checked_add(t).map(|at| (at, t)));
    // The earlier limit cuts the attempt; on a tie the deadline wins, since it is final.
    let cut = match (timeout_at, limits.deadline) {
        (Some((t_at, t)), Some((_, d_at))) if t_at < d_at => Some((t_at, Cut::Timeout(t))),
        (_, Some((d, d_at))) => Some((d_at, Cut::Deadline(d))),
        (Some((t_at, t)), None) => Some((t_at, Cut::Timeout(t))),
        (None, None) => None,
    };
    let result = match cut {
        None => future.await,
        Some((at, cut)) => match tokio::time::timeout_at(at, future).await {
            Ok(result) => result,
            Err(_) => {
                let error = cut.error(attempt);
                tracing::debug!(error = %error, "attempt cut");
                return Err(AttemptError::Step(error));
            }
        },
    };
    match result {
        #[cfg(feature = "fault-injection")]
        Ok(Ok(_)) if crate::fault::twice() => {
            // The idempotency test mode: the step runs again, as after a crash between its
            // effect and its checkpoint, and the second output is the one kept.
            let ctx = StepContext::new(run.run_id.clone(), Arc::clone(name), attempt)
                .with_signals(Arc::clone(&run.engine.signals) as _);
            match def.call(ctx, inputs) {
                Ok(again) => again.await.map_err(AttemptError::Step),
                Err(error) => Err(AttemptError::Step(error)),
            }
        }
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(AttemptError::Step(error)),
        Err(payload) => Err(AttemptError::Step(panicked(name, "", payload.as_ref()))),
    }
}

#[derive(Clone, Copy)]
enum Cut {
    Timeout(Duration),
    Deadline(Duration),
}

impl Cut {
    fn error(self, attempt: u32) -> StepError {
        match self {
            Cut::Timeout(t) => StepError::new(format!("attempt {attempt} timed out after {t:?}")),
            Cut::Deadline(d) => StepError::permanent(format!(
                "deadline of {d:?} reached during attempt {attempt}; {attempt} attempt(s) made"
            )),
        }
    }
}

async fn fail(run: &Run, name: &str, attempts: u32, error: StepError) -> StepEnd {
    tracing::warn!(attempts, error = %error, "step failed");
    let change = Change::StepFailed {
        step: name,
        attempts,
        error: &error,
    };
    match run.record(&change).await {
        Ok(()) => StepEnd::Failed { attempts, error },
        Err(error) => StepEnd::Store(error),
    }
}

/// A panic as a permanent step error: retrying code that panicked rarely helps, and the
/// message keeps the payload so the cause is not lost.
fn panicked(name: &str, what: &str, payload: &(dyn std::any::Any + Send)) -> StepError {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.as_str()
    } else {
        "a non-text payload"
    };
    tracing::warn!(panic = text, "step panicked");
    StepError::permanent(format!("step `{name}`{what} panicked: {text}"))
}

/// A uniform draw in `[0, 1)` that depends only on the seed, the run, the step and the
/// attempt, so the same seed gives the same delays however the tasks were scheduled.
fn jitter_unit(seed: u64, run_id: &RunId, step: &str, attempt: u32) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(run_id.as_str().as_bytes());
    feed(&[0xff]);
    feed(step.as_bytes());
    feed(&[0xff]);
    feed(&attempt.to_le_bytes());
    fastrand::Rng::with_seed(hash).f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_draws_depend_on_every_part_of_the_key() {
        let id = RunId::from("r");
        let a = jitter_unit(1, &id, "s", 1);
        assert_eq!(a, jitter_unit(1, &id, "s", 1));
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, jitter_unit(2, &id, "s", 1));
        assert_ne!(a, jitter_unit(1, &"q".into(), "s", 1));
        assert_ne!(a, jitter_unit(1, &id, "t", 1));
        assert_ne!(a, jitter_unit(1, &id, "s", 2));
    }

    #[test]
    fn a_panic_payload_becomes_the_message() {
        let e = panicked("s", "", &"boom");
        assert_eq!(e.message(), "step `s` panicked: boom");
        assert!(e.is_permanent());
        let e = panicked("s", "'s guard", &String::from("bang"));
        assert_eq!(e.message(), "step `s`'s guard panicked: bang");
    }
}
