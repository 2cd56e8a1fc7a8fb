use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

workflow! {
    W {
        a -> b;
        defaults: start_to_close_timeout = 18446744074s, retry(maximum_interval = 876001h);
    }
}

fn main() {}
