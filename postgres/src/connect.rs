//! Connections: the writer's own, the pool's and the listener's, each over TLS or not as the
//! URL's `sslmode` says (see `tls`).

use std::ops::{Deref, DerefMut};

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::describe;
use sagaflow_core::runtime::error::StoreError;

/// Where and how to connect: the client's configuration, the TLS connector (`None`: plain
/// connections, `sslmode=disable`), and whether the server is behind a pooler in transaction
/// mode (see `session`). Reads as the configuration it holds.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Option<MakeRustlsConnect>,
    /// Behind a pooler in transaction mode: as the URL says, and, once [`configure`]d, as the
    /// options say too.
    pub(crate) pooled: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("pooled", &self.pooled)
            .finish()
    }
}

impl Deref for Target {
    type Target = tokio_postgres::Config;

    fn deref(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl DerefMut for Target {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }
}

/// Connects to `target` and drives the connection on a task of its own; a failure is
/// [`StoreError::Open`] naming `label` (the URL without its password).
pub(crate) async fn connect(target: &Target, label: &str) -> Result<Client, StoreError> {
    connect_watched(target, label)
        .await
        .map(|(client, _)| client)
}

/// [`connect`], with the handle of the task that drives the connection: it ends when the
/// connection does (lost, or closed once the client is dropped), and aborting it closes the
/// connection at once.
pub(crate) async fn connect_watched(
    target: &Target,
    label: &str,
) -> Result<(Client, JoinHandle<()>), StoreError> {
    let opened = match &target.tls {
        None => target
            .config
            .connect(NoTls)
            .await
            .map(|(client, connection)| (client, drive(connection, label))),
        Some(tls) => target
            .config
            .connect(tls.clone())
            .await
            .map(|(client, connection)| (client, drive(connection, label))),
    };
    opened.map_err(|e| StoreError::Open {
        path: label.to_owned(),
        message: format!("cannot connect: {}", describe(&e)),
    })
}

/// Drives `connection` until it ends.
fn drive<F>(connection: F, label: &str) -> JoinHandle<()>
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    let label = label.to_owned();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(database = %label, error = %describe(&error), "a connection ended");
        }
    })
}

/// The pool's connection manager for `target`.
pub(crate) fn manager(target: &Target) -> Manager {
    let config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    match &target.tls {
        None => Manager::from_config(target.config.clone(), NoTls, config),
        Some(tls) => Manager::from_config(target.config.clone(), tls.clone(), config),
    }
}

/// The settings of every statement of a store, as `(name, value)`: the store's schema first
/// on the search path, the statement and lock timeouts.
pub(crate) fn settings(options: &crate::PgOptions) -> [(&'static str, String); 4] {
    let ms = |d: std::time::Duration| d.as_millis().min(i32::MAX as u128).to_string();
    // A session left in a transaction by a client that vanished (a link that dropped every
    // packet) holds its locks, the log lock included, until the server gives it up: after
    // the statement timeout, as for a statement that hangs. The schema is quoted, as the
    // migrations quote it: unquoted, the server would fold `Billing` to `billing`, a schema
    // the store never made. (A schema name is a plain identifier, checked before: no quote
    // to escape.)
    [
        ("search_path", format!("\"{}\"", options.schema)),
        ("statement_timeout", ms(options.statement_timeout)),
        ("lock_timeout", ms(options.lock_timeout)),
        (
            "idle_in_transaction_session_timeout",
            ms(options.statement_timeout),
        ),
    ]
}

/// `config` as every connection of a store uses it: the [`settings`] for the whole session
/// (unless behind a pooler in transaction mode, which refuses them: then each transaction
/// sets them, see `session`), and an application name that says who holds it.
pub(crate) fn configure(mut config: Target, options: &crate::PgOptions) -> Target {
    config.pooled |= options.transaction_pooling;
    if !config.pooled {
        let extra = settings(options)
            .iter()
            .map(|(name, value)| format!("-c {name}={value}"))
            .collect::<Vec<_>>()
            .join(" ");
        let merged = match config.get_options() {
            Some(user) if !user.is_empty() => format!("{user} {extra}"),
            _ => extra,
        };
        config.options(merged);
    }
    if config.get_application_name().is_none() {
        config.application_name("sagaflow");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    config
}
