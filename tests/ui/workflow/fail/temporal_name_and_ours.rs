use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

workflow! {
    W {
        a -> b;
        a: retry(max = 1s, maximum_interval = 2s, maximum_attempts = 3, max_attempts = 4),
           timeout = 1s, start_to_close_timeout = 2s;
        defaults: schedule_to_close_timeout = 1m, deadline = 2m;
    }
}

fn main() {}
