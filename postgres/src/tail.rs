//! The live feed on PostgreSQL: the log read back in order, not the writer's own events.
//!
//! Since schema version 7 an event's `seq` comes from its transaction's id, not from a lock
//! held through commit, so a batch that commits can hold numbers below events of other
//! transactions still running (another replica's, or another writer's). Publishing a batch's
//! own events as it commits would hand a subscriber a position past events that are not in
//! the log yet. So while anyone subscribes, the writer only says how far it committed
//! ([`Tail::committed`]), and a task reads the log after the last position published, below
//! the horizon under which nothing can still come (`reads::events`), and publishes what it
//! finds, every replica's events included (those it finds at a commit here, or within
//! [`POLL`]), each once, in `seq` order. While no one
//! subscribes nothing is read: the publisher only passes the positions committed here, and a
//! subscription starts after them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::Notify;

use crate::session::Session;
use sagaflow_core::runtime::events::Publisher;

/// Events the task reads per query.
const PAGE: usize = 512;

/// How long the task waits before it reads again when the events it was told of are not below
/// the horizon yet (a transaction that took its number before them has not ended).
const NOT_YET: Duration = Duration::from_millis(2);

/// How often the task reads the log while someone listens, for other processes' events.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// How long the task waits before it reads again after the server refused.
const AFTER_ERROR: Duration = Duration::from_millis(200);

/// What the writers tell the task: the highest position committed here.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    committed: AtomicU64,
    nudge: Notify,
}

impl Tail {
    /// Events up to `seq` were committed by this store: published at once if no one listens
    /// (the publisher only passes them), else read back by the task.
    pub(crate) fn committed(&self, publisher: &Publisher, seqs: impl IntoIterator<Item = u64>) {
        let Some(last) = seqs.into_iter().max() else {
            return;
        };
        self.committed.fetch_max(last, Ordering::SeqCst);
        let mut publishing = publisher.publishing();
        if publishing.listened() {
            drop(publishing);
            self.nudge.notify_one();
        } else {
            publishing.advance(last);
        }
    }

    /// The highest position this store committed.
    pub(crate) fn mine(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }
}

/// Reads the log after the publisher's position and publishes it: whenever a writer of this
/// store commits while someone listens, and every [`POLL`] while someone listens (other
/// processes' events, which no writer here announces); until the store is gone (its task is
/// aborted).
pub(crate) async fn run(
    tail: Arc<Tail>,
    publisher: Arc<Publisher>,
    pool: Pool,
    session: Session,
    label: Arc<str>,
) {
    loop {
        tokio::select! {
            () = tail.nudge.notified() => {}
            () = tokio::time::sleep(POLL) => {
                if !publisher.publishing().listened() {
                    continue;
                }
            }
        }
        loop {
            let wanted = tail.committed.load(Ordering::SeqCst);
            let head = publisher.head();
            match read(&publisher, &pool, &session, &label, (head, wanted)).await {
                Ok(Read::Full) => continue,
                Ok(Read::Short) => {}
                Ok(Read::Gone) => {
                    // Below the horizon, yet not in the log: deleted since (a retention
                    // policy). Nothing to publish up to it.
                    publisher.publishing().advance(wanted);
                }
                Err(error) => {
                    tracing::warn!(%error, "the event log could not be read for the live feed");
                    tokio::time::sleep(AFTER_ERROR).await;
                    continue;
                }
            }
            if publisher.head() >= wanted {
                break;
            }
            tokio::time::sleep(NOT_YET).await;
        }
    }
}

enum Read {
    /// A full page: read again at once.
    Full,
    /// The end of what is below the horizon.
    Short,
    /// Nothing after the position, and the horizon is past what the writers here committed.
    Gone,
}

async fn read(
    publisher: &Publisher,
    pool: &Pool,
    session: &Session,
    label: &str,
    (head, wanted): (u64, u64),
) -> Result<Read, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let link = session.on(&client);
    let crate::reads::Page {
        events, horizon, ..
    } = crate::reads::events(&link, label, None, head, PAGE)
        .await
        .map_err(|e| e.to_string())?;
    let read = events.len();
    {
        let mut publishing = publisher.publishing();
        for event in events {
            publishing.publish(event.seq, || event);
        }
    }
    Ok(if read == PAGE {
        Read::Full
    } else if read == 0 && horizon > wanted {
        Read::Gone
    } else {
        Read::Short
    })
}
