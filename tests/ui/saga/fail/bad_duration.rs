use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }
async fn c(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }
async fn undo_a(_: &StepContext, _: &u32) -> Result<(), StepError> { Ok(()) }
async fn undo_b(_: &StepContext, _: &u32, _: &u32) -> Result<(), StepError> { Ok(()) }
async fn undo_c(_: &StepContext, _: &u32, _: &u32) -> Result<(), StepError> { Ok(()) }

saga! {
    S {
        a / undo_a -> b;
        a: timeout = 5parsecs;
        undo_a: deadline = 10;
        deadline = 0s;
    }
}

fn main() {}
