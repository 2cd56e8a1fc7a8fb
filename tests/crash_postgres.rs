//! A real crash on PostgreSQL: a child process runs a 20-step workflow, is killed with SIGKILL
//! in the middle, and another process (another replica: another owner, on the same database)
//! takes the run over once the killed one's lease has expired, and finishes it. Every step
//! appends its name to a side file as its effect, so the side file shows what ran and how
//! often. The server's URL comes from `SAGAFLOW_PG_URL` (the local server by default).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow_postgres::{PgOptions, PgStore};

use common::twenty::{
    CHILD, OWNER, STEPS, Twenty, in_order_with_at_most_the_cut_step_again, side_lines,
};

const SCHEMA: &str = "SAGAFLOW_PG_CRASH_SCHEMA";

fn url() -> String {
    sagaflow_postgres::testing::url()
}

/// The child's part: connect as its owner with a one-second lease, then start the run (or
/// take it up, waiting while the killed process's lease lives) and finish it.
fn child(owner: &str, schema: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = PgOptions::default()
            .schema(schema)
            .owner(owner)
            .lease(Duration::from_secs(1));
        let store = PgStore::connect(&url(), options).await.unwrap();
        let engine = Engine::builder().store(std::sync::Arc::new(store)).build();
        let began = Instant::now();
        loop {
            match Twenty::start(&engine, "twenty").await {
                Ok(handle) => {
                    let report = handle.wait().await.unwrap();
                    assert_eq!(*report.output, STEPS as u32);
                    return;
                }
                Err(sagaflow::EngineError::Leased { .. })
                    if began.elapsed() < Duration::from_secs(60) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("{owner}: {other}"),
            }
        }
    });
}

fn spawn_child(dir: &Path, owner: &str, schema: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "a_replica_takes_over_the_run_of_a_killed_one",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, dir)
        .env(OWNER, owner)
        .env(SCHEMA, schema)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Whether the server answers; panics if not while `CI` is set.
fn server_answers() -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(sagaflow_postgres::testing::server())
        .is_some()
}

#[test]
fn a_replica_takes_over_the_run_of_a_killed_one() {
    if let (Some(_), Ok(owner), Ok(schema)) = (
        std::env::var_os(CHILD),
        std::env::var(OWNER),
        std::env::var(SCHEMA),
    ) {
        child(&owner, &schema);
        return;
    }
    if !server_answers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let schema = sagaflow_postgres::testing::fresh_schema("crash");

    // Replica A: killed with SIGKILL once 8 steps have had their effect.
    let mut first = spawn_child(dir.path(), "replica-a", &schema);
    let started = Instant::now();
    while side_lines(dir.path()).len() < 8 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the child made no progress"
        );
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the child ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap(); // SIGKILL: no destructor, no goodbye, its lease left to expire
    first.wait().unwrap();
    let at_kill = side_lines(dir.path()).len();
    assert!(at_kill < STEPS, "the run finished before the kill");

    // Replica B: another owner, waits out A's lease, takes the run over and finishes it.
    let status = spawn_child(dir.path(), "replica-b", &schema)
        .wait()
        .unwrap();
    assert!(status.success(), "the replica taking over failed: {status}");

    in_order_with_at_most_the_cut_step_again(&side_lines(dir.path()));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let row = client
            .query_one(
                &format!("SELECT owner, recoveries FROM \"{schema}\".runs WHERE run_id = 'twenty'"),
                &[],
            )
            .await
            .unwrap();
        let (owner, recoveries): (String, i32) = (row.get(0), row.get(1));
        assert_eq!(owner, "replica-b", "the other replica took the run over");
        assert_eq!(recoveries, 1);
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    });
}
