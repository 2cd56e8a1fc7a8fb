//! Gathering a burst of writes into one commit.
//!
//! A commit's answers wake its callers together, and each soon writes again. With every caller
//! free to commit on its own thread, the first of them found the connection free and committed
//! alone, the others queued behind its `fsync` and went in the next commit, and a round of
//! concurrent runs drifted into groups that never merged again (100 runs of 10 steps: batches
//! of `1, 99, 2, 14, 100, 1, 100, …`, 31 commits where 12 suffice). So while writes come in
//! bursts (the last commit held more than one), callers hand their writes to the writer thread,
//! and the writer thread applies a burst's writes as they come: once it has applied what was
//! queued, it pauses ([`PAUSE`]) and takes what came meanwhile into the same transaction, and
//! commits once a pause brings nothing (or after [`PAUSES`]). The SQL of the first writes thus
//! overlaps the coming of the others. A write alone (a sequential run's) finds no burst and
//! commits at once on its caller's thread, as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long the writer thread pauses for more of a burst's writes.
pub(super) const PAUSE: Duration = Duration::from_micros(20);

/// The most pauses in one batch.
pub(super) const PAUSES: usize = 8;

/// The gathering's state, shared by the callers and the writer.
#[derive(Debug, Default)]
pub(crate) struct Gathering {
    /// How many writes the last commit held.
    last_batch: AtomicUsize,
}

impl Gathering {
    /// Whether writes come in a burst: the last commit held more than one.
    pub(crate) fn burst(&self) -> bool {
        self.last_batch.load(Ordering::Relaxed) > 1
    }

    /// A commit held `n` writes.
    pub(crate) fn committed(&self, n: usize) {
        self.last_batch.store(n, Ordering::Relaxed);
    }
}
