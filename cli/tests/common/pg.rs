//! The PostgreSQL server the tests run on, as the `sagaflow-postgres` tests find it: its URL
//! from `SAGAFLOW_PG_URL` (by default `postgres://postgres@127.0.0.1:5432/test`), a schema of
//! their own for each test (named as theirs are, `sagaflow_test_<secs>_<random>`, so that
//! their sweep drops any a crashed test left), and without a reachable server a failure when
//! `CI` is set, elsewhere a skip after one line that says how to run them.

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

pub use sagaflow_postgres::testing::server;

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    sagaflow_postgres::testing::fresh_schema("cli")
}

/// A connection of the test's own, its search path on `schema`, for what a test does behind
/// the store's back.
pub async fn client(url: &str, schema: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connects");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path TO \"{schema}\""))
        .await
        .expect("sets the search path");
    client
}

/// Whether `schema` exists on the server.
pub async fn schema_exists(url: &str, schema: &str) -> bool {
    client(url, "public")
        .await
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await
        .expect("reads pg_namespace")
        .get(0)
}

/// The server as the command line names it: its URL without the password (built from the
/// parts, as the store builds it), and the schema where it is not the default.
pub fn shown(url: &str, schema: &str) -> String {
    let config: Config = url.parse().expect("a PostgreSQL URL");
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { "" } else { "@" };
    let label = format!("postgres://{user}{at}{}/{db}", hosts.join(","));
    if schema == "sagaflow" {
        label
    } else {
        format!("{label} (schema {schema})")
    }
}

/// `url` with a password, and the password: the one it has, or one added (which a server
/// that let the test in without a password ignores).
pub fn with_password(url: &str) -> (String, String) {
    let config: Config = url.parse().expect("a PostgreSQL URL");
    if let Some(password) = config.get_password() {
        return (
            url.to_owned(),
            String::from_utf8_lossy(password).into_owned(),
        );
    }
    let (scheme, rest) = url
        .split_once("://")
        .expect("SAGAFLOW_PG_URL is a URL: postgres://user@host/db");
    let (user, host) = rest
        .split_once('@')
        .expect("SAGAFLOW_PG_URL names its user: postgres://user@host/db");
    let password = "s3cret-do-not-print".to_owned();
    (format!("{scheme}://{user}:{password}@{host}"), password)
}

/// A schema on the server, dropped with this guard.
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        // A drop cannot await: a thread with a runtime of its own drops the schema.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}
