use sagaflow::prelude::*;

async fn charge(_: &StepContext, cents: &u64) -> Result<String, StepError> { Ok(format!("{cents}")) }
async fn reserve(_: &StepContext, _: &String) -> Result<u32, StepError> { Ok(1) }
async fn release(_: &StepContext, _charge: &u64, _units: &u32) -> Result<(), StepError> { Ok(()) }

saga! { Order(u64) { charge -> reserve / release } }

fn main() {}
