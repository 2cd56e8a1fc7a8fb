use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }
async fn c(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

workflow! {
    W {
        a -> b;
        a: timeout = 1s;
        a: retry(max_attempts = 2), timeout = 2s;
    }
}

fn main() {}
