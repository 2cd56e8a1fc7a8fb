//! Parallel branches, fan-in, a step written in two chains with its compensation once, a
//! pivot, and an output.
use sagaflow::prelude::*;

async fn build(_: &StepContext, release: &String) -> Result<String, StepError> {
    Ok(format!("img:{release}"))
}
async fn delete(_: &StepContext, _: &String, _: &String) -> Result<(), StepError> {
    Ok(())
}
async fn push(_: &StepContext, image: &String) -> Result<u32, StepError> {
    Ok(image.len() as u32)
}
async fn untag(_: &StepContext, _: &String, _: &u32) -> Result<(), StepError> {
    Ok(())
}
async fn migrate(_: &StepContext, _: &String) -> Result<u8, StepError> {
    Ok(7)
}
async fn rollback(_: &StepContext, _: &String, version: Option<&u8>) -> Result<(), StepError> {
    let _ = version;
    Ok(())
}
async fn shift(_: &StepContext, pushed: &u32, version: &u8) -> Result<u64, StepError> {
    Ok(u64::from(*pushed) + u64::from(*version))
}
async fn announce(_: &StepContext, _: &String) -> Result<(), StepError> {
    Ok(())
}
async fn smoke(_: &StepContext, n: &u64, _: &()) -> Result<u64, StepError> {
    Ok(*n)
}

saga! {
    /// A deployment, with the image pushed and the database migrated side by side.
    pub Deploy(String) -> u64 {
        build / delete -> [push / untag, migrate / rollback] -> shift! -> smoke;
        build / delete -> announce -> smoke;
        migrate: undo_on_unknown;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let engine = Engine::open_in_memory().unwrap();
    let outcome = runtime
        .block_on(async { Deploy::start(&engine, "d-1", "v1".to_owned()).await.unwrap().wait().await })
        .unwrap();
    match outcome {
        sagaflow::SagaOutcome::Completed(report) => assert_eq!(*report.output, "img:v1".len() as u64 + 7),
        other => panic!("{other:?}"),
    }
    assert_eq!(Deploy::definition().pivots(), vec!["shift"]);
    assert!(Deploy::mermaid().contains("shift"));
    assert!(Deploy::dot().contains("smoke"));
}
