//! The sinks a store publishes its committed events to: every store with an event log keeps
//! one [`Publisher`], attaches each engine's sink to it, and hands it each committed batch's
//! events, in `seq` order.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::feed::{Event, EventSink};

/// The engines' sinks of one store, and the last `seq` published through them.
#[derive(Debug, Default)]
pub struct Publisher {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sinks: Vec<EventSink>,
    /// The last `seq` committed through this store (or found in the log when it opened).
    head: u64,
    /// Whether the log is numbered 1, 2, 3, ... in commit order (SQLite): then an event
    /// follows the position just before it, and a subscriber that has not seen that one
    /// knows it missed something (another process's event). Otherwise (PostgreSQL, which
    /// numbers by transaction) the store publishes every event of the log in order, others'
    /// included, and an event follows the one published before it.
    dense: bool,
}

impl Publisher {
    /// A publisher of a log numbered 1, 2, 3, ... in commit order, which ends at `head` (its
    /// last `seq` when the store opened). Other processes' events between its own are found
    /// by the subscribers, in the log, from the gap they leave.
    pub fn new(head: u64) -> Publisher {
        Publisher {
            state: Mutex::new(State {
                sinks: Vec::new(),
                head,
                dense: true,
            }),
        }
    }

    /// A publisher of a log numbered with gaps, which ends at `head`: its store publishes
    /// every event of the log, in order, each once nothing can come before it (other
    /// processes' too), so that each follows the one published before it.
    pub fn sparse(head: u64) -> Publisher {
        Publisher {
            state: Mutex::new(State {
                sinks: Vec::new(),
                head,
                dense: false,
            }),
        }
    }

    /// The last position published or passed.
    pub fn head(&self) -> u64 {
        self.lock().head
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state whole (a push, a retain, a max).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `sink`, positioned at the log's end: under the lock batches are published under,
    /// so it neither misses an event committed after this nor gets one committed before.
    pub fn attach(&self, sink: EventSink) {
        let mut state = self.lock();
        sink.advance(state.head);
        state.sinks.retain(EventSink::is_open);
        state.sinks.push(sink);
    }

    /// Starts publishing a committed batch's events, which go out one by one in `seq` order
    /// ([`Publishing::publish`]). Holds the lock until dropped, so that a sink attached
    /// meanwhile gets none of the batch.
    pub fn publishing(&self) -> Publishing<'_> {
        let mut state = self.lock();
        state.sinks.retain(EventSink::is_open);
        let listened = state.sinks.iter().any(EventSink::is_listened);
        Publishing { state, listened }
    }
}

/// The sinks, locked while a committed batch's events go out.
#[derive(Debug)]
pub struct Publishing<'a> {
    state: MutexGuard<'a, State>,
    /// Whether any sink has a subscriber: if none has, no event is built, and the sinks only
    /// advance their position.
    listened: bool,
}

impl Publishing<'_> {
    /// Whether any sink has a subscriber.
    pub fn listened(&self) -> bool {
        self.listened
    }

    /// Passes the position `seq` without publishing anything: no one listens, and a later
    /// subscription starts after it.
    pub fn advance(&mut self, seq: u64) {
        if seq <= self.state.head {
            return;
        }
        self.state.head = seq;
        for sink in &self.state.sinks {
            sink.advance(seq);
        }
    }

    /// Publishes the event committed at `seq`, which `event` builds: called only if a sink
    /// listens, so that a store builds no event no one reads. An event at or before the last
    /// one published (committed by another connection of the store after a later one) is in
    /// the log, for a replay, and not published live out of order.
    pub fn publish(&mut self, seq: u64, event: impl FnOnce() -> Event) {
        if seq <= self.state.head {
            return;
        }
        let prev = if self.state.dense {
            seq - 1
        } else {
            self.state.head
        };
        self.state.head = seq;
        if !self.listened {
            for sink in &self.state.sinks {
                sink.advance(seq);
            }
            return;
        }
        let event = event();
        if let Some((last, rest)) = self.state.sinks.split_last() {
            for sink in rest {
                sink.publish(prev, event.clone());
            }
            last.publish(prev, event);
        }
    }
}
