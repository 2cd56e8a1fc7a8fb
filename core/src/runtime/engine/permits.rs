//! The engine's step permits: the bound on step attempts running at once over all runs.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use tokio::sync::Notify;

/// The engine's step permits: a counter that an attempt takes from with one atomic operation
/// when a permit is free and no attempt is queued, and a queue (a [`Notify`], first come first
/// served) for the attempts that must wait. A queued attempt keeps newcomers from taking the
/// permits it waits for, so none is starved.
pub(crate) struct Permits {
    /// On a line of its own: every run writes it, from whichever core runs it, and the fields
    /// around it (the engine's, read by every step, and `waiting`) are otherwise only read.
    free: CachePadded<AtomicUsize>,
    /// Attempts queued for a permit.
    waiting: AtomicUsize,
    released: Notify,
}

/// A permit taken from [`Permits`]; given back when dropped.
pub(crate) struct Permit<'a>(&'a Permits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.free.fetch_add(1, Ordering::SeqCst);
        if self.0.waiting.load(Ordering::SeqCst) > 0 {
            self.0.released.notify_one();
        }
    }
}

impl Permits {
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            free: CachePadded::new(AtomicUsize::new(permits)),
            waiting: AtomicUsize::new(0),
            released: Notify::new(),
        }
    }

    pub(crate) fn available(&self) -> usize {
        self.free.load(Ordering::Relaxed)
    }

    fn try_take(&self) -> Option<Permit<'_>> {
        // SeqCst, paired with `Permit::drop`: either a release sees this attempt queued, or
        // this sees the released permit.
        let mut free = self.free.load(Ordering::SeqCst);
        while free > 0 {
            match self.free.compare_exchange_weak(
                free,
                free - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(Permit(self)),
                Err(now) => free = now,
            }
        }
        None
    }

    /// Whether no attempt is queued for a permit.
    pub(crate) fn unqueued(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) == 0
    }

    /// A free permit, without waiting, unless attempts are queued for one.
    pub(crate) fn take_now(&self) -> Option<Permit<'_>> {
        if !self.unqueued() {
            return None;
        }
        self.try_take()
    }

    /// A permit, waiting in line for one if none is free.
    pub(crate) async fn take(&self) -> Permit<'_> {
        let _queued = Queued::new(&self.waiting);
        loop {
            let released = self.released.notified();
            let mut released = std::pin::pin!(released);
            released.as_mut().enable();
            if let Some(permit) = self.try_take() {
                return permit;
            }
            released.await;
        }
    }
}

/// Counts an attempt queued for a permit for as long as it waits (its future may be dropped).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Self(waiting)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_every_run_writes_has_its_line_to_itself() {
        let permits = Permits::new(4);
        let line = |p: *const u8| p as usize / 128;
        let free = std::ptr::from_ref(&*permits.free).cast::<u8>();
        let waiting = std::ptr::from_ref(&permits.waiting).cast::<u8>();
        assert_ne!(line(free), line(waiting));
        assert_eq!(free as usize % 128, 0);
        // And it still counts.
        let taken = permits.take_now().expect("free");
        assert_eq!(permits.available(), 3);
        drop(taken);
        assert_eq!(permits.available(), 4);
    }
}
