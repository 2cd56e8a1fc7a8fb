//! A write committed by its caller (`PgOptions::commit_on_caller`): when no writer is busy and
//! the writes come one at a time, the caller takes a writer's state and commits its write as a
//! batch of one in its own task (see the writer's module).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Queue, Slot, Write, Writer};

/// A free writer for a caller to commit its own write with (`PgOptions::commit_on_caller`):
/// the first of `slots`, if none of them is busy and the queue lets a caller commit (see
/// [`Queue::caller_may_commit`]). One writer busy means writes are coming faster than one at
/// a time: the write then goes to the queue, to be gathered with the others.
pub(crate) fn free_writer(
    slots: &[Slot],
    queue: &Queue,
) -> Option<tokio::sync::OwnedMutexGuard<Writer>> {
    if !queue.caller_may_commit() {
        return None;
    }
    let (first, rest) = slots.split_first()?;
    let guard = Arc::clone(first).try_lock_owned().ok()?;
    rest.iter()
        .all(|slot| slot.try_lock().is_ok())
        .then_some(guard)
}

/// Commits `write` as a batch of its own with `writer`, in the caller's task: no hand-off to
/// the writer's task and back (two thread wake-ups, about 20 µs of a 300 µs step on
/// benches/README.md's machine, session 23). Its answer goes where it would have from the
/// writer's task. If the caller stops waiting (its future dropped) the commit is finished on
/// a task of its own, so that no batch is left half sent or unsettled and no committed event
/// goes unpublished.
pub(crate) async fn commit_here(
    writer: tokio::sync::OwnedMutexGuard<Writer>,
    write: Write,
    queue: &Queue,
) {
    queue.went_alone();
    let mut writer = writer;
    writer.stats.on_caller.fetch_add(1, Ordering::Relaxed);
    Finish(Some(Box::pin(async move {
        writer.commit(vec![write]).await;
    })))
    .await;
}

/// A commit that runs to its end: polled by its caller, and spawned if dropped before it
/// ends (see [`commit_here`]).
struct Finish(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Future for Finish {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let Some(commit) = self.0.as_mut() else {
            return std::task::Poll::Ready(());
        };
        let done = commit.as_mut().poll(cx);
        if done.is_ready() {
            self.0 = None;
        }
        done
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Some(commit) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(commit);
        }
    }
}
