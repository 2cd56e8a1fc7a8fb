//! A durable engine on PostgreSQL holds no run it has finished, as on SQLite
//! (`sagaflow_core::conformance::resume::a_durable_engine_holds_no_finished_run_and_finds_it_in_the_store`):
//! it forgets a run once it ends, lets its lease go, and reads the run back from the store when
//! its id is started again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::Arc;

use sagaflow_core::conformance::resume::a_durable_engine_holds_no_finished_run_and_finds_it_in_the_store as holds_no_finished_run;
use sagaflow_core::runtime::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_engine_holds_no_finished_run_and_finds_it_in_the_store() {
    let db = fresh_db!(compact);
    let store = db.store().await;
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    holds_no_finished_run(&engine, || store.leases_held(), 500).await;
}
