//! The smallest saga: steps and their compensations, nothing else.
use sagaflow::prelude::*;

async fn charge(_: &StepContext, cart: &u64) -> Result<String, StepError> {
    Ok(format!("ch_{cart}"))
}
async fn refund(_: &StepContext, _cart: &u64, _charge: &String) -> Result<(), StepError> {
    Ok(())
}
async fn reserve(_: &StepContext, charge: &String) -> Result<u32, StepError> {
    Ok(charge.len() as u32)
}
async fn release(_: &StepContext, _charge: &String, _units: &u32) -> Result<(), StepError> {
    Ok(())
}
async fn ship(_: &StepContext, units: &u32) -> Result<u32, StepError> {
    Ok(*units)
}

saga! { pub Order(u64) { charge / refund -> reserve / release -> ship } }

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let engine = Engine::open_in_memory().unwrap();
    let outcome = runtime
        .block_on(async { Order::start(&engine, "o-1", 42).await.unwrap().wait().await })
        .unwrap();
    assert!(outcome.is_completed());
    assert_eq!(Order::NAME, "Order");
    assert!(Order::definition().problems().is_empty());
    assert_eq!(Order::definition().compensation_of("charge"), Some("refund"));
    assert_eq!(Order::definition().compensation_of("ship"), None);
}
