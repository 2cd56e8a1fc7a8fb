//! The writes waiting for the store's writers, and how a large batch is shared out.
//!
//! Every writer takes its next batch from one queue ([`Queue::next`]). The writer that holds
//! the queue gathers the writes as they come into a batch (see the writer's module); the
//! others wait for the queue or for a share. A batch's server work (its fence, the rows it
//! copies in, their index entries) is done by the one server process behind its writer's
//! connection, in series, while the runs it answers wait and the machine's other cores idle:
//! with a hundred runs moving in one cohort, that process was the one busy thing
//! (benches/README.md, session 21). So when a writer has gathered at least [`SHARE_MIN`]
//! writes and another writer is free, the batch is cut into shares, one for itself and one
//! for each free writer, and the shares commit side by side, each in a transaction of its own
//! on its own connection.
//!
//! No writer is first: the queue goes to whichever writer is free, so the writes that come
//! while one writer commits are gathered by another at once, rather than waiting for that
//! commit (session 22: with one writer gathering, half a cohort waited for it in one round of
//! three). A cohort thus moves as parts that take turns between the server and the engine. A
//! share is fenced, numbered and settled like any batch (events are numbered by transaction,
//! so shares committing side by side need no lock between them), and a share no writer took
//! is taken by the next writer to come back to the queue, before it gathers, so none is left
//! behind.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use super::Write;

/// The most writes one transaction takes; the rest wait for the next one.
const MAX_BATCH: usize = 1024;

/// How many times the gathering writer lets the tasks it has woken run before it sends a batch,
/// while their writes keep coming.
const GATHER_YIELDS: usize = 4;

/// The fewest writes a batch is shared out from; each share holds at least half as many.
/// Each share costs a transaction of its own (its round trips, its flush), which a few
/// writes' server work would not repay.
const SHARE_MIN: usize = 32;

/// The writes waiting, and the shares of a batch left for the writers that are free.
pub(crate) struct Queue {
    /// Held by the writer that gathers the next batch.
    writes: tokio::sync::Mutex<mpsc::UnboundedReceiver<Write>>,
    /// Shares of a batch, each for one writer.
    shares: Mutex<Vec<Vec<Write>>>,
    /// How many writers wait for the queue or a share.
    free: AtomicUsize,
    /// Wakes the writers that wait for a share.
    shared: Notify,
    /// Every sender is gone and every write taken: the writers end once no share is left.
    closed: AtomicBool,
    /// Writes sent and not yet taken by a writer (see [`sent`](Self::sent)).
    queued: AtomicUsize,
    /// Whether the last batch was one write: a run going alone, whose next write may be
    /// committed by its caller (see [`caller_may_commit`](Self::caller_may_commit)).
    alone: AtomicBool,
}

impl Queue {
    /// A queue of the writes sent on the other end of `writes`.
    pub(crate) fn new(writes: mpsc::UnboundedReceiver<Write>) -> Queue {
        Queue {
            writes: tokio::sync::Mutex::new(writes),
            shares: Mutex::new(Vec::new()),
            free: AtomicUsize::new(0),
            shared: Notify::new(),
            closed: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            alone: AtomicBool::new(true),
        }
    }

