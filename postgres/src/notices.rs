//! Notices of signals, queues and hand-overs: every delivery sends `NOTIFY` on the schema's
//! channel in its own transaction, and so does every enqueue, in the transaction that creates
//! its run (payload [`QUEUED`]), and every hand-over of runs, in its own (payload [`FREED`]
//! and the number of runs); each store keeps one connection that `LISTEN`s to it, so that an
//! engine waiting for a signal another replica delivered, serving a queue another process put
//! a run on, or able to take over runs a draining replica let go, hears of it at once instead
//! of at its next poll (the poll stays, as the fallback). The connection is made again
//! whenever it is lost; a notice of every kind is given then too, since a delivery, an enqueue
//! or a hand-over may have happened while no one listened.
//!
//! A release before this one's hears a hand-over's payload as a delivery's (any payload but
//! [`QUEUED`]): it asks for signals once more, and takes the runs over at its next poll.

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

/// The payload of a hand-over's notification, before the number of runs handed over
/// (`freed:12`).
pub(crate) const FREED: &str = "freed:";

/// How many runs a notice of hand-overs counts when how many is not known (the listener
/// connected again, and hand-overs may have gone unheard meanwhile): a whole poll's worth.
const FREED_UNKNOWN: u64 = sagaflow_core::runtime::TAKEOVER_BATCH as u64;

/// What a store's listener tells: deliveries of signals, runs put on queues, and runs handed
/// over (counted: see `LeaseStore::freed_notices`).
#[derive(Debug)]
pub(crate) struct Notify {
    pub(crate) signals: watch::Sender<u64>,
    pub(crate) queues: watch::Sender<u64>,
    pub(crate) freed: watch::Sender<u64>,
}

fn bump(notices: &watch::Sender<u64>) {
    add(notices, 1);
}

fn add(notices: &watch::Sender<u64>, count: u64) {
    notices.send_modify(|n| *n = n.wrapping_add(count));
}

/// The number of runs a hand-over's payload counts, if it is one: `None` for any other
/// payload; a count that does not parse counts as unknown.
fn freed(payload: &str) -> Option<u64> {
    let count = payload.strip_prefix(FREED)?;
    Some(count.parse().unwrap_or(FREED_UNKNOWN))
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
                Ok(AsyncMessage::Notification(heard)) => {
                    if heard.payload() == QUEUED {
                        bump(&notices.queues);
                    } else if let Some(count) = freed(heard.payload()) {
                        add(&notices.freed, count);
                    } else {
                        bump(&notices.signals);
                    }
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
                        add(&notices.freed, FREED_UNKNOWN);
                        let _ = driver.await;
                    }
                    Err(error) => {
                        driver.abort();
                        tracing::warn!(database = %label, error = %describe(&error), "cannot listen for signals, queues and hand-overs; polling meanwhile");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(database = %label, error = %describe(&error), "cannot connect to listen for signals, queues and hand-overs; polling meanwhile");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_over_s_payload_counts_its_runs_and_no_other_payload_does() {
        assert_eq!(freed("freed:12"), Some(12));
        assert_eq!(freed("freed:"), Some(FREED_UNKNOWN));
        assert_eq!(freed("freed:many"), Some(FREED_UNKNOWN));
        assert_eq!(freed(QUEUED), None);
        assert_eq!(freed(""), None);
    }
}
