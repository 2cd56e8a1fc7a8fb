use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

workflow! {
    W -> u32 {
        a -> b;
        b: on_error = continue;
    }
}

fn main() {}
