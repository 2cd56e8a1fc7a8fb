use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }
async fn undo_a(_: &StepContext, _: &u32) -> Result<(), StepError> { Ok(()) }

saga! {
    S {
        a / undo_a -> b;
        a: deadline = 876001h;
        undo_a: timeout = 18446744074s;
        deadline = 18446744074s;
    }
}

fn main() {}
