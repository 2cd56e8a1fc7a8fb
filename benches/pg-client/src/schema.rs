//! The tables the run writes, the statements every contender sends, and the counts that check
//! afterwards that every transaction a contender reported really committed.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::Client;

use crate::Result;

/// One row per step output: the durable checkpoint's INSERT … ON CONFLICT DO UPDATE.
pub(crate) const UPSERT: &str = "INSERT INTO sagaflow_pgc_steps (run_id, step, output) \
     VALUES ($1, $2, $3) ON CONFLICT (run_id, step) DO UPDATE SET output = EXCLUDED.output";
/// The checkpoint's UPDATE of one other row: the run's own.
pub(crate) const BUMP: &str =
    "UPDATE sagaflow_pgc_runs SET version = version + 1, last_step = $2 WHERE run_id = $1";
/// The bare single-row INSERT (autocommit).
pub(crate) const INSERT: &str =
    "INSERT INTO sagaflow_pgc_log (run_id, step, output) VALUES ($1, $2, $3)";
/// A group commit's batch as one statement: the upserts of every queued write.
pub(crate) const UPSERT_UNNEST: &str = "INSERT INTO sagaflow_pgc_steps (run_id, step, output) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
     ON CONFLICT (run_id, step) DO UPDATE SET output = EXCLUDED.output";
/// A group commit's batch as one statement: the run rows of every queued write.
pub(crate) const BUMP_UNNEST: &str = "UPDATE sagaflow_pgc_runs AS r \
     SET version = r.version + 1, last_step = u.step \
     FROM UNNEST($1::text[], $2::text[]) AS u(run_id, step) WHERE r.run_id = u.run_id";

/// The run id of the sequential contenders.
pub(crate) const SEQ_RUN: &str = "seq";
/// Concurrent task `i` writes run `c{i}`; pgbench's client `i` run `pgb-{i}`.
pub(crate) const TASKS: usize = 100;
/// Clients of the pgbench runs with 16 connections.
pub(crate) const PGBENCH_CLIENTS: usize = 16;

const DROP: &str = "DROP TABLE IF EXISTS sagaflow_pgc_steps, sagaflow_pgc_runs, sagaflow_pgc_log";

/// Checkpoints and bare inserts that a contender of this program saw commit.
pub(crate) static CHECKPOINTS: AtomicU64 = AtomicU64::new(0);
pub(crate) static INSERTS: AtomicU64 = AtomicU64::new(0);
static NEXT_STEP: AtomicU64 = AtomicU64::new(0);

/// A fresh step name and its ~20-byte output: every checkpoint inserts a new row.
pub(crate) fn next_step() -> (String, String) {
    let n = NEXT_STEP.fetch_add(1, Ordering::Relaxed);
    (format!("s{n}"), format!("out-{n:016}"))
}

/// Drops whatever an earlier, interrupted run left, then creates the three tables and every run
/// row the contenders update.
pub(crate) async fn create(client: &Client) -> Result<()> {
    client.batch_execute(DROP).await?;
    client
        .batch_execute(
            "CREATE TABLE sagaflow_pgc_steps (run_id text NOT NULL, step text NOT NULL, \
                 output text NOT NULL, PRIMARY KEY (run_id, step));
             CREATE TABLE sagaflow_pgc_runs (run_id text PRIMARY KEY, \
                 version bigint NOT NULL DEFAULT 0, last_step text);
             CREATE TABLE sagaflow_pgc_log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 run_id text NOT NULL, step text NOT NULL, output text NOT NULL);",
        )
        .await?;
    let mut runs = vec![SEQ_RUN.to_owned()];
    runs.extend((0..TASKS).map(|i| format!("c{i}")));
    runs.extend((0..PGBENCH_CLIENTS).map(|i| format!("pgb-{i}")));
    runs.extend((0..crate::checks::BOUNCER_TASKS).map(|i| format!("bouncer-{i}")));
    client
        .execute(
            "INSERT INTO sagaflow_pgc_runs (run_id) SELECT * FROM UNNEST($1::text[])",
            &[&runs],
        )
        .await?;
    Ok(())
}

pub(crate) async fn drop_all(client: &Client) -> Result<()> {
    client.batch_execute(DROP).await?;
    Ok(())
}

/// What the tables hold against what the contenders and pgbench reported: every reported
/// checkpoint bumped its run's version exactly once, every reported insert left one row. The
/// PgBouncer check's runs are left out (a contender that PgBouncer breaks fails part-way).
pub(crate) async fn verify(
    client: &Client,
    pgbench_checkpoints: u64,
    pgbench_inserts: u64,
) -> Result<String> {
    let row = client
        .query_one(
            "SELECT (SELECT coalesce(sum(version), 0)::bigint FROM sagaflow_pgc_runs \
                 WHERE run_id NOT LIKE 'bouncer-%'), \
             (SELECT count(*) FROM sagaflow_pgc_log WHERE run_id NOT LIKE 'bouncer-%')",
            &[],
        )
        .await?;
    let versions = u64::try_from(row.get::<_, i64>(0))?;
    let rows = u64::try_from(row.get::<_, i64>(1))?;
    let checkpoints = CHECKPOINTS.load(Ordering::Relaxed) + pgbench_checkpoints;
    let inserts = INSERTS.load(Ordering::Relaxed) + pgbench_inserts;
    if versions != checkpoints || rows != inserts {
        return Err(format!(
            "the tables disagree with the counts: {versions} run versions for {checkpoints} \
             reported checkpoints, {rows} log rows for {inserts} reported inserts"
        )
        .into());
    }
    Ok(format!(
        "{checkpoints} checkpoints and {inserts} single-row inserts reported, and found in the tables"
    ))
}
