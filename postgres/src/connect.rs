//! Connections: the writer's own, and the pool's.

use tokio_postgres::{Client, NoTls};

use crate::error::describe;
use sagaflow_core::runtime::error::StoreError;

/// Connects with `config` and drives the connection on a task of its own; a failure is
/// [`StoreError::Open`] naming `label` (the URL without its password).
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
    label: &str,
) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| StoreError::Open {
        path: label.to_owned(),
        message: format!("cannot connect: {}", describe(&e)),
    })?;
    let label = label.to_owned();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(database = %label, error = %describe(&error), "a connection ended");
        }
    });
    Ok(client)
}

/// `config` as every connection of a store uses it: the store's schema first on the search
/// path, the statement and lock timeouts, and an application name that says who holds it.
pub(crate) fn configure(
    mut config: tokio_postgres::Config,
    options: &crate::PgOptions,
) -> tokio_postgres::Config {
    let ms = |d: std::time::Duration| d.as_millis().min(i32::MAX as u128);
    // A session left in a transaction by a client that vanished (a link that dropped every
    // packet) holds its locks, the log lock included, until the server gives it up: after
    // the statement timeout, as for a statement that hangs. The schema is quoted, as the
    // migrations quote it: unquoted, the server would fold `Billing` to `billing`, a schema
    // the store never made. (A schema name is a plain identifier, checked before: no quote
    // to escape.)
    let extra = format!(
        "-c search_path=\"{}\" -c statement_timeout={} -c lock_timeout={} \
         -c idle_in_transaction_session_timeout={}",
        options.schema,
        ms(options.statement_timeout),
        ms(options.lock_timeout),
        ms(options.statement_timeout),
    );
    let merged = match config.get_options() {
        Some(user) if !user.is_empty() => format!("{user} {extra}"),
        _ => extra,
    };
    config.options(merged);
    if config.get_application_name().is_none() {
        config.application_name("sagaflow");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    config
}
