use sagaflow::prelude::*;

async fn reserve(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn commit(_: &StepContext, _: &u32) -> Result<u32, StepError> { Ok(1) }
async fn notify(_: &StepContext, _: &u32) -> Result<(), StepError> { Ok(()) }
async fn audit(_: &StepContext, _: &u32) -> Result<(), StepError> { Ok(()) }

saga! {
    Booking {
        reserve -> commit! -> [notify, audit];
        notify: retry(max_attempts = 3, initial = 1s);
        audit: retry(initial = 1s), deadline = 1m;
        commit: retry(max_attempts = 3);
        defaults: retry(max_attempts = 2), deadline = 5m;
    }
}

fn main() {}
