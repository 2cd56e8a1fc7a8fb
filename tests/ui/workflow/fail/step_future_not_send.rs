use std::rc::Rc;

use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn yield_now() {}
// Holds an `Rc` across an await: its future cannot move between the engine's threads.
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> {
    let kept = Rc::new(*x);
    yield_now().await;
    Ok(*kept)
}

workflow! { W -> u32 { a -> b; } }

fn main() {}
