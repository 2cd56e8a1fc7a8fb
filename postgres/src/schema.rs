//! The schema: an append-only list of migrations, applied under an advisory lock so that
//! replicas starting together do not race, and refused when the database is newer.
//!
//! The version lives in `schema_version`, one row in the store's schema. Each migration runs
//! in its own transaction together with the bump of that row, so a crash mid-upgrade leaves
//! the database at a whole version. A released migration is never edited; a new one is
//! appended.
//!
//! Changes are expand-then-contract, so that a rolling upgrade works: beside its version, the
//! row holds `compatible_from`, the oldest version whose code still works on the schema. A
//! migration that only adds (a table, a nullable column, a function of a new name) leaves it
//! where it was; one that takes something away, or changes what the code before it relies on,
//! raises it to its own version, and ships a release after the one that stopped using what it
//! removes. Code meets a newer schema at work: it goes on if it is within that window, and is
//! refused beyond it.

use tokio_postgres::Client;

use crate::error::pg_error;
use crate::session::Session;
use sagaflow_core::runtime::error::StoreError;

mod migrations;
use migrations::{V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12};

/// The migrations, oldest first; migration `i` takes the schema from version `i` to `i + 1`,
/// and the oldest version whose code works on the schema it leaves (see the module). Append
/// only: a migration that has shipped must never change.
const MIGRATIONS: &[(&str, i64)] = &[
    (V1, 1),
    // The steps table became a view: code of version 1 wrote to it.
    (V2, 2),
    // Only adds `replicas`.
    (V3, 2),
    // Only adds an index.
    (V4, 2),
    // Only sets storage parameters.
    (V5, 2),
    // Only adds the queue columns and their index.
    (V6, 2),
    // Numbers events by transaction, without the log lock; `record_v1` keeps its signature
    // and its answer, so the release before it writes through the new body.
    (V7, 2),
    // Only adds a run's concurrency key and start time, and their indexes.
    (V8, 2),
    // Only adds `events.mark`, which the code before it neither writes nor reads.
    (V9, 2),
    // Only adds `events.next_step` and reads it in the `steps` view, which reads the rows
    // without it as before; the code before it writes no row with it.
    (V10, 2),
    // Only adds `graphs`; `runs.graph` stays, null for the runs this version creates.
    (V11, 2),
    // Only changes the run ids' collation (and makes the `steps` view again as it was).
    (V12, 2),
];

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock keys of a schema: the first key names the purpose, the second the
/// schema (its FNV-1a hash), so that stores in different schemas never wait for each other.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Locks {
    /// Held while migrating: per session, or behind a pooler per transaction.
    pub(crate) migrate: (i32, i32),
    /// Held (per transaction) while numbering signals (and, before schema 7, events).
    pub(crate) log: (i32, i32),
}

impl Locks {
    pub(crate) fn of(schema: &str) -> Locks {
        let hash = sagaflow_graph::fnv::hash(schema.as_bytes());
        // The low 32 bits, as the i32 of the same bits.
        let schema_key = (hash as u32).cast_signed();
        Locks {
            migrate: (0x5346_4d01, schema_key),
            log: (0x5346_4c01, schema_key),
        }
    }
}

/// Creates the schema if missing and applies the migrations it lacks, under the migration
/// lock. Every failure names `label`.
pub(crate) async fn migrate(
    client: &Client,
    session: &Session,
    label: &str,
    schema: &str,
    locks: Locks,
) -> Result<(), StoreError> {
    let open = |message: String| StoreError::Open {
        path: label.to_owned(),
        message,
    };
    let result = if session.pooled() {
        migrate_pooled(client, session, label, schema, locks).await
    } else {
        let (k1, k2) = locks.migrate;
        client
            .execute("SELECT pg_advisory_lock($1, $2)", &[&k1, &k2])
            .await
            .map_err(|e| pg_error(label, &e))?;
        let result = migrate_locked(client, label, schema).await;
        // Session-level: let go whatever happened (a dropped connection lets go too).
        let _ = client
            .execute("SELECT pg_advisory_unlock($1, $2)", &[&k1, &k2])
            .await;
        result
    };
    result.map_err(|e| match e {
        Migrate::Store(e) => e,
        Migrate::Failed(message) => open(message),
    })
}

