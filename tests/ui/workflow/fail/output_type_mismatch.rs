use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

// The run's output is declared `String`, but the last step returns a `u32`.
workflow! { W -> String { a -> b; } }

fn main() {}
