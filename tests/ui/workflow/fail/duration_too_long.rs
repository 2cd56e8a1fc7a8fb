use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

workflow! {
    W {
        a -> b;
        a: timeout = 18446744074s, deadline = 876001h;
        b: retry(initial = 3153600000.5s, max = 99999999999999999999999999999999m);
    }
}

fn main() {}
