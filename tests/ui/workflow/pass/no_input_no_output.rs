//! No input type, no output type, a single step, and a chain written over several statements.
use sagaflow::prelude::*;

async fn hello(ctx: &StepContext) -> Result<String, StepError> {
    Ok(format!("hello from {}", ctx.idempotency_key()))
}
async fn shout(_: &StepContext, s: &String) -> Result<String, StepError> {
    Ok(s.to_uppercase())
}
async fn alone(_: &StepContext) -> Result<(), StepError> {
    Ok(())
}

workflow! { Hello { hello; hello -> shout; } }
workflow! { Alone { alone } }

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let engine = Engine::ephemeral();
    let report = Hello::start(&engine, "h").await.unwrap().wait().await.unwrap();
    assert_eq!(report.step("shout").unwrap().status, StepStatus::Completed);
    Alone::start(&engine, "a").await.unwrap().wait().await.unwrap();
}
