//! Temporal's names for the retry settings and the two timeouts that have an equivalent set
//! the same options as ours, in a step and in the defaults; the longest duration, 876000h,
//! is taken.
use std::time::Duration;

use sagaflow::prelude::*;

async fn charge(ctx: &StepContext) -> Result<u32, StepError> {
    if ctx.attempt() < 3 {
        Err(StepError::new("declined"))
    } else {
        Ok(ctx.attempt())
    }
}
async fn ship(_: &StepContext, attempts: &u32) -> Result<u32, StepError> {
    Ok(*attempts)
}

workflow! {
    Temporals -> u32 {
        charge -> ship;
        charge: retry(maximum_attempts = 4, initial_interval = 1ms, backoff_coefficient = 2.0,
                      maximum_interval = 3ms, jitter = 0.2),
                start_to_close_timeout = 30s, schedule_to_close_timeout = 2m;
        defaults: schedule_to_close_timeout = 876000h;
    }
}

workflow! {
    Ours -> u32 {
        charge -> ship;
        charge: retry(max_attempts = 4, initial = 1ms, coefficient = 2.0, max = 3ms, jitter = 0.2),
                timeout = 30s, deadline = 2m;
        defaults: deadline = 876000h;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let temporals = Temporals::definition();
    let ours = Ours::definition();
    for (t, o) in temporals.erased().steps().iter().zip(ours.erased().steps()) {
        assert_eq!(t.options(), o.options(), "step `{}`", t.name());
    }
    let charge = temporals.erased().steps()[0].options();
    assert_eq!(charge.timeout, Some(Duration::from_secs(30)));
    assert_eq!(charge.deadline, Some(Duration::from_secs(120)));
    let policy = charge.retry.unwrap();
    assert_eq!(policy.maximum_attempts, 4);
    assert_eq!(policy.maximum_interval, Some(Duration::from_millis(3)));
    let ship = temporals.erased().steps()[1].options();
    assert_eq!(ship.deadline, Some(Duration::from_secs(100 * 365 * 24 * 3_600)));

    let engine = Engine::builder().jitter_seed(11).build();
    let report = Temporals::start(&engine, "t1").await.unwrap().wait().await.unwrap();
    assert_eq!(*report.output, 3);
}
