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
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
/// use tracing_subscriber::Layer as _;
///
/// // A subscriber that takes the writers' events alone (any layer of yours in place of
/// // `fmt`); installed before the store connects, as the process's default.
/// let only_batches = tracing_subscriber::filter::filter_fn(|meta| {
///     meta.target() == sagaflow_postgres::BATCH_TRACE
/// });
/// # let layer = tracing_subscriber::layer::Identity::new();
/// let subscriber = tracing_subscriber::registry().with(layer.with_filter(only_batches));
/// # drop(subscriber);
/// ```
pub const BATCH_TRACE: &str = "sagaflow_postgres::batch";

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
