//! Load on one PostgreSQL schema, as `sqlite/tests/load.rs` puts on one file: 10,000
//! concurrent runs in one process, every one accounted for, the counts read back with a
//! connection of the test's own. (Several processes at once: `tests/replicas.rs`, 1,000 runs
//! over three replica processes, and `tests/queue_workers.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::Arc;

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Builder, Definition, Engine, StepError};

/// `a -> [b, c]`: three durable steps per run, one of them a fan-out.
fn three() -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Three");
    let input = b.input();
    let a = b.step("a", StepOptions::new(), (input,), |_, (x,)| async move {
        Ok::<u64, StepError>(*x + 1)
    });
    b.step("b", StepOptions::new(), (a,), |_, (x,)| async move {
        tokio::task::yield_now().await;
        Ok::<u64, StepError>(*x * 2)
    });
    let c = b.step("c", StepOptions::new(), (a,), |_, (x,)| async move {
        Ok::<u64, StepError>(*x + 10)
    });
    b.build_with_output(c)
}

/// Events of one run of `three`: created, 3 started, 3 completed, completed.
const EVENTS_PER_RUN: i64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_runs_on_one_schema_are_all_accounted_for() {
    const RUNS: u64 = 10_000;
    let db = fresh_db!(compact);
    let engine = Engine::builder().store(Arc::new(db.store().await)).build();
    let def = three();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RUNS {
        let (engine, def) = (engine.clone(), def.clone());
        tasks.spawn(async move {
            let report = engine
                .start(&def, format!("r{i}"), i)
                .await
                .unwrap()
                .wait()
                .await
                .unwrap();
            assert_eq!(*report.output, i + 11);
        });
    }
    let mut done = 0;
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
        done += 1;
    }
    assert_eq!(done, RUNS);

    let client = support::client(&db.url).await;
    let count = async |sql: &str| -> i64 {
        let sql = sql.replace("{s}", &db.schema);
        client.query_one(&sql, &[]).await.unwrap().get(0)
    };
    let runs = count("SELECT count(*) FROM \"{s}\".runs").await;
    let completed = count("SELECT count(*) FROM \"{s}\".runs WHERE status = 'completed'").await;
    // Events, not rows: on a compact log a row may log a next start too.
    let events = count(
        "SELECT COALESCE(sum(1 + (next_step IS NOT NULL)::int), 0)::bigint FROM \"{s}\".events",
    )
    .await;
    let completions =
        count("SELECT count(*) FROM \"{s}\".events WHERE kind = 'step_completed'").await;
    let runs_expected = i64::try_from(RUNS).unwrap();
    assert_eq!(
        (runs, completed, completions, events),
        (
            runs_expected,
            runs_expected,
            3 * runs_expected,
            EVENTS_PER_RUN * runs_expected
        )
    );
}
