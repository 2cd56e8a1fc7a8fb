use sagaflow::prelude::*;

async fn charge(_: &StepContext, cents: &u64) -> Result<String, StepError> { Ok(format!("{cents}")) }
async fn refund(_: &StepContext, _cents: &u64, _charge: &u64) -> Result<(), StepError> { Ok(()) }
async fn ship(_: &StepContext, _: &String) -> Result<(), StepError> { Ok(()) }

saga! { Order(u64) { charge / refund -> ship } }

fn main() {}
