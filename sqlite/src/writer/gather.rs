//! Gathering a burst of writes into one commit.
//!
//! A commit's answers wake its callers together, and each soon writes again. With every caller
//! free to commit on its own thread, the first of them found the connection free and committed
//! alone, the others queued behind its `fsync` and went in the next commit, and a round of
//! concurrent runs drifted into groups that never merged again (100 runs of 10 steps: batches
//! of `1, 99, 2, 14, 100, 1, 100, …`, 31 commits where 12 suffice). So while writes come in
//! bursts (the last commit held more than one), callers hand their writes to the writer thread,
//! and the writer thread, before it takes the queue, waits while it keeps growing: a pause of
//! [`PAUSE`] at a time, up to [`PAUSES`], each only while the one before brought more writes.
//! A write alone (a sequential run's) finds no burst and commits at once on its caller's
//! thread, as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long the writer thread pauses to let a burst's writes come.
const PAUSE: Duration = Duration::from_micros(20);

/// The most pauses before a batch.
const PAUSES: usize = 8;

/// The gathering's state, shared by the callers and the writer.
#[derive(Debug, Default)]
pub(crate) struct Gathering {
    /// Writes queued and not yet taken into a batch.
    queued: AtomicUsize,
    /// How many writes the last commit held.
    last_batch: AtomicUsize,
}

impl Gathering {
    /// Whether writes come in a burst: the last commit held more than one.
    pub(crate) fn burst(&self) -> bool {
        self.last_batch.load(Ordering::Relaxed) > 1
    }

    /// A write was queued.
    pub(crate) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` queued writes were taken into a batch.
    pub(crate) fn taken(&self, n: usize) {
        // Saturating: a write queued by a path that does not count it cannot make it wrap.
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
    }

    /// A commit held `n` writes.
    pub(crate) fn committed(&self, n: usize) {
        self.last_batch.store(n, Ordering::Relaxed);
    }

    /// On the writer thread, before it takes the queue: in a burst, waits while the queue
    /// grows.
    pub(crate) fn gather(&self) {
        if !self.burst() {
            return;
        }
        let mut seen = self.queued.load(Ordering::Relaxed);
        for _ in 0..PAUSES {
            std::thread::sleep(PAUSE);
            let now = self.queued.load(Ordering::Relaxed);
            if now == seen {
                break;
            }
            seen = now;
        }
    }
}
