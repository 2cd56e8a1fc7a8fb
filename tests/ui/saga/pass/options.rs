//! Options on steps, on compensations (by their own name), defaults, a guard, and the saga's
//! deadline; a saga without input.
use sagaflow::prelude::*;

mod undo {
    use sagaflow::prelude::*;
    pub async fn cancel_hold(_: &StepContext, _: &u32) -> Result<(), StepError> {
        Ok(())
    }
}

async fn hold(_: &StepContext) -> Result<u32, StepError> {
    Ok(3)
}
async fn notify(_: &StepContext, _: &u32) -> Result<(), StepError> {
    Ok(())
}
async fn audit(_: &StepContext, _: &u32) -> Result<(), StepError> {
    Ok(())
}
async fn forget(_: &StepContext, _: &u32, _: &()) -> Result<(), StepError> {
    Ok(())
}
fn wanted(n: &u32) -> bool {
    *n > 1
}

saga! {
    Options {
        hold / undo::cancel_hold -> [notify, audit / forget];
        hold: retry(max_attempts = 3, initial = 10ms, coefficient = 1.5, max = 1s, jitter = 0.1),
            timeout = 30s, deadline = 1m;
        cancel_hold: retry(max_attempts = 5), timeout = 5s;
        forget: deadline = 2m;
        audit: when = wanted, at_most_once, undo_on_unknown = false;
        notify: on_error = continue;
        defaults: retry(max_attempts = 2), timeout = 10s;
        deadline = 10m;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let engine = Engine::open_in_memory().unwrap();
    let outcome = runtime
        .block_on(async { Options::start(&engine, "o").await.unwrap().wait().await })
        .unwrap();
    assert!(outcome.is_completed());
    assert_eq!(Options::definition().compensation_of("hold"), Some("cancel_hold"));
}
