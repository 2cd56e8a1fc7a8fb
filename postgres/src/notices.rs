//! Notices of signals: every delivery sends `NOTIFY` on the schema's channel in its own
//! transaction, and each store keeps one connection that `LISTEN`s to it, so that an engine
//! waiting for a signal another replica delivered hears of it at once instead of at its next
//! poll (the poll stays, as the fallback). The connection is made again whenever it is lost;
//! a notice is given then too, since a delivery may have happened while no one listened.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::error::describe;

/// The channel of the schema `schema`: an identifier of at most 63 bytes whatever the
/// schema's name.
pub(crate) fn channel(schema: &str) -> String {
    let hash = sagaflow_graph::fnv::hash(schema.as_bytes());
    format!("sagaflow_signals_{hash:016x}")
}

/// Drives `connection`, bumping `notices` at each notification, until it ends.
fn hear<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notices: Arc<watch::Sender<u64>>,
) -> tokio::task::JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    notices.send_modify(|n| *n = n.wrapping_add(1));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
}

/// Listens on `channel` until the task is aborted (the store is dropped), bumping `notices`
/// at every notification and at every (re)connection.
pub(crate) async fn listen(
    config: crate::connect::Target,
    label: Arc<str>,
    channel: String,
    notices: Arc<watch::Sender<u64>>,
) {
    let bump = |notices: &watch::Sender<u64>| notices.send_modify(|n| *n = n.wrapping_add(1));
    let mut pause = Duration::from_millis(50);
    loop {
        let opened = match &config.tls {
            None => config
                .config
                .connect(NoTls)
                .await
                .map(|(client, connection)| (client, hear(connection, Arc::clone(&notices)))),
            Some(tls) => config
                .config
                .connect(tls.clone())
                .await
                .map(|(client, connection)| (client, hear(connection, Arc::clone(&notices)))),
        };
        match opened {
            Ok((client, driver)) => {
                match client.batch_execute(&format!("LISTEN {channel}")).await {
                    Ok(()) => {
                        pause = Duration::from_millis(50);
                        // Deliveries while no one listened are found by the next question.
                        bump(&notices);
                        let _ = driver.await;
                    }
                    Err(error) => {
                        driver.abort();
                        tracing::warn!(database = %label, error = %describe(&error), "cannot listen for signals; polling meanwhile");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(database = %label, error = %describe(&error), "cannot connect to listen for signals; polling meanwhile");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
