use std::rc::Rc;

use sagaflow::prelude::*;

async fn reserve(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn ship(_: &StepContext, id: &u32) -> Result<u32, StepError> { Ok(*id) }
async fn yield_now() {}
// Holds an `Rc` across an await: its future cannot move between the engine's threads.
async fn release(_: &StepContext, id: &u32) -> Result<(), StepError> {
    let kept = Rc::new(*id);
    yield_now().await;
    drop(kept);
    Ok(())
}

saga! { S { reserve / release -> ship } }

fn main() {}
