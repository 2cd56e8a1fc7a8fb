//! The generated code relies on none of the user's names: shadowing `core`, `std`'s prelude
//! types and the facade's own names changes nothing.
#![allow(dead_code, non_camel_case_types)]

mod core {}
struct Arc;
struct Duration;
struct OnceLock;
struct Builder;
struct String;
type Option = ();
type Result = ();

mod steps {
    use sagaflow::prelude::*;
    pub async fn first(_: &StepContext) -> std::result::Result<u8, StepError> {
        Ok(1)
    }
    pub async fn second(_: &StepContext, x: &u8) -> std::result::Result<u8, StepError> {
        Ok(x + 1)
    }
}

sagaflow::workflow! {
    Hygienic -> u8 {
        steps::first -> steps::second;
        first: retry(max_attempts = 2), timeout = 1s;
        second: on_error = fail;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let engine = sagaflow::Engine::ephemeral();
    let report = runtime
        .block_on(async { Hygienic::start(&engine, "h").await.unwrap().wait().await })
        .unwrap();
    assert_eq!(*report.output, 2);
}
