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
use crate::runtime::context::{StepContext, StepScope};
use crate::runtime::definition::{StepDef, Value};
use crate::runtime::error::{StepError, StoreError};
use crate::runtime::store::Change;

/// How a step ended, as its task reports it.
pub(super) enum StepEnd {
    Completed(Value),
    Skipped,
    Failed {
        attempts: u32,
        error: StepError,
    },
    /// Boxed: the store's error is large and rare, and a step's end is moved out of every
    /// step.
    Store(Box<StoreError>),
    /// The engine drains: no attempt began, and the completion carried is recorded.
    Drained,
}

/// A step's inputs; inline for the usual few, so gathering them allocates nothing.
enum Inputs<'r> {
    /// A single input, read where it is kept (the run's input, or the upstream step's end):
    /// not even a reference count is taken.
    One(&'r Option<Value>),
    Inline([Option<Value>; 4], usize),
    Heap(Vec<Option<Value>>),
}

impl Inputs<'_> {
    fn as_slice(&self) -> &[Option<Value>] {
        match self {
            Inputs::One(value) => std::slice::from_ref(*value),
            Inputs::Inline(values, len) => values.get(..*len).unwrap_or_default(),
            Inputs::Heap(values) => values,
        }
    }
}

/// What a step that has not ended gives its dependents (which never read it: a step is
/// ready only once its inputs have ended).
static NO_VALUE: Option<Value> = None;

/// The step's inputs, in argument order: slot 0 is the run's input, slot `i + 1` the output
/// of step `i` (absent if that step was skipped or failed with `on_error = continue`).
fn inputs<'r>(run: &'r Run, def: &StepDef) -> Inputs<'r> {
    let kept = |slot: usize| match slot {
        0 => &run.input,
        _ => run
            .steps
            .get(slot - 1)
            .and_then(|cell| cell.end.get())
            .map_or(&NO_VALUE, |end| &end.output),
    };
    let slots = def.inputs();
    match slots {
        [slot] => Inputs::One(kept(*slot)),
        _ if slots.len() <= 4 => {
            let mut values: [Option<Value>; 4] = Default::default();
            for (value_of, &slot) in values.iter_mut().zip(slots) {
                value_of.clone_from(kept(slot));
            }
            Inputs::Inline(values, slots.len())
        }
        _ => Inputs::Heap(slots.iter().map(|&slot| kept(slot).clone()).collect()),
    }
}

