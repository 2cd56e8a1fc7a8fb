//! The schema: an append-only list of migrations, applied under an advisory lock so that
//! replicas starting together do not race, and refused when the database is newer.
//!
//! The version lives in `schema_version`, one row in the store's schema. Each migration runs
//! in its own transaction together with the bump of that row, so a crash mid-upgrade leaves
//! the database at a whole version. A released migration is never edited; a new one is
//! appended.

use tokio_postgres::Client;

use crate::error::pg_error;
use crate::session::Session;
use sagaflow_core::runtime::error::StoreError;

/// The migrations, oldest first; migration `i` takes the schema from version `i` to `i + 1`.
/// Append only: a migration that has shipped must never change.
const MIGRATIONS: &[&str] = &[V1];

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1: runs, steps, the event log, signals, leases, machines, and the writers' batch
/// numbers.
///
/// - Times are unix milliseconds by the server's clock (`now_ms()`), so that replicas on hosts
///   whose clocks differ agree on when a lease expires.
/// - `lease_token` is the fencing token, bumped by every take-up; every write of a run checks
///   it under the log lock, which every take-up also holds (see `writer`). `runs.version` is
///   bumped when the run's row is written: at a lease renewal and at the run's end.
/// - `steps.first_seq` orders a run's steps by first start (an upsert keeps it).
/// - `events.seq` and `signals.position` are numbered under the log lock (a transaction-level
///   advisory lock), so they grow in commit order: a reader that has seen every row up to `p`
///   finds any later one above `p`.
/// - `writers` holds each writer's last committed batch number: a writer whose connection
///   died with a `COMMIT` in flight reads it to learn whether that batch committed, so that
///   it neither loses nor repeats it.
const V1: &str = "
CREATE FUNCTION now_ms() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

CREATE TABLE runs (
    run_id            text    NOT NULL PRIMARY KEY,
    workflow          text    NOT NULL,
    graph_fingerprint bigint  NOT NULL,
    input             text    NOT NULL,
    status            text    NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    error             text,
    version           bigint  NOT NULL,
    created_at        bigint  NOT NULL,
    updated_at        bigint  NOT NULL,
    owner             text,
    lease_token       bigint  NOT NULL DEFAULT 0,
    lease_expires     bigint,
    recoveries        integer NOT NULL DEFAULT 0,
    parked            boolean NOT NULL DEFAULT false,
    graph             text,
    created_seq       bigint  GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX runs_unfinished ON runs (created_at, created_seq)
    WHERE status = 'running' AND NOT parked;
CREATE INDEX runs_stopped ON runs (workflow, created_at, created_seq)
    WHERE status IN ('failed', 'cancelled');

CREATE TABLE steps (
    run_id      text    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name        text    NOT NULL,
    status      text    NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'skipped')),
    attempts    integer NOT NULL,
    output      text,
    error       text,
    started_at  bigint,
    finished_at bigint,
    first_seq   bigint  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE events (
    seq     bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  text    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    at      bigint  NOT NULL,
    kind    text    NOT NULL,
    step    text,
    attempt integer,
    detail  text
);

CREATE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE signals (
    position bigint  GENERATED ALWAYS AS IDENTITY UNIQUE,
    run_id   text    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name     text    NOT NULL,
    payload  text    NOT NULL,
    at       bigint  NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE machines (
    machine_id text   NOT NULL PRIMARY KEY,
    machine    text   NOT NULL,
    state      text   NOT NULL,
    version    bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE INDEX machines_by_type ON machines (machine, machine_id);

CREATE TABLE machine_transitions (
    machine_id text   NOT NULL REFERENCES machines (machine_id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    from_state text   NOT NULL,
    event      text   NOT NULL,
    to_state   text   NOT NULL,
    at         bigint NOT NULL,
    PRIMARY KEY (machine_id, seq)
);

CREATE TABLE writers (
    owner text   NOT NULL PRIMARY KEY,
    batch bigint NOT NULL
);
";

/// The advisory lock keys of a schema: the first key names the purpose, the second the
/// schema (its FNV-1a hash), so that stores in different schemas never wait for each other.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Locks {
    /// Held while migrating: per session, or behind a pooler per transaction.
    pub(crate) migrate: (i32, i32),
    /// Held (per transaction) while numbering events and signals.
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
             ON CONFLICT (one) DO NOTHING;"
    )
}

/// The statement that reads the schema's version.
fn version_sql(schema: &str) -> String {
    format!("SELECT version FROM \"{schema}\".schema_version")
}

/// Migration `sql`, which takes the schema to version `next`, and the bump of the version, to
/// run inside a transaction.
fn step(schema: &str, sql: &str, next: i64) -> String {
    format!(
        "SET LOCAL search_path TO \"{schema}\"; {sql}
         UPDATE \"{schema}\".schema_version SET version = {next};"
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
        let version: i64 = client
            .query_one(&version_sql(schema), &[])
            .await
            .map_err(pg)?
            .get(0);
        check_version(label, version).map_err(Migrate::Store)?;
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|index| MIGRATIONS.get(index))
        else {
            return Ok(());
        };
        let next = version + 1;
        let transaction = format!("BEGIN; {} COMMIT;", step(schema, sql, next));
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
            let version: i64 = client
                .query_typed_one(&version_sql(schema), &[])
                .await
                .map_err(pg)?
                .get(0);
            check_version(label, version).map_err(Migrate::Store)?;
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
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|index| MIGRATIONS.get(index))
        else {
            return client.batch_execute("COMMIT").await.map_err(pg);
        };
        let next = version + 1;
        if let Err(e) = client
            .batch_execute(&format!("{} COMMIT;", step(schema, sql, next)))
            .await
        {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(failed(next, &e));
        }
    }
}

/// Refuses a version past the newest this code knows, or one sagaflow never writes.
pub(crate) fn check_version(label: &str, found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
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