    /// Counts a write about to be sent to the writers; call before sending it.
    pub(crate) fn sent(&self) {
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether a caller may commit its write itself (`PgOptions::commit_on_caller`): no write
    /// waits, and the last batch was one write. After a batch of several, the runs it
    /// answered write again together, and the first of them goes to the queue with the rest
    /// rather than hold a connection for itself while they wait.
    pub(crate) fn caller_may_commit(&self) -> bool {
        self.queued.load(Ordering::SeqCst) == 0 && self.alone.load(Ordering::Relaxed)
    }

    /// Notes that a caller committed a write of its own, alone.
    pub(crate) fn went_alone(&self) {
        self.alone.store(true, Ordering::Relaxed);
    }

    /// A writer's next batch: a share left for it, or the writes waiting, gathered while this
    /// writer holds the queue, with shares of them left for the writers that are free. `None`
    /// once every sender is gone and no share is left.
    pub(super) async fn next(&self) -> Option<Vec<Write>> {
        loop {
            let notified = self.shared.notified();
            tokio::pin!(notified);
            // Registered before it counts as free, so that no share is left for a writer that
            // is not listening yet.
            notified.as_mut().enable();
            if let Some(share) = self.take_share() {
                return Some(share);
            }
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            self.free.fetch_add(1, Ordering::SeqCst);
            let mut writes = tokio::select! {
                biased;
                () = &mut notified => {
                    self.free.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                writes = self.writes.lock() => {
                    self.free.fetch_sub(1, Ordering::SeqCst);
                    writes
                }
            };
            // A share left while this writer waited for the queue goes first.
            if let Some(share) = self.take_share() {
                return Some(share);
            }
            let Some(first) = writes.recv().await else {
                self.closed.store(true, Ordering::SeqCst);
                self.shared.notify_waiters();
                return None;
            };
            let mut batch = vec![first];
            take_waiting(&mut writes, &mut batch);
            // The answers to the last batch woke its runs' tasks, whose next writes come within
            // microseconds: they are let run before the batch goes, for as long as their writes
            // keep coming (a few turns at most), so that the runs go on in one batch rather
            // than as a first write alone and the rest after it. A write alone (a sequential
            // run) costs one turn of the scheduler.
            for _ in 0..GATHER_YIELDS {
                let before = batch.len();
                tokio::task::yield_now().await;
                take_waiting(&mut writes, &mut batch);
                if batch.len() == before || batch.len() >= MAX_BATCH {
                    break;
                }
            }
            drop(writes);
            self.queued.fetch_sub(batch.len(), Ordering::SeqCst);
            self.alone.store(batch.len() == 1, Ordering::Relaxed);
            return Some(self.share_out(batch));
        }
    }

    /// Cuts `batch` into one share for the writer that gathered it and one for each writer
    /// that is free (see [`cut`]); gives the gatherer's.
    fn share_out(&self, mut batch: Vec<Write>) -> Vec<Write> {
        let shares = cut(&mut batch, self.free.load(Ordering::SeqCst));
        if shares.is_empty() {
            return batch;
        }
        match self.shares.lock() {
            Ok(mut left) => left.extend(shares),
            // A writer panicked holding the lock (held for a push or a pop only): the shares
            // stay with this writer's.
            Err(_) => {
                for share in shares {
                    batch.extend(share);
                }
                return batch;
            }
        }
        self.shared.notify_waiters();
        batch
    }

    /// A share left by the writer that gathered it, if any.
    fn take_share(&self) -> Option<Vec<Write>> {
        self.shares.lock().ok()?.pop()
    }
}

/// Cuts shares off `batch` for `free` writers, as even as can be (sizes differ by one at most), if it holds at least
/// [`SHARE_MIN`] items: as many as the writers free, each of at least half of [`SHARE_MIN`];
/// `batch` keeps the first. None if it is too small.
fn cut<T>(batch: &mut Vec<T>, free: usize) -> Vec<Vec<T>> {
    let count = (free.saturating_add(1)).min(batch.len() / (SHARE_MIN / 2));
    if batch.len() < SHARE_MIN || count < 2 {
        return Vec::new();
    }
    let mut shares = Vec::with_capacity(count - 1);
    for left in (2..=count).rev() {
        let at = batch.len() - batch.len() / left;
        shares.push(batch.split_off(at));
    }
    shares
}

/// Moves the writes waiting in `writes` into `batch`, up to [`MAX_BATCH`].
fn take_waiting(writes: &mut mpsc::UnboundedReceiver<Write>, batch: &mut Vec<Write>) {
    while batch.len() < MAX_BATCH {
        match writes.try_recv() {
            Ok(write) => batch.push(write),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    fn sizes(len: usize, free: usize) -> (usize, Vec<usize>) {
        let mut batch: Vec<usize> = (0..len).collect();
        let shares = cut(&mut batch, free);
        let mut all: Vec<usize> = batch.clone();
        for share in &shares {
            all.extend(share);
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (0..len).collect::<Vec<_>>(),
            "every write in one share"
        );
        (batch.len(), shares.iter().map(Vec::len).collect())
    }

    #[test]
    fn a_batch_is_cut_evenly_for_the_writers_free_and_not_below_the_minimum() {
        assert_eq!(sizes(100, 0), (100, vec![]), "no writer free");
        assert_eq!(sizes(31, 3), (31, vec![]), "too small to share");
        assert_eq!(sizes(32, 1), (16, vec![16]));
        assert_eq!(sizes(33, 1), (17, vec![16]));
        assert_eq!(sizes(100, 1), (50, vec![50]));
        assert_eq!(sizes(100, 3), (25, vec![25, 25, 25]));
        assert_eq!(sizes(40, 5), (20, vec![20]), "no share under 16");
        assert_eq!(sizes(1024, 63), (16, vec![16; 63]));
        let (first, shares) = sizes(1000, 63);
        assert_eq!(shares.len(), 61, "as many as 1000 holds shares of 16");
        assert!(shares.iter().chain([&first]).all(|&n| n == 16 || n == 17));
    }
}
