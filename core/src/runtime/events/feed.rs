//! What a store publishes: each event it commits (`Event`, of an `EventKind`), and the sink
//! it publishes them on (`EventSink`, an engine's live `Feed` held weakly). It names nothing
//! of the store, so that the store can name it; the subscriber's side, which reads the store,
//! is `EventStream` in `events.rs`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::broadcast;

use crate::runtime::id::RunId;

/// What happened to a run. More kinds will come (signals, compensations), hence
/// `non_exhaustive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The run was created (its first event).
    RunCreated,
    /// An attempt of a step is about to call the step's function.
    StepStarted,
    /// An attempt failed and another follows; the detail holds the error and the delay.
    StepRetrying,
    /// A step returned its output (the output itself is kept with the step, not the event).
    StepCompleted,
    /// A step failed for good; the detail holds the error.
    StepFailed,
    /// A step's guard returned `false`.
    StepSkipped,
    /// The run completed.
    RunCompleted,
    /// The run failed; the detail holds the error.
    RunFailed,
    /// The run was cancelled.
    RunCancelled,
    /// The run was parked: taken up more times than the store allows, it is no longer
    /// retried (its error says how many times).
    RunParked,
}

impl EventKind {
    /// Every kind, in the order a run usually goes through them.
    pub const ALL: [EventKind; 10] = [
        EventKind::RunCreated,
        EventKind::StepStarted,
        EventKind::StepRetrying,
        EventKind::StepCompleted,
        EventKind::StepFailed,
        EventKind::StepSkipped,
        EventKind::RunCompleted,
        EventKind::RunFailed,
        EventKind::RunCancelled,
        EventKind::RunParked,
    ];

    /// The kind's name as a store writes it (`"step_started"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunCreated => "run_created",
            EventKind::StepStarted => "step_started",
            EventKind::StepRetrying => "step_retrying",
            EventKind::StepCompleted => "step_completed",
            EventKind::StepFailed => "step_failed",
            EventKind::StepSkipped => "step_skipped",
            EventKind::RunCompleted => "run_completed",
            EventKind::RunFailed => "run_failed",
            EventKind::RunCancelled => "run_cancelled",
            EventKind::RunParked => "run_parked",
        }
    }

    /// The kind named `name` as [`as_str`](Self::as_str) writes it; `None` for a name this
    /// sagaflow does not know.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// Whether the event ends its run (completed, failed, cancelled, or parked: no process
    /// takes a parked run up again).
    pub fn ends_run(self) -> bool {
        matches!(
            self,
            EventKind::RunCompleted
                | EventKind::RunFailed
                | EventKind::RunCancelled
                | EventKind::RunParked
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of a run's state, as the store committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's position in the store's log, from 1 up, increasing in commit order over
    /// all runs. Replay from a position with
    /// [`EventLog::events`](crate::runtime::store::EventLog::events) or
    /// [`Engine::subscribe_from`](crate::runtime::Engine::subscribe_from).
    pub seq: u64,
    /// The run.
    pub run_id: RunId,
    /// When it was recorded, in unix milliseconds.
    pub at_ms: i64,
    /// What happened.
    pub kind: EventKind,
    /// The step, for a step's event.
    pub step: Option<Arc<str>>,
    /// The attempt (for a failed step: the attempts made), where the kind has one.
    pub attempt: Option<u32>,
    /// More about it, as JSON text: `{"error", "permanent", "delay_ms"}` for a retry,
    /// `{"error", "permanent"}` for a failed step, `{"error"}` for a failed run.
    pub detail: Option<String>,
}

impl Event {
    /// The start of `step`'s first attempt that the row of the event at `row_seq` logs too (a
    /// compact log: a step's completion and the next step's start, or a run's creation and
    /// its first step's start, in one row): numbered one past the row, at the row's time.
    pub fn started_in_row(row_seq: u64, run_id: RunId, at_ms: i64, step: Arc<str>) -> Event {
        Event {
            seq: row_seq.saturating_add(1),
            run_id,
            at_ms,
            kind: EventKind::StepStarted,
            step: Some(step),
            attempt: Some(1),
            detail: None,
        }
    }
}

/// An engine's live feed: the broadcast channel its subscribers listen on and the position
/// of the last event published on it.
pub(crate) struct Feed {
    pub(super) sender: broadcast::Sender<Live>,
    /// The `seq` of the last event the store committed, listened to or not.
    pub(super) last: AtomicU64,
}

/// An event as the live feed carries it: with the position of the event published before it
/// (or advanced past unpublished), so that a subscriber knows whether it has seen everything
/// up to this one. Positions need not be consecutive (a store may number its log sparsely, as
/// the PostgreSQL store does by transaction); what the feed promises is that nothing lies in
/// the log between `prev` and the event.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) prev: u64,
    pub(crate) event: Event,
}

/// Where a store publishes the events it commits: handed to it by each engine built on it
/// ([`EventLog::attach_events`](crate::runtime::store::EventLog::attach_events)). It refers to the
/// engine's feed weakly, so a store does not keep a dropped engine's feed alive;
/// [`is_open`](Self::is_open) says when it can be let go.
#[derive(Clone)]
pub struct EventSink(pub(super) Weak<Feed>);

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink")
            .field("open", &self.is_open())
            .finish()
    }
}

impl EventSink {
    /// Whether the engine this sink feeds still exists; a store drops a closed sink.
    pub fn is_open(&self) -> bool {
        self.0.strong_count() > 0
    }

    /// Whether anyone is subscribed: if not, a store may call [`advance`](Self::advance)
    /// instead of building the event for [`publish`](Self::publish).
    pub fn is_listened(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|feed| feed.sender.receiver_count() > 0)
    }

    /// Publishes `event`, which the store has committed, saying that the log holds nothing
    /// between the position `prev` and it. Events must be published in `seq` order, once
    /// each, and only after their commit; a [`Publisher`](super::Publisher) does it right.
    pub fn publish(&self, prev: u64, event: Event) {
        if let Some(feed) = self.0.upgrade() {
            feed.last.fetch_max(event.seq, Ordering::SeqCst);
            // No subscriber is not an error: there is no one to tell.
            let _ = feed.sender.send(Live { prev, event });
        }
    }

    /// Records that the event `seq` was committed without publishing it (no one listens), so
    /// that a later subscription starts after it.
    pub fn advance(&self, seq: u64) {
        if let Some(feed) = self.0.upgrade() {
            feed.last.fetch_max(seq, Ordering::SeqCst);
        }
    }
}
