//! The PostgreSQL server the tests run on, and a schema of their own for each test.
//!
//! The server's URL comes from `SAGAFLOW_PG_URL` (by default the local server of every
//! development and CI machine, `postgres://postgres@127.0.0.1:5432/test`). Without a reachable
//! server the tests fail when `CI` is set, and elsewhere pass after one line that says how to
//! run them.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sagaflow_core::conformance::durable::TestDatabase;
use sagaflow_postgres::{PgOptions, PgStore};
use tokio_postgres::NoTls;

/// The variable that names the server.
pub(crate) const URL_VAR: &str = "SAGAFLOW_PG_URL";

/// The server's URL as configured, whether it answers or not.
pub(crate) fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The server's URL, if it answers. Panics when it does not and `CI` is set.
pub(crate) async fn server() -> Option<String> {
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

/// Schemas left behind by tests an hour ago or more (a test that panicked, or a store test
/// that does not drop its schema) are dropped, so the test database does not grow.
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
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await;
        }
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A schema name no other test uses.
pub(crate) fn fresh_schema() -> String {
    format!("sagaflow_test_{}_{:016x}", now_s(), fastrand::u64(..))
}

/// A database for one test: a schema of its own on the server, dropped with it.
pub(crate) struct Db {
    pub(crate) url: String,
    pub(crate) schema: String,
}

impl Db {
    /// A fresh schema on the server, or `None` (after saying so) when there is no server.
    pub(crate) async fn new() -> Option<Db> {
        Some(Db {
            url: server().await?,
            schema: fresh_schema(),
        })
    }

    /// Options on this database's schema.
    pub(crate) fn options(&self) -> PgOptions {
        PgOptions::default().schema(&self.schema)
    }

    /// A store on this database.
    pub(crate) async fn store(&self) -> PgStore {
        PgStore::connect(&self.url, self.options())
            .await
            .expect("connects")
    }
}

impl TestDatabase for Db {
    type Store = PgStore;

    async fn open(&self, owner: &str, lease: Duration, max_recoveries: u32) -> PgStore {
        let options = self
            .options()
            .owner(owner)
            .lease(lease)
            .max_recoveries(max_recoveries);
        PgStore::connect(&self.url, options)
            .await
            .expect("connects")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // A drop cannot await: a thread with a runtime of its own drops the schema.
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// A fresh store on a schema of its own (left for the sweep), or a return from the test when
/// there is no server.
#[macro_export]
macro_rules! fresh_store {
    () => {
        match support::Db::new().await {
            Some(db) => {
                let store = db.store().await;
                // The schema outlives this test's store; the sweep drops it later.
                std::mem::forget(db);
                store
            }
            None => return,
        }
    };
}

/// A fresh database, or a return from the test when there is no server.
#[macro_export]
macro_rules! fresh_db {
    () => {
        match support::Db::new().await {
            Some(db) => db,
            None => return,
        }
    };
}
pub(crate) mod proxy;
pub(crate) mod server;
