//! The event log: every change of a run's state as an owned [`Event`], numbered by the store,
//! to follow live ([`Engine::subscribe`](crate::runtime::Engine::subscribe)) or replay from a
//! position ([`EventLog::events`](crate::runtime::EventLog::events)).
//!
//! # Where the live feed comes from
//!
//! The store, not the engine, publishes events: when an engine is built it hands its store an
//! [`EventSink`] ([`EventLog::attach_events`](crate::runtime::EventLog::attach_events)), and the store publishes each event on it once the
//! transaction that holds it has committed, in `seq` order. The SQLite store does this on its
//! writer thread, right after the commit and before it acknowledges the writers: that thread
//! is the one place that knows the commit order. Had the engine published each event after
//! its `record` call returned, the run tasks of one group commit would wake in any order and
//! publish `seq`s out of order; the `run_created` event (written by `create_run`) and the
//! events of other engines on the same store would be missing; and the live event would have
//! to rebuild the stored time and detail to match a replay. With the feed at the commit, a
//! live event is exactly the row a replay reads back.
//!
//! # What a subscriber is promised
//!
//! An [`EventStream`] yields events in `seq` order, each once, with no gap: it keeps the
//! position it has delivered up to, drops a live event at or before it (the seam between a
//! replay and the live feed), and when the live feed skipped something (the subscriber lagged
//! behind the broadcast buffer, or another process wrote to the same database) it replays from
//! the store after its position, then goes on live. Each live event carries the position of
//! the one before it in the log as the store knows it; a stream that has not reached that
//! position knows it missed something.
//!
//! Positions increase in the log's order but need not be consecutive. SQLite numbers its log
//! 1, 2, 3, ... in commit order and publishes its own commits: events that another *process*
//! writes to the same file are not broadcast here; they arrive with the replay that the next
//! gap in this process's own events triggers, not on their own. PostgreSQL numbers its log by
//! transaction (so that writers on several connections commit side by side) and publishes
//! what it reads back from the log, every process's events included, once nothing can come
//! before them.
//!
//! Only a store that keeps an event log produces events: the SQLite store does; the in-memory
//! stores ([`MemoryStore`](crate::runtime::MemoryStore)) keep none, so with
//! [`Engine::ephemeral`](crate::runtime::Engine::ephemeral) a subscription ends at once.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::Stream;
use tokio::sync::broadcast;

use crate::runtime::error::StoreError;
use crate::runtime::id::RunId;
use crate::runtime::store::Store;

pub(crate) mod feed;

pub(crate) use feed::{Feed, Live};
mod publisher;
pub use feed::{Event, EventKind, EventSink};
pub use publisher::{Publisher, Publishing};

/// The default number of events an engine's live feed holds for a subscriber that is behind;
/// one further behind catches up from the store.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;

/// The largest live feed buffer an engine accepts; larger requests are cut to it.
pub const MAX_EVENT_BUFFER: usize = 1 << 20;

/// Events a subscriber reads from the store per query while it replays.
const REPLAY_PAGE: usize = 512;

impl Feed {
    /// A feed holding up to `capacity` events for subscribers that are behind (clamped to
    /// `1..=MAX_EVENT_BUFFER`), attached to `store`; `None` if the store publishes no events.
    pub(crate) fn attach(store: &dyn Store, capacity: usize) -> Option<Arc<Feed>> {
        let (sender, _) = broadcast::channel(capacity.clamp(1, MAX_EVENT_BUFFER));
        let feed = Arc::new(Feed {
            sender,
            last: AtomicU64::new(0),
        });
        store
            .attach_events(EventSink(Arc::downgrade(&feed)))
            .then_some(feed)
    }
}

