use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

workflow! {
    W {
        a -> b;
        a: retry(maximum_attempt = 4, intial_interval = 100ms, backof_coefficient = 2.0,
                 max_interval = 250ms, jiter = 0.2),
           start_to_close = 1s, retyr;
        b: retry(attempts = 3, non_retryable_error_types = 1), dedline = 1m,
           schedule_to_start_timeout = 1s;
    }
}

fn main() {}
