//! The facade without its `sqlite` feature: the in-memory engine alone. CI runs this file with
//! `cargo test -p sagaflow --no-default-features --test in_memory`, a build in which no SQLite
//! (and no rusqlite) exists; it runs in the default build too.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::Arc;

use sagaflow::MemoryStore;
use sagaflow::prelude::*;

async fn double(_: &StepContext, x: &u32) -> Result<u32, StepError> {
    Ok(x * 2)
}

async fn describe(_: &StepContext, x: &u32) -> Result<String, StepError> {
    Ok(format!("got {x}"))
}

workflow! {
    Doubler(u32) -> String {
        double -> describe
    }
}

fsm! {
    Lamp {
        *Off + Toggle = On,
        On + Toggle = Off,
    }
}

#[tokio::test]
async fn a_workflow_runs_on_the_ephemeral_engine() {
    let engine = Engine::ephemeral();
    let report = Doubler::start(&engine, "r", 21).await.unwrap().wait().await;
    assert_eq!(*report.unwrap().output, "got 42");
    // The id is the idempotency key while the engine keeps the run: nothing runs again.
    let again = Doubler::start(&engine, "r", 1).await.unwrap().wait().await;
    assert_eq!(*again.unwrap().output, "got 42");
}

#[tokio::test]
async fn a_machine_persists_on_the_in_memory_store() {
    let store = Arc::new(MemoryStore::new());
    let mut lamp = Lamp::create(&store, "l").await.unwrap();
    lamp.fire(&mut (), LampEvent::Toggle).await.unwrap();
    let mut stale = Lamp::load(&store, "l").await.unwrap().unwrap();
    lamp.fire(&mut (), LampEvent::Toggle).await.unwrap();
    // The other handle read version 1; the store is at 2 now: nothing is written.
    let err = stale.fire(&mut (), LampEvent::Toggle).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(lamp.history().await.unwrap().len(), 2);
    assert_eq!(Lamp::ids(&store).await.unwrap(), ["l"]);
}
