//! What keeps a long-lived schema's tables from growing without bound: the replicas not heard
//! from for a day are forgotten at another's heartbeat, and an engine's retention policy has
//! the deleted runs' room reclaimed (a `VACUUM`) after as many runs as it says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::retention::RetentionPolicy;
use sagaflow_core::runtime::store::inspect::Inspect as _;
use sagaflow_core::runtime::{Builder, Engine, StepError};
use sagaflow_postgres::inspect::PgInspector;

/// A replica not heard from for `FORGET_REPLICA_AFTER` is forgotten at another's heartbeat
/// (by the server's clock); one silent for less is kept, and shown as gone.
#[tokio::test]
async fn a_replica_silent_for_a_day_is_forgotten_at_another_s_heartbeat() {
    use sagaflow_core::runtime::LeaseStore as _;
    use sagaflow_core::runtime::store::replicas::FORGET_REPLICA_AFTER;

    let db = fresh_db!();
    let store = sagaflow_postgres::PgStore::connect(&db.url, db.options().owner("live"))
        .await
        .unwrap();
    store.heartbeat(&[], &[]).await.unwrap();
    let sql = support::client(&db.url).await;
    let table = format!("\"{}\".replicas", db.schema);
    let forget = i64::try_from(FORGET_REPLICA_AFTER.as_millis()).unwrap();
    for (owner, silent) in [("forgotten", forget + 60_000), ("gone", forget - 60_000)] {
        sql.execute(
            &format!(
                "INSERT INTO {table} (owner, host, pid, version, started_at, heartbeat_at, graphs) \
                 SELECT $1, 'elsewhere', 1, '0.1.0', at, at, '[]' \
                 FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $2 AS at) t"
            ),
            &[&owner, &silent],
        )
        .await
        .unwrap();
    }
    store.heartbeat(&[], &[]).await.unwrap();
    let owners: Vec<String> = sql
        .query(&format!("SELECT owner FROM {table} ORDER BY owner"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(owners, ["gone", "live"]);
    let standing = PgInspector::connect(&db.url, &db.schema)
        .await
        .unwrap()
        .replicas()
        .await
        .unwrap()
        .standing();
    let gone = standing
        .replicas
        .iter()
        .find(|r| r.replica.owner == "gone")
        .unwrap();
    assert!(!gone.live, "silent for most of a day: shown as gone");
}

/// An engine's retention policy deletes finished runs and, after `reclaim_after` of them, has
/// the store vacuum the tables they were deleted from (counted by the server as manual
/// vacuums of the schema's tables), so that their room is reused whatever the server's
/// autovacuum keeps up with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_policy_has_the_deleted_runs_room_reclaimed() {
    let db = fresh_db!();
    let sql = support::client(&db.url).await;
    let vacuums = async || -> i64 {
        sql.query_one(
            "SELECT coalesce(sum(vacuum_count), 0)::bigint FROM pg_stat_user_tables \
             WHERE schemaname = $1 AND relname IN ('runs', 'events', 'signals')",
            &[&db.schema],
        )
        .await
        .unwrap()
        .get(0)
    };
    assert_eq!(
        vacuums().await,
        0,
        "a fresh schema was never vacuumed by hand"
    );
    let store = db.store().await;
    let engine = Engine::builder()
        .store(Arc::new(store))
        .retention(
            RetentionPolicy::new()
                .every(Duration::from_millis(50))
                .reclaim_after(5),
        )
        .build();
    let mut b = Builder::<u32>::new("Pruned");
    let input = b.input();
    let out = b.step("double", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x * 2) }
    });
    let def = b.build_with_output(out);
    for k in 0..4 {
        engine
            .start(&def, format!("run-{k}").as_str(), k)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    // Four runs deleted: fewer than `reclaim_after`, so no vacuum yet.
    let inspector = PgInspector::connect(&db.url, &db.schema).await.unwrap();
    let began = Instant::now();
    while !inspector.runs().await.unwrap().is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the runs were pruned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(vacuums().await, 0, "4 runs deleted: not yet reclaimed");
    // The fifth reaches it.
    engine
        .start(&def, "run-4", 4)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let began = Instant::now();
    // The server's statistics of a vacuum are visible within a second or so of its end.
    while vacuums().await == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "no vacuum of the schema's tables after 5 runs deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
