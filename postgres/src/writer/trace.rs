//! The writers' trace of the batches they commit: an event at `TRACE` level on target
//! [`BATCH_TRACE`] for each, with what it held and how long it took, for a profile of where a
//! store's writes wait (`benches/postgres.rs`, `SAGAFLOW_BENCH_TIMELINE`). Nothing is timed
//! unless a subscriber takes the event.

use std::time::Instant;

use super::Write;

/// The target of the event each of a store's writers sends at `TRACE` level once it has
/// committed a batch and answered its writes (or failed them). Its fields:
///
/// - `writer`: the writer's key in the `writers` table (the store's owner id, and `/w1`,
///   `/w2`, ... for the second writer on);
/// - `writes`, `creations`: the writes the batch held, and how many of them created runs;
/// - `outcome`: `committed`, `rolled back` (every write then went again on its own, each
///   traced too), `in doubt` (the connection was lost with the batch in flight: settled), or
///   `failed`;
/// - `server_us`: microseconds from the batch's first statement sent to the server's last
///   answer;
/// - `answer_us`: microseconds spent after that, answering the writes (or settling them).
///
/// A batch starts `server_us + answer_us` microseconds before its event. A write a caller
/// commits itself (`PgOptions::commit_on_caller`) is a batch of one on the writer it took.
///
/// [`BatchEvent::of`] reads an event's fields back.
///
/// ```
/// use sagaflow_postgres::{BATCH_TRACE, BatchEvent};
/// use tracing_subscriber::Layer;
/// use tracing_subscriber::layer::{Context, SubscriberExt as _};
///
/// /// Prints each batch the store's writers commit.
/// struct Batches;
///
/// impl<S: tracing::Subscriber> Layer<S> for Batches {
///     fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
///         if let Some(batch) = BatchEvent::of(event) {
///             println!("{}: {} writes in {} µs", batch.writer, batch.writes, batch.server_us);
///         }
///     }
/// }
///
/// // Installed as the process's default, since the writers run on the runtime's threads;
/// // the filter keeps every other event and span away from the layer.
/// let only = tracing_subscriber::filter::filter_fn(|meta| meta.target() == BATCH_TRACE);
/// let subscriber = tracing_subscriber::registry().with(Batches.with_filter(only));
/// tracing::subscriber::set_global_default(subscriber)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const BATCH_TRACE: &str = "sagaflow_postgres::batch";

/// One batch's event on [`BATCH_TRACE`], its fields read back (see there for what each means).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchEvent {
    /// The writer's key in the `writers` table.
    pub writer: String,
    /// `committed`, `rolled back`, `in doubt` or `failed`.
    pub outcome: String,
    /// The writes the batch held.
    pub writes: u64,
    /// How many of them created runs.
    pub creations: u64,
    /// Microseconds from the batch's first statement sent to the server's last answer.
    pub server_us: u64,
    /// Microseconds spent after that, answering the writes.
    pub answer_us: u64,
}

impl BatchEvent {
    /// The batch `event` reports, if it is one of [`BATCH_TRACE`]'s.
    pub fn of(event: &tracing::Event<'_>) -> Option<BatchEvent> {
        if event.metadata().target() != BATCH_TRACE {
            return None;
        }
        let mut batch = BatchEvent::default();
        event.record(&mut batch);
        Some(batch)
    }
}

impl tracing::field::Visit for BatchEvent {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "writes" => self.writes = value,
            "creations" => self.creations = value,
            "server_us" => self.server_us = value,
            "answer_us" => self.answer_us = value,
            _ => {}
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "writer" => value.clone_into(&mut self.writer),
            "outcome" => value.clone_into(&mut self.outcome),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

/// A batch being committed, timed while a subscriber takes [`BATCH_TRACE`]'s events.
pub(super) struct Timed {
    began: Instant,
    writes: usize,
    creations: usize,
}

/// Starts timing `batch`, if a subscriber takes the events.
pub(super) fn begin(batch: &[Write]) -> Option<Timed> {
    tracing::enabled!(target: BATCH_TRACE, tracing::Level::TRACE).then(|| Timed {
        began: Instant::now(),
        writes: batch.len(),
        creations: batch
            .iter()
            .filter(|write| matches!(write, Write::Create(..)))
            .count(),
    })
}

impl Timed {
    /// The time from the batch's start to now, in microseconds: the server's part, read
    /// once its last answer is in.
    pub(super) fn server_us(&self) -> u64 {
        micros(self.began)
    }

    /// Sends the batch's event: its `outcome`, and the server's part measured before.
    pub(super) fn end(self, writer: &str, outcome: &'static str, server_us: u64) {
        let answer_us = micros(self.began).saturating_sub(server_us);
        tracing::trace!(
            target: BATCH_TRACE,
            writer,
            writes = self.writes,
            creations = self.creations,
            outcome,
            server_us,
            answer_us,
            "batch"
        );
    }
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}
