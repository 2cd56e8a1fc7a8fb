//! A saga takes Temporal's names as `workflow!` does: on a step, on a compensation and in the
//! defaults.
use std::time::Duration;

use sagaflow::prelude::*;

async fn hold(_: &StepContext) -> Result<u32, StepError> {
    Ok(3)
}
async fn release(_: &StepContext, _: &u32) -> Result<(), StepError> {
    Ok(())
}
async fn notify(_: &StepContext, _: &u32) -> Result<(), StepError> {
    Ok(())
}

saga! {
    Booking {
        hold / release -> notify;
        hold: retry(maximum_attempts = 3, initial_interval = 10ms, backoff_coefficient = 1.5,
                    maximum_interval = 1s),
            start_to_close_timeout = 30s, schedule_to_close_timeout = 1m;
        release: retry(maximum_attempts = 5), start_to_close_timeout = 5s;
        defaults: schedule_to_close_timeout = 10m;
        deadline = 876000h;
    }
}

fn main() {
    let steps = Booking::definition();
    let hold = steps.forward().erased().steps()[0].options();
    assert_eq!(hold.timeout, Some(Duration::from_secs(30)));
    assert_eq!(hold.deadline, Some(Duration::from_secs(60)));
    assert_eq!(hold.retry.unwrap().maximum_attempts, 3);
    let notify = steps.forward().erased().steps()[1].options();
    assert_eq!(notify.deadline, Some(Duration::from_secs(600)));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let engine = Engine::open_in_memory().unwrap();
    let outcome = runtime
        .block_on(async { Booking::start(&engine, "b").await.unwrap().wait().await })
        .unwrap();
    assert!(outcome.is_completed());
}