/// Runs a step's guard, then its attempts until one succeeds or the step fails for good.
/// `carry` holds what the previous step run by this task left: the time it ended (which is
/// now), so that the step's start costs no clock read, and its permit, which this step takes
/// over unless attempts are queued for one; a successful attempt leaves its permit there for
/// the next step. When the first attempt begins, its time is put in `started`.
pub(super) async fn run_step<'r>(
    run: &'r Arc<Run>,
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
    let Some(name) = run.name(index) else {
        let error = StepError::permanent(format!("internal: step {index} has no name"));
        return StepEnd::Failed { attempts: 0, error };
    };
    let inputs = inputs(run, def);
    let inputs = inputs.as_slice();
    if def.is_guarded() {
        clock = None;
        held = None;
        if let Some(done) = deferred.take()
            && let Err(error) = Box::pin(super::flush(run, done)).await
        {
            return StepEnd::Store(Box::new(error));
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| def.guard(inputs))) {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::debug!("step skipped by its guard");
                return match Box::pin(run.record(&Change::StepSkipped { step: name })).await {
                    Ok(()) => StepEnd::Skipped,
                    Err(error) => StepEnd::Store(Box::new(error)),
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
    let mut deadline_at: Option<Instant> = None;
    // A step taken up after a crash counts its attempts on from those it made before.
    let mut attempt: u32 = cell.attempts.load(Ordering::Acquire);
    let mut first = true;
    loop {
        attempt = attempt.saturating_add(1);
        if run.draining() {
            return drained(run, deferred).await;
        }
        // The previous step's permit, if no attempt is queued for it; else a free permit,
        // taken with one atomic operation; only a wait needs a future.
        let handed = held.take().filter(|_| run.engine.permits.unqueued());
        let permit = match handed.or_else(|| run.engine.permits.take_now()) {
            Some(permit) => permit,
            None => {
                clock = None;
                // Not left pending across a wait, where the run could be stopped.
                if let Some(done) = deferred.take()
                    && let Err(error) = Box::pin(super::flush(run, done)).await
                {
                    return StepEnd::Store(Box::new(error));
                }
                // A drain ends the wait: the step does not start.
                let taken = Box::pin(async {
                    tokio::select! {
                        permit = run.engine.permits.take() => Some(permit),
                        () = run.engine.lifecycle.draining() => None,
                    }
                })
                .await;
                match taken {
                    Some(permit) if !run.draining() => permit,
                    _ => return StepEnd::Drained,
                }
            }
        };
        if first {
            first = false;
            let now = clock.take().unwrap_or_else(Instant::now);
            *started = Some(now);
            // A step taken up after a crash has only what was left of its deadline.
            deadline_at = options
                .deadline
                .and_then(|d| now.checked_add(d.saturating_sub(run.spent(index))));
        }
        cell.attempts.store(attempt, Ordering::Release);
        let span = tracing::debug_span!("attempt", run_id = %run.run_id, step = %name, attempt);
        // The first attempt of the step the run began with: its creation recorded the start.
        let begun = attempt == 1 && deferred.is_none() && run.begun == Some(index);
        if run.engine.records && !begun {
            // Boxed, as every await on a path that not every attempt takes (see `fail`): a
            // recording store's write costs far more than the allocation.
            let recorded = Box::pin(record_start(run, name, attempt, deferred.take()))
                .instrument(span.clone())
                .await;
            if let Err(error) = recorded {
                return StepEnd::Store(Box::new(error));
            }
            if !run.engine.store.holds(&run.run_id) {
                return StepEnd::Store(Box::new(StoreError::LeaseLapsed {
                    run_id: run.run_id.clone(),
                }));
            }
        }
        // The attempt's context, lent to the step's call: a step that borrows it (as
        // `workflow!`'s do) reads it here for as long as its future runs.
        let mut ctx = Some(StepContext::for_run(
            Arc::clone(run) as Arc<dyn StepScope>,
            index,
            attempt,
        ));
        // Only the attempt in flight and its context are held across the wait: every local
        // held there makes the future of every step's task larger (see `Running`).
        let end = {
            let running = span.in_scope(|| {
                let limits = Limits {
                    timeout: options.timeout,
                    deadline: options.deadline.zip(deadline_at),
                };
                begin(def, name, &mut ctx, inputs, limits)
            });
            // Polled in place in the attempt's span, not moved into an `Instrumented` (see
            // `run_steps`).
            let mut running = std::pin::pin!(running);
            std::future::poll_fn(|cx| span.in_scope(|| running.as_mut().poll(cx))).await
        };
        let result = match end {
            Ended::Done(Ok(Ok(output))) => Ok(output),
            // In the attempt's span: what ended it short of success is logged there.
            end => span.in_scope(|| end.result(name, attempt)),
        };
        #[cfg(feature = "fault-injection")]
        let result = match result {
            Ok(_) if crate::fault::twice() => {
                // The idempotency test mode: the step runs again, as after a crash between
                // its effect and its checkpoint, and the second output is the one kept.
                let mut ctx = Some(StepContext::for_run(
                    Arc::clone(run) as Arc<dyn StepScope>,
                    index,
                    attempt,
                ));
                match def.call(&mut ctx, inputs) {
                    Ok(again) => again.instrument(span.clone()).await,
                    Err(error) => Err(error),
                }
            }
            other => other,
        };
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
            Err(error) => {
                drop(permit);
                error
            }
        };
        if let Some(end) = retry(run, name, options, deadline_at, attempt, error).await {
            return end;
        }
    }
}

/// After attempt `attempt` failed with `error`: the step's end if it fails for good, else
/// `None` once the delay before the next attempt has passed. Boxed (see `fail`).
fn retry<'a>(
    run: &'a Run,
    name: &'a str,
    options: &'a crate::policy::StepOptions,
    deadline_at: Option<Instant>,
    attempt: u32,
    error: StepError,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<StepEnd>> + Send + 'a>> {
    Box::pin(async move {
        let policy = options.retry_policy();
        if error.is_permanent() || !policy.allows_attempt_after(attempt) {
            return Some(fail(run, name, attempt, error).await);
        }
        let delay = policy.retry_delay(run.engine.jitter_seed, run.run_id.as_str(), name, attempt);
        if let Some((deadline, at)) = options.deadline.zip(deadline_at)
            && Instant::now()
                .checked_add(delay)
                .is_none_or(|next| next >= at)
        {
            let error = StepError::permanent(format!(
                "deadline of {deadline:?} reached after {attempt} attempt(s): no time left for another; last error: {error}"
            ));
            return Some(fail(run, name, attempt, error).await);
        }
        tracing::debug!(attempt, error = %error, ?delay, "attempt failed; retrying");
        let change = Change::StepRetrying {
            step: name,
            attempt,
            error: &error,
            delay,
        };
        if let Err(error) = run.record(&change).await {
            return Some(StepEnd::Store(Box::new(error)));
        }
        // A drain ends the wait: the next attempt is not made here.
        tokio::select! {
            () = tokio::time::sleep(delay) => None,
            () = run.engine.lifecycle.draining() => Some(StepEnd::Drained),
        }
    })
}

/// The engine drains: the step begins no attempt; the previous step's completion, carried
/// for this step's start, is recorded alone. Boxed (see `fail`).
fn drained<'a>(
    run: &'a Run,
    deferred: Option<super::Deferred>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = StepEnd> + Send + 'a>> {
    Box::pin(async move {
        if let Some(done) = deferred
            && let Err(error) = super::flush(run, done).await
        {
            return StepEnd::Store(Box::new(error));
        }
        StepEnd::Drained
    })
}