enum Migrate {
    Store(StoreError),
    Failed(String),
}

/// The schema and its version's table, made if missing.
fn bootstrap(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS \"{schema}\".schema_version (
             one     boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (one),
             version bigint  NOT NULL
         );
         INSERT INTO \"{schema}\".schema_version (version) VALUES (0)
             ON CONFLICT (one) DO NOTHING;
         ALTER TABLE \"{schema}\".schema_version
             ADD COLUMN IF NOT EXISTS compatible_from bigint NOT NULL DEFAULT 0;"
    )
}

/// The statement that reads the schema's version.
fn version_sql(schema: &str) -> String {
    format!("SELECT version, compatible_from FROM \"{schema}\".schema_version")
}

/// Migration `sql`, which takes the schema to version `next`, and the bump of the version, to
/// run inside a transaction.
fn step(schema: &str, (sql, works_from): (&str, i64), next: i64) -> String {
    format!(
        "SET LOCAL search_path TO \"{schema}\"; {sql}
         UPDATE \"{schema}\".schema_version
             SET version = {next}, compatible_from = {works_from};"
    )
}

/// The migration `next` failed with `e`.
fn failed(next: i64, e: &tokio_postgres::Error) -> Migrate {
    Migrate::Failed(format!(
        "migration to schema version {next} failed: {}",
        crate::error::describe(e)
    ))
}

async fn migrate_locked(client: &Client, label: &str, schema: &str) -> Result<(), Migrate> {
    let pg = |e: tokio_postgres::Error| Migrate::Store(pg_error(label, &e));
    client.batch_execute(&bootstrap(schema)).await.map_err(pg)?;
    loop {
        let found = client
            .query_one(&version_sql(schema), &[])
            .await
            .map_err(pg)?;
        let version: i64 = found.get(0);
        check_version(label, version, found.get(1)).map_err(Migrate::Store)?;
        let Some(&migration) = usize::try_from(version)
            .ok()
            .and_then(|index| MIGRATIONS.get(index))
        else {
            return Ok(());
        };
        let next = version + 1;
        let transaction = format!("BEGIN; {} COMMIT;", step(schema, migration, next));
        if let Err(e) = client.batch_execute(&transaction).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(failed(next, &e));
        }
    }
}

