use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }
async fn c(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

workflow! {
    Twice {
        a -> b;
        a -> [c, b];
    }
}

fn main() {}
