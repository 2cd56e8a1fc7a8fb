//! The compact log (`PgOptions::compact_log`, schema version 10): a checkpoint that completes
//! a step and starts the next writes one row, which every reader reads as the two events it
//! stands for. The same runs on a store with it and on one without it read alike everywhere
//! (a run's events, the live feed, the steps as the store folds them and as `inspect` reads
//! them, `inspect`'s events, what retention counts), and the compact log holds fewer rows:
//! the runs and the checks are `sagaflow_core::conformance::compact`'s, which SQLite's
//! `sqlite/tests/compact_log.rs` runs too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use sagaflow_core::conformance::compact::{self, Seen};
use sagaflow_postgres::inspect::PgInspector;

/// The shared runs (`conformance::compact::run_on`) on `db`.
async fn run_on(db: &support::Db) -> Seen {
    let store = db.store().await;
    let inspector = PgInspector::connect(&db.url, &db.schema).await.unwrap();
    compact::run_on(store, &inspector, async || {
        let client = support::client(&db.url).await;
        let sql = format!(
            "SELECT count(*), count(next_step) FROM \"{}\".events",
            db.schema
        );
        let row = client.query_one(&sql, &[]).await.unwrap();
        (row.get(0), row.get(1))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_log_reads_as_the_log_it_stands_for() {
    let plain = fresh_db!();
    let compact = fresh_db!(compact);
    let (plain, compact) = (run_on(&plain).await, run_on(&compact).await);
    compact::compare(&plain, &compact);
}