/// The time limits of one attempt.
#[derive(Clone, Copy)]
struct Limits {
    /// Per attempt.
    timeout: Option<Duration>,
    /// Over all attempts: the configured length, and when it ends.
    deadline: Option<(Duration, Instant)>,
}

/// Records an attempt's start, with the previous step's deferred completion when there is one.
async fn record_start(
    run: &Run,
    name: &str,
    attempt: u32,
    deferred: Option<super::Deferred>,
) -> Result<(), StoreError> {
    let started = Change::StepStarted {
        step: name,
        attempt,
    };
    match deferred {
        None => run.record(&started).await,
        Some(done) => run.record_completed(&done, Some(&started)).await,
    }
}

/// Calls the step's function with the attempt's context `ctx`: the attempt in flight, which
/// may borrow `ctx` and `inputs`, or, ending at its first poll, the error it failed with at
/// once (a panic included).
#[inline]
fn begin<'a>(
    def: &StepDef,
    name: &str,
    ctx: &'a mut Option<StepContext>,
    inputs: &'a [Option<Value>],
    limits: Limits,
) -> Running<'a> {
    // `ctx` moved in, not reborrowed, so that the future may borrow it for `'a`.
    let call = AssertUnwindSafe(move || {
        let ctx = ctx;
        def.call(ctx, inputs)
    });
    let future = match std::panic::catch_unwind(call) {
        Ok(Ok(future)) => future,
        Ok(Err(error)) => return Running::Failed(Some(error)),
        Err(payload) => return Running::Failed(Some(panicked(name, "", payload.as_ref()))),
    };
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
    let future = AssertUnwindSafe(future).catch_unwind();
    match cut {
        None => Running::Plain(future),
        Some((at, cut)) => Running::Limited(Box::pin(tokio::time::timeout_at(at, future)), cut),
    }
}

/// The step's future of an attempt in flight.
type Attempt<'a> =
    futures_util::future::CatchUnwind<AssertUnwindSafe<crate::runtime::definition::StepFuture<'a>>>;

/// An attempt in flight: the step's future, with the limit that cuts it first if it has one
/// (boxed: only attempts with a time limit pay for a timer). Small, so that the future of
/// every step, which holds it, is small too.
enum Running<'a> {
    Plain(Attempt<'a>),
    Limited(std::pin::Pin<Box<tokio::time::Timeout<Attempt<'a>>>>, Cut),
    /// The call failed before it returned a future (taken when polled).
    Failed(Option<StepError>),
}

/// How an attempt in flight ended.
enum Ended {
    /// The step's future returned, or panicked.
    Done(std::thread::Result<Result<Value, StepError>>),
    /// A time limit cut it.
    Cut(Cut),
    /// The call failed before it returned a future (`None` only if polled again after).
    Refused(Option<StepError>),
}

impl std::future::Future for Running<'_> {
    type Output = Ended;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Ended> {
        match &mut *self {
            Running::Plain(future) => std::pin::Pin::new(future).poll(cx).map(Ended::Done),
            Running::Limited(future, cut) => future.as_mut().poll(cx).map(|result| match result {
                Ok(done) => Ended::Done(done),
                Err(_) => Ended::Cut(*cut),
            }),
            Running::Failed(error) => std::task::Poll::Ready(Ended::Refused(error.take())),
        }
    }
}

impl Ended {
    /// The attempt's output, or its error.
    fn result(self, name: &str, attempt: u32) -> Result<Value, StepError> {
        match self {
            Ended::Done(Ok(result)) => result,
            Ended::Done(Err(payload)) => Err(panicked(name, "", payload.as_ref())),
            Ended::Cut(cut) => {
                let error = cut.error(attempt);
                tracing::debug!(error = %error, "attempt cut");
                Err(error)
            }
            Ended::Refused(error) => Err(error.unwrap_or_else(|| {
                StepError::permanent("internal: an attempt was polled again after it ended")
            })),
        }
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

/// Records a step's failure for good. Boxed, as is every await on a path that only failures,
/// retries or waits take: the future of a step that succeeds at once, which every step's task
/// holds (and moves) once per step, stays small.
fn fail<'a>(
    run: &'a Run,
    name: &'a str,
    attempts: u32,
    error: StepError,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = StepEnd> + Send + 'a>> {
    Box::pin(async move {
        tracing::warn!(attempts, error = %error, "step failed");
        let change = Change::StepFailed {
            step: name,
            attempts,
            error: &error,
        };
        match run.record(&change).await {
            Ok(()) => StepEnd::Failed { attempts, error },
            Err(error) => StepEnd::Store(Box::new(error)),
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_payload_becomes_the_message() {
        let e = panicked("s", "", &"boom");
        assert_eq!(e.message(), "step `s` panicked: boom");
        assert!(e.is_permanent());
        let e = panicked("s", "'s guard", &String::from("bang"));
        assert_eq!(e.message(), "step `s`'s guard panicked: bang");
    }
}
