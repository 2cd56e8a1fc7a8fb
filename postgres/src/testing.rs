//! For tests of code on PostgreSQL (the `testing` feature, a dev-dependency feature, never in a
//! build that ships): the server the tests run on, and a schema of its own for each test.
//!
//! The server's URL comes from `SAGAFLOW_PG_URL`, by default the local server of every
//! development and CI machine (`postgres://postgres@127.0.0.1:5432/test`). Without a reachable
//! server, [`server`] fails the test when `CI` is set, and elsewhere returns `None` after one
//! line that says how to run it. Schemas are named `sagaflow_test_<unix seconds>_<tag><random>`;
//! [`server`] drops those an hour old, which a crashed test or a store test that keeps its
//! schema left behind, so the test database does not grow.

#![allow(clippy::panic)] // a test without its server fails as a test does

use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

use crate::{PgOptions, PgStore};

/// The variable that names the server.
pub const URL_VAR: &str = "SAGAFLOW_PG_URL";

/// The server tests use when [`URL_VAR`] is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server's URL as configured, whether it answers or not.
pub fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A schema name no other test uses; `tag` says whose it is (`saga`, `fsm`, ...).
pub fn fresh_schema(tag: &str) -> String {
    format!("sagaflow_test_{}_{tag}{:016x}", now_s(), fastrand::u64(..))
}

/// The server's URL, if it answers (and, once per call, the test schemas an hour old are
/// dropped). Panics when it does not answer and `CI` is set.
pub async fn server() -> Option<String> {
    let url = url();
    match tokio_postgres::connect(&url, NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            sweep(&client).await;
            Some(url)
        }
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!("no PostgreSQL server at {URL_VAR} ({error}), and CI is set")
        }
        Err(error) => {
            eprintln!(
                "skipped: no PostgreSQL server ({error}); set {URL_VAR} to a server's URL to run this test"
            );
            None
        }
    }
}

/// Drops the test schemas an hour old or more.
async fn sweep(client: &tokio_postgres::Client) {
    let cutoff = now_s().saturating_sub(3600);
    let Ok(rows) = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sagaflow_test_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let stamp = name
            .strip_prefix("sagaflow_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|s| s.parse::<u64>().ok());
        if stamp.is_some_and(|s| s < cutoff) {
            let _ = drop_schema_with(client, &name).await;
        }
    }
}

async fn drop_schema_with(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
}

/// Drops `schema` from the server at `url`, if it can.
pub async fn drop_schema(url: &str, schema: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(url, NoTls).await {
        tokio::spawn(connection);
        let _ = drop_schema_with(&client, schema).await;
    }
}

/// A store in a fresh schema (tagged `tag`) on the server, or `None` as [`server`] says. The
/// schema is left for the sweep.
pub async fn store(tag: &str) -> Option<PgStore> {
    let url = server().await?;
    let options = PgOptions::default().schema(fresh_schema(tag));
    match PgStore::connect(&url, options).await {
        Ok(store) => Some(store),
        Err(error) => panic!("the server answers, yet the store does not connect: {error}"),
    }
}

/// An engine on schema `schema` of the server at [`url`] whose leases are `owner`'s: a process
/// of a service that keeps its id across restarts, as a crash test's child and the process
/// that takes its runs up after it are. Panics if the store does not connect.
pub async fn engine_as(schema: &str, owner: &str) -> sagaflow_core::runtime::Engine {
    let options = PgOptions::default().schema(schema).owner(owner);
    match PgStore::connect(&url(), options).await {
        Ok(store) => sagaflow_core::runtime::Engine::builder()
            .store(std::sync::Arc::new(store))
            .build(),
        Err(error) => panic!("a store on schema `{schema}` does not connect: {error}"),
    }
}

/// The advisory lock keys (for `pg_advisory_lock(k1, k2)`) under which a store holds the
/// default owner id `owner` in `schema` (see [`PgOptions::owner`]).
pub fn owner_lock(schema: &str, owner: &str) -> (i32, i32) {
    crate::owner::key(schema, owner)
}

/// Whether a live session on the server at `url` holds the owner id `owner` of `schema`:
/// `None` if the server cannot be asked.
pub async fn owner_held(url: &str, schema: &str, owner: &str) -> Option<bool> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.ok()?;
    tokio::spawn(connection);
    let (k1, k2) = owner_lock(schema, owner);
    let (k1, k2) = (i64::from(k1.cast_unsigned()), i64::from(k2.cast_unsigned()));
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2)",
            &[&k1, &k2],
        )
        .await
        .ok()
        .map(|row| row.get(0))
}