/// A subscription to a store's events, made by [`Engine::subscribe`] or
/// [`Engine::subscribe_from`]: reads them in `seq` order with [`next`](Self::next), or as a
/// [`Stream`] with [`into_stream`](Self::into_stream).
///
/// It keeps the store alive, not the engine: once every clone of the engine is dropped, the
/// stream yields what it holds and then ends.
///
/// [`Engine::subscribe`]: crate::runtime::Engine::subscribe
/// [`Engine::subscribe_from`]: crate::runtime::Engine::subscribe_from
pub struct EventStream {
    store: Arc<dyn Store>,
    /// The live feed; `None` when the store publishes no events, or once the feed closed.
    live: Option<broadcast::Receiver<Live>>,
    /// Only this run's events, if set.
    run_id: Option<RunId>,
    /// Every event with a `seq` up to here has been delivered (or was not this stream's run).
    position: u64,
    /// Whether the store must be read after `position` before going on live.
    replay: bool,
    /// A live event that showed a gap: once the replay is done, everything up to it is in.
    gap_to: u64,
    /// Replayed events not yet delivered.
    pending: VecDeque<Event>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("run_id", &self.run_id)
            .field("position", &self.position)
            .field("live", &self.live.is_some())
            .field("replaying", &self.replay)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// The events committed from now on, of every run.
    pub(crate) fn live(store: Arc<dyn Store>, feed: Option<&Feed>) -> EventStream {
        let live = feed.map(|feed| feed.sender.subscribe());
        // Read after subscribing: an event published in between arrives live and is dropped
        // as already past, rather than missed.
        let position = feed.map_or(0, |feed| feed.last.load(Ordering::SeqCst));
        EventStream {
            store,
            live,
            run_id: None,
            position,
            replay: false,
            gap_to: 0,
            pending: VecDeque::new(),
        }
    }

    /// The stored events after `after` (of `run_id`, or of every run), then the live ones.
    pub(crate) fn from_position(
        store: Arc<dyn Store>,
        feed: Option<&Feed>,
        run_id: Option<RunId>,
        after: u64,
    ) -> EventStream {
        EventStream {
            store,
            // Subscribed before the replay reads the store, so that nothing committed
            // meanwhile is missed; what both see is dropped by `seq`.
            live: feed.map(|feed| feed.sender.subscribe()),
            run_id,
            position: after,
            replay: true,
            gap_to: 0,
            pending: VecDeque::new(),
        }
    }

    /// The position this stream has delivered up to: every event with a `seq` up to it has
    /// been yielded (or belongs to another run than the one followed). Resubscribing with
    /// [`Engine::subscribe_from`](crate::runtime::Engine::subscribe_from) at it goes on
    /// without a gap or a repeat.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next event, in `seq` order; `None` once the engine is gone (or at once past the
    /// replay if its store publishes no events). A store error while catching up is returned
    /// as `Some(Err(_))`; the stream stays where it was, and the next call tries again.
    ///
    /// Cancel safe: if the future is dropped before it completes, no event is lost.
    pub async fn next(&mut self) -> Option<Result<Event, StoreError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.replay {
                if let Err(error) = self.replay_page().await {
                    return Some(Err(error));
                }
                continue;
            }
            let received = self.live.as_mut()?.recv().await;
            match received {
                Ok(Live { prev, event }) => {
                    if event.seq <= self.position {
                        continue;
                    }
                    if prev > self.position {
                        // Something before this event did not come live (another process
                        // wrote it, or this stream subscribed after it went out): the store
                        // has it, and has this one too.
                        self.replay = true;
                        self.gap_to = event.seq;
                        continue;
                    }
                    self.position = event.seq;
                    if self.wants(&event) {
                        return Some(Ok(event));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.replay = true,
                Err(broadcast::error::RecvError::Closed) => self.live = None,
            }
        }
    }

    /// This stream as a [`Stream`] of the items [`next`](Self::next) returns.
    pub fn into_stream(self) -> impl Stream<Item = Result<Event, StoreError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut stream| async move {
            let item = stream.next().await?;
            Some((item, stream))
        })
    }

    fn wants(&self, event: &Event) -> bool {
        self.run_id.as_ref().is_none_or(|run| *run == event.run_id)
    }

    /// Reads the next page of stored events after the position into `pending`; the last page
    /// (a short one) ends the replay.
    async fn replay_page(&mut self) -> Result<(), StoreError> {
        let page = self
            .store
            .events(self.run_id.as_ref(), self.position, REPLAY_PAGE)
            .await?;
        let done = page.len() < REPLAY_PAGE;
        for event in page {
            // A store answers in `seq` order; one that did not is not followed backwards.
            if event.seq > self.position {
                self.position = event.seq;
                self.pending.push_back(event);
            }
        }
        if done {
            self.replay = false;
            // The replay was read after the event that showed the gap was committed, so
            // everything up to it is in, this run's or not.
            self.position = self.position.max(self.gap_to);
            self.gap_to = 0;
        }
        Ok(())
    }
}