/// Behind a pooler in transaction mode, where a session's lock would stay with a server
/// connection the pooler hands to other clients: each migration is a transaction that takes
/// the migration lock for itself (`pg_advisory_xact_lock`) before it reads the version, so
/// replicas starting together still apply each migration once.
async fn migrate_pooled(
    client: &Client,
    session: &Session,
    label: &str,
    schema: &str,
    locks: Locks,
) -> Result<(), Migrate> {
    let pg = |e: tokio_postgres::Error| Migrate::Store(pg_error(label, &e));
    let (k1, k2) = locks.migrate;
    loop {
        // Every statement in the transaction: the pooler keeps it on one server connection.
        let opened = format!(
            "{}; SELECT pg_advisory_xact_lock({k1}, {k2}); {}",
            session.begin(),
            bootstrap(schema)
        );
        let version = async {
            client.batch_execute(&opened).await.map_err(pg)?;
            let found = client
                .query_typed_one(&version_sql(schema), &[])
                .await
                .map_err(pg)?;
            let version: i64 = found.get(0);
            check_version(label, version, found.get(1)).map_err(Migrate::Store)?;
            Ok(version)
        }
        .await;
        let version = match version {
            Ok(version) => version,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        let Some(&migration) = usize::try_from(version)
            .ok()
            .and_then(|index| MIGRATIONS.get(index))
        else {
            return client.batch_execute("COMMIT").await.map_err(pg);
        };
        let next = version + 1;
        if let Err(e) = client
            .batch_execute(&format!("{} COMMIT;", step(schema, migration, next)))
            .await
        {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(failed(next, &e));
        }
    }
}

/// Refuses a version past the newest this code knows, unless the code of this version still
/// works on it (`compatible_from`, 0 where no migration has said), or one sagaflow never
/// writes.
pub(crate) fn check_version(
    label: &str,
    found: i64,
    compatible_from: i64,
) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION && !(1..=SCHEMA_VERSION).contains(&compatible_from) {
        return Err(StoreError::SchemaTooNew {
            path: label.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(StoreError::Open {
            path: label.to_owned(),
            message: format!("schema version {found} is not one sagaflow writes"),
        });
    }
    Ok(())
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The test server's URL, a connection to it, and a fresh schema name tagged `tag`; `None`
    /// when there is no server.
    async fn scratch(tag: &str) -> Option<(String, Client, String)> {
        let url = crate::testing::server().await?;
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        Some((url, client, crate::testing::fresh_schema(tag)))
    }

    /// What the `steps` table or view says of run `r`, in the order steps first started.
    async fn steps_of(client: &Client, schema: &str) -> Vec<String> {
        steps_of_run(client, schema, "r").await
    }

    /// What the `steps` table or view says of run `run`, in the order steps first started.
    async fn steps_of_run(client: &Client, schema: &str, run: &str) -> Vec<String> {
        client
            .query(
                &format!(
                    "SELECT name, status, attempts, output, error, started_at, finished_at \
                     FROM \"{schema}\".steps WHERE run_id = $1 ORDER BY first_seq"
                ),
                &[&run],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let (name, status, attempts): (String, String, i32) =
                    (row.get(0), row.get(1), row.get(2));
                let (output, error): (Option<String>, Option<String>) = (row.get(3), row.get(4));
                let (started, finished): (Option<i64>, Option<i64>) = (row.get(5), row.get(6));
                format!("{name} {status} {attempts} {output:?} {error:?} {started:?} {finished:?}")
            })
            .collect()
    }

    /// A database at version 1 with steps in every standing, as version 1's writer left them
    /// (the table) and logged them (the events), migrated to version 2: the view reads off the
    /// events what the table said, outputs included.
    #[tokio::test]
    async fn version_2_reads_every_step_as_version_1_stored_it() {
        let Some((url, client, schema)) = scratch("v2").await else {
            return;
        };
        client
            .batch_execute(&format!(
                "CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\"; {V1}
                 CREATE TABLE schema_version (
                     one boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (one),
                     version bigint NOT NULL);
                 INSERT INTO schema_version (version) VALUES (1);
                 INSERT INTO runs (run_id, workflow, graph_fingerprint, input, status, version,
                                   created_at, updated_at)
                     VALUES ('r', 'W', 1, '0', 'running', 1, 0, 0);
                 INSERT INTO events (run_id, at, kind, step, attempt, detail) VALUES
                     ('r', 0, 'run_created', NULL, NULL, NULL),
                     ('r', 10, 'step_started', 'a', 1, NULL),
                     ('r', 11, 'step_retrying', 'a', 1,
                         '{{\"error\":\"boom\",\"permanent\":false,\"delay_ms\":5}}'),
                     ('r', 12, 'step_started', 'b', 1, NULL),
                     ('r', 13, 'step_started', 'a', 2, NULL),
                     ('r', 14, 'step_completed', 'a', 2, NULL),
                     ('r', 15, 'step_failed', 'b', 1, '{{\"error\":\"bad\",\"permanent\":true}}'),
                     ('r', 16, 'step_skipped', 'c', NULL, NULL),
                     ('r', 17, 'step_started', 'd', 1, NULL),
                     ('r', 18, 'step_retrying', 'd', 1,
                         '{{\"error\":\"again\",\"permanent\":false,\"delay_ms\":5}}'),
                     ('r', 19, 'step_started', 'd', 2, NULL);
                 INSERT INTO steps (run_id, name, status, attempts, output, error, started_at,
                                    finished_at) VALUES
                     ('r', 'a', 'completed', 2, '7', NULL, 10, 14),
                     ('r', 'b', 'failed', 1, NULL, 'bad', 12, 15),
                     ('r', 'c', 'skipped', 0, NULL, NULL, NULL, 16),
                     ('r', 'd', 'running', 2, NULL, 'again', 17, NULL);
                 RESET search_path;"
            ))
            .await
            .unwrap();
        let before = steps_of(&client, &schema).await;
        assert_eq!(before.len(), 4, "{before:?}");
        let session = crate::session::Session::default();
        migrate(&client, &session, "test", &schema, Locks::of(&schema))
            .await
            .unwrap();
        let version: i64 = client
            .query_one(
                &format!("SELECT version FROM \"{schema}\".schema_version"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(steps_of(&client, &schema).await, before);
        crate::testing::drop_schema(&url, &schema).await;
    }

    /// Version 10's compact rows (a row that logs the next step's start too, numbered one past
    /// it) read in the `steps` view as the same events in two rows each: steps that completed
    /// at once, after a retry, that failed, that were skipped, and one still running whose only
    /// event is a start that a completion's row logged.
    #[tokio::test]
    async fn version_10_reads_a_compact_row_as_the_two_events_it_stands_for() {
        let Some((url, client, schema)) = scratch("v10").await else {
            return;
        };
        let session = crate::session::Session::default();
        migrate(&client, &session, "test", &schema, Locks::of(&schema))
            .await
            .unwrap();
        let retrying = r#"{"error":"boom","permanent":false,"delay_ms":5}"#;
        let failed = r#"{"error":"bad","permanent":true}"#;
        client
            .batch_execute(&format!(
                "SET search_path TO \"{schema}\";
                 INSERT INTO events (seq, run_id, at, kind, step, attempt, detail, output,
                                     next_step) VALUES
                     (1, 'p', 1, 'run_created', NULL, NULL, NULL, NULL, NULL),
                     (2, 'p', 1, 'step_started', 'a', 1, NULL, NULL, NULL),
                     (3, 'p', 2, 'step_completed', 'a', 1, NULL, '1', NULL),
                     (4, 'p', 2, 'step_started', 'b', 1, NULL, NULL, NULL),
                     (5, 'p', 3, 'step_retrying', 'b', 1, '{retrying}', NULL, NULL),
                     (6, 'p', 4, 'step_started', 'b', 2, NULL, NULL, NULL),
                     (7, 'p', 5, 'step_completed', 'b', 2, NULL, '2', NULL),
                     (8, 'p', 5, 'step_started', 'c', 1, NULL, NULL, NULL),
                     (9, 'p', 6, 'step_failed', 'c', 1, '{failed}', NULL, NULL),
                     (10, 'p', 7, 'step_skipped', 'd', NULL, NULL, NULL, NULL),
                     (11, 'p', 8, 'step_completed', 'e', 3, NULL, '3', NULL),
                     (12, 'p', 8, 'step_started', 'f', 1, NULL, NULL, NULL),
                     (101, 'c', 1, 'run_created', NULL, NULL, NULL, NULL, NULL),
                     (102, 'c', 1, 'step_started', 'a', 1, NULL, NULL, NULL),
                     (103, 'c', 2, 'step_completed', 'a', 1, NULL, '1', 'b'),
                     (105, 'c', 3, 'step_retrying', 'b', 1, '{retrying}', NULL, NULL),
                     (106, 'c', 4, 'step_started', 'b', 2, NULL, NULL, NULL),
                     (107, 'c', 5, 'step_completed', 'b', 2, NULL, '2', 'c'),
                     (109, 'c', 6, 'step_failed', 'c', 1, '{failed}', NULL, NULL),
                     (110, 'c', 7, 'step_skipped', 'd', NULL, NULL, NULL, NULL),
                     (111, 'c', 8, 'step_completed', 'e', 3, NULL, '3', 'f');
                 RESET search_path;"
            ))
            .await
            .unwrap();
        let (plain, compact) = (
            steps_of_run(&client, &schema, "p").await,
            steps_of_run(&client, &schema, "c").await,
        );
        assert_eq!(plain.len(), 6, "{plain:?}");
        assert_eq!(compact, plain);
        assert_eq!(compact[5], "f running 1 None None Some(8) None");
        crate::testing::drop_schema(&url, &schema).await;
    }
}
