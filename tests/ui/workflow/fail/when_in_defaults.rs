use sagaflow::prelude::*;

async fn a(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
async fn b(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }
async fn c(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(*x) }

fn ready(_: &u32) -> bool { true }

workflow! { W { a -> b; defaults: when = ready; } }

fn main() {}
