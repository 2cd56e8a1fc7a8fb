//! A durable engine's memory does not grow with the runs it has finished: it forgets a run once
//! it ends, lets its lease go, and reads the run back from the store when its id is started
//! again (`sagaflow_core::conformance::resume`, run on PostgreSQL by its `tests/memory.rs`; the
//! in-memory engine's bounds: `core/tests/memory.rs`).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::Arc;

use sagaflow_core::conformance::resume::a_durable_engine_holds_no_finished_run_and_finds_it_in_the_store as holds_no_finished_run;
use sagaflow_core::runtime::Engine;
use sagaflow_sqlite::{SqliteOptions, SqliteStore, Synchronous};

#[tokio::test]
async fn a_durable_engine_holds_no_finished_run_and_finds_it_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions::default().synchronous(Synchronous::Normal);
    let store = SqliteStore::open(dir.path().join("runs.db"), options).unwrap();
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    holds_no_finished_run(&engine, || store.leases_held(), 2_000).await;
}
