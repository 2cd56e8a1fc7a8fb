//! The live feed: the events this store commits, published to the engines' sinks once
//! committed, in `seq` order.

use std::sync::{Mutex, MutexGuard, PoisonError};

use sagaflow_core::runtime::events::{Event, EventSink};

/// The sinks the store publishes to, and the last `seq` it published.
#[derive(Debug, Default)]
pub(crate) struct Publisher {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sinks: Vec<EventSink>,
    head: u64,
}

impl Publisher {
    /// A publisher whose log ends at `head` (the last `seq` when the store connected).
    pub(crate) fn new(head: u64) -> Publisher {
        Publisher {
            state: Mutex::new(State {
                sinks: Vec::new(),
                head,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state whole (a push, a retain, a max).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `sink`, positioned at the log's end as this store knows it.
    pub(crate) fn attach(&self, sink: EventSink) {
        let mut state = self.lock();
        sink.advance(state.head);
        state.sinks.retain(EventSink::is_open);
        state.sinks.push(sink);
    }

    /// Publishes committed `events`, in the order given (`seq` order). An event at or below
    /// the head (committed by another connection of this store after a later one) is in the
    /// log for a replay, and not published live out of order.
    pub(crate) fn publish(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.sinks.retain(EventSink::is_open);
        let listened = state.sinks.iter().any(EventSink::is_listened);
        for event in events {
            if event.seq <= state.head {
                continue;
            }
            state.head = event.seq;
            if !listened {
                for sink in &state.sinks {
                    sink.advance(event.seq);
                }
                continue;
            }
            if let Some((last, rest)) = state.sinks.split_last() {
                for sink in rest {
                    sink.publish(event.clone());
                }
                last.publish(event);
            }
        }
    }
}
