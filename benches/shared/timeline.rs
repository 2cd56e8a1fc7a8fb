//! The PostgreSQL writers' batches as their trace reports them (`sagaflow_postgres::BATCH_TRACE`),
//! for `benches/postgres.rs` with `SAGAFLOW_BENCH_TIMELINE=1`: a layer that keeps each batch, and
//! a summary of each writer's (how many, how large, how long the server took, how much of the
//! time the writer was inside a batch, how long it waited between two).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sagaflow_postgres::BatchEvent;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// One batch a writer committed, and when its event came: the batch's end.
struct Batch {
    event: BatchEvent,
    end: Instant,
}

impl Batch {
    fn start(&self) -> Option<Instant> {
        let took = self.event.server_us + self.event.answer_us;
        self.end.checked_sub(Duration::from_micros(took))
    }
}

/// Keeps every batch event; a clone shares them.
#[derive(Clone, Default)]
pub(crate) struct Timeline(Arc<Mutex<Vec<Batch>>>);

impl<S: Subscriber> Layer<S> for Timeline {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if let Some(event) = BatchEvent::of(event) {
            let end = Instant::now();
            self.0.lock().unwrap().push(Batch { event, end });
        }
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

impl Timeline {
    /// Each writer's batches since `since`, summed up, a line each.
    pub(crate) fn summary(&self, since: Instant) -> Vec<String> {
        let batches = self.0.lock().unwrap();
        let mut by_writer: BTreeMap<&str, Vec<&Batch>> = BTreeMap::new();
        for batch in batches
            .iter()
            .filter(|b| b.start().is_some_and(|s| s >= since))
        {
            by_writer
                .entry(&batch.event.writer)
                .or_default()
                .push(batch);
        }
        let mut lines = Vec::new();
        for (writer, mut list) in by_writer {
            list.sort_by_key(|b| b.start());
            let (Some(first), Some(last)) = (
                list.first().and_then(|b| b.start()),
                list.last().map(|b| b.end),
            ) else {
                continue;
            };
            let span = last.duration_since(first).as_micros().max(1) as f64;
            let inside: u64 = list
                .iter()
                .map(|b| b.event.server_us + b.event.answer_us)
                .sum();
            let writes: u64 = list.iter().map(|b| b.event.writes).sum();
            let creations: u64 = list.iter().map(|b| b.event.creations).sum();
            let gaps: Vec<u64> = list
                .windows(2)
                .filter_map(|w| {
                    Some(
                        w[1].start()?
                            .saturating_duration_since(w[0].end)
                            .as_micros() as u64,
                    )
                })
                .collect();
            let mut sizes: BTreeMap<u64, usize> = BTreeMap::new();
            for b in &list {
                *sizes.entry(b.event.writes).or_default() += 1;
            }
            let mut common: Vec<(u64, usize)> = sizes.into_iter().collect();
            common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let common = common
                .iter()
                .take(6)
                .map(|(size, n)| format!("{size}×{n}"))
                .collect::<Vec<_>>()
                .join(" ");
            lines.push(format!(
                "writer {writer}: {} batches, {writes} writes ({creations} creations), {:.1} a batch; \
                 inside a batch {:.0}% of {:.1} s; medians: server {} µs, answers {} µs, between two {} µs; \
                 commonest sizes {common}",
                list.len(),
                writes as f64 / list.len() as f64,
                100.0 * inside as f64 / span,
                span / 1e6,
                median(list.iter().map(|b| b.event.server_us).collect()),
                median(list.iter().map(|b| b.event.answer_us).collect()),
                median(gaps),
            ));
        }
        lines
    }
}
