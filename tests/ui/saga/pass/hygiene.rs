//! The generated code relies on none of the user's names: shadowing `core`, `std`'s prelude
//! types and the facade's own names changes nothing.
#![allow(dead_code, non_camel_case_types)]

mod core {}
struct Arc;
struct Duration;
struct OnceLock;
struct SagaBuilder;
struct SagaDefinition;
struct SagaHandle;
struct SagaError;
struct StepContext;
struct Engine;
struct RunId;
struct String;
type Option = ();
type Result = ();
type Box = ();

mod steps {
    use sagaflow::prelude::*;
    pub async fn first(_: &StepContext, n: &u8) -> std::result::Result<u8, StepError> {
        Ok(*n)
    }
    pub async fn unfirst(_: &StepContext, _: &u8, _: &u8) -> std::result::Result<(), StepError> {
        Ok(())
    }
    pub async fn second(_: &StepContext, x: &u8) -> std::result::Result<u8, StepError> {
        Ok(x + 1)
    }
    pub async fn unsecond(
        _: &StepContext,
        _: &u8,
        _: std::option::Option<&u8>,
    ) -> std::result::Result<(), StepError> {
        Ok(())
    }
    pub async fn third(_: &StepContext, x: &u8) -> std::result::Result<u8, StepError> {
        Ok(x + 1)
    }
}

sagaflow::saga! {
    Hygienic(u8) -> u8 {
        steps::first / steps::unfirst -> steps::second / steps::unsecond -> steps::third!;
        first: retry(max_attempts = 2), timeout = 1s;
        unfirst: retry(max_attempts = 2);
        second: undo_on_unknown, on_error = fail;
        defaults: deadline = 1m;
        deadline = 5m;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let engine = <sagaflow::Engine as sagaflow::SqliteEngine>::open_in_memory().unwrap();
    let outcome = runtime
        .block_on(async { Hygienic::start(&engine, "h", 1).await.unwrap().wait().await })
        .unwrap();
    match outcome {
        sagaflow::SagaOutcome::Completed(report) => assert_eq!(*report.output, 3),
        other => panic!("{other:?}"),
    }
}
