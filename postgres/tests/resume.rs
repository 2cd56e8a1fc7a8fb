//! Taking up a run that an earlier engine started on the same PostgreSQL schema
//! (`sagaflow_core::conformance::resume`, the checks SQLite's `tests/resume.rs` runs on a
//! file): the earlier engine is dropped with its runtime mid-run, its connections cut, nothing
//! cleaned up, and a new one of the same owner takes the run up. Each check on both logs
//! (`PgOptions::compact_log`), on a schema of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::conformance::resume::CrashDatabase;
use sagaflow_core::runtime::Engine;
use sagaflow_postgres::PgStore;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A schema of the test's own on the server (its stores keep a compact log if `compact`), or
/// `None` when there is no server (said once by `support`).
fn database(compact: bool) -> Option<support::Db> {
    runtime().block_on(async {
        if compact {
            support::Db::compact().await
        } else {
            support::Db::new().await
        }
    })
}

impl CrashDatabase for support::Db {
    async fn engine(&self, owner: &str) -> Engine {
        let options = self.options().owner(owner).lease(Duration::from_secs(30));
        let store = PgStore::connect(&self.url, options).await.unwrap();
        Engine::builder().store(Arc::new(store)).build()
    }

    fn execute(&self, sql: &str, param: Option<i64>) -> u64 {
        runtime().block_on(async {
            let client = support::client(&self.url).await;
            client
                .batch_execute(&format!("SET search_path TO \"{}\"", self.schema))
                .await
                .unwrap();
            match param {
                Some(p) => client.execute(sql, &[&p]).await.unwrap(),
                None => client.execute(sql, &[]).await.unwrap(),
            }
        })
    }
}

sagaflow_core::resume_conformance!(
    plain,
    match database(false) {
        Some(db) => db,
        None => return,
    }
);
sagaflow_core::resume_conformance!(
    compact,
    match database(true) {
        Some(db) => db,
        None => return,
    }
);
