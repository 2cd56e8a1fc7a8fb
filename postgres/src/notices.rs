//! Notices of signals and queues: every delivery sends `NOTIFY` on the schema's channel in its
//! own transaction, and so does every enqueue, in the transaction that creates its run
//! (payload [`QUEUED`]); each store keeps one connection that `LISTEN`s to it, so that an engine
//! waiting for a signal another replica delivered, or serving a queue another process put a
//! run on, hears of it at once instead of at its next poll (the poll stays, as the fallback).
//! The connection is made again whenever it is lost; a notice of both kinds is given then too,
//! since a delivery or an enqueue may have happened while no one listened.

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

/// The payload of an enqueue's notification (a delivery's is empty).
pub(crate) const QUEUED: &str = "queued";

/// What a store's listener tells: deliveries of signals, and runs put on queues.
#[derive(Debug)]
pub(crate) struct Notify {
    pub(crate) signals: watch::Sender<u64>,
    pub(crate) queues: watch::Sender<u64>,
}

fn bump(notices: &watch::Sender<u64>) {
    notices.send_modify(|n| *n = n.wrapping_add(1));
}

/// Drives `connection`, bumping the notices of each notification's kind, until it ends.
fn hear<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notices: Arc<Notify>,
) -> tokio::task::JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(heard)) if heard.payload() == QUEUED => {
                    bump(&notices.queues);
                }
                Ok(AsyncMessage::Notification(_)) => bump(&notices.signals),
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
    notices: Arc<Notify>,
) {
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
                        // Deliveries and enqueues while no one listened are found by the next
                        // question.
                        bump(&notices.signals);
                        bump(&notices.queues);
                        let _ = driver.await;
                    }
                    Err(error) => {
                        driver.abort();
                        tracing::warn!(database = %label, error = %describe(&error), "cannot listen for signals and queues; polling meanwhile");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(database = %label, error = %describe(&error), "cannot connect to listen for signals and queues; polling meanwhile");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
