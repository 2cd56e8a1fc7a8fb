//! A run's tasks: how its steps are spread over tokio tasks, and how a task's end is counted.

use std::future::Future as _;

use super::*;

/// Gives up a step task's live count when the task ends, however it ends: an aborted task's
/// future is dropped with this guard in it, after everything inside it.
pub(super) struct Live(Arc<Run>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Steps made ready at the same time (a run's roots, or the dependents one step released),
/// which the tasks working through them take a few at a time ([`Share`]): consecutive steps
/// in one task, so that two threads seldom write the same cache line (the claim's counter,
/// neighbouring steps' cells).
pub(super) struct Ready {
    pub(super) steps: Arc<[usize]>,
    next: AtomicUsize,
    /// How many steps a task claims at once.
    chunk: usize,
}

/// Steps a task claims at once from a ready set at most: small enough that a task that has to
/// wait hands few steps over (see [`Share::split`]).
const MAX_CHUNK: usize = 16;

impl Ready {
    /// Ready `steps`, for `workers` tasks to work through: each claims an eighth of its share
    /// at a time, up to [`MAX_CHUNK`].
    pub(super) fn new(steps: Arc<[usize]>, workers: usize) -> Self {
        let chunk = (steps.len() / (workers.max(1) * 8)).clamp(1, MAX_CHUNK);
        Self {
            steps,
            next: AtomicUsize::new(0),
            chunk,
        }
    }

    /// Whether steps are left to claim.
    fn left(&self) -> bool {
        self.next.load(Ordering::Relaxed) < self.steps.len()
    }

    /// Claims the next steps, unless none is left or the run stopped.
    pub(super) fn claim(self: &Arc<Self>, run: &Run) -> Option<Share> {
        if !self.left() || run.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let from = self.next.fetch_add(self.chunk, Ordering::Relaxed);
        let to = from.saturating_add(self.chunk).min(self.steps.len());
        (from < to).then(|| Share {
            ready: Arc::clone(self),
            next: from,
            end: to,
        })
    }
}

/// A task's share of a ready set: the steps it claimed and has not run (positions in
/// `ready.steps`), and the right to claim more.
pub(super) struct Share {
    ready: Arc<Ready>,
    next: usize,
    end: usize,
}

impl Share {
    /// The next step to run: the next claimed one, else one of the next steps claimed now;
    /// `None` once the set is worked through or the run stopped.
    pub(super) fn next(&mut self, run: &Run) -> Option<usize> {
        if self.next >= self.end {
            *self = self.ready.claim(run)?;
        } else if run.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let step = self.ready.steps.get(self.next).copied();
        self.next += 1;
        step
    }

    /// Whether steps are left, claimed here or not yet.
    fn left(&self) -> bool {
        self.next < self.end || self.ready.left()
    }

    /// The claimed steps not run yet, handed over as a share of their own (this one keeps the
    /// right to claim more); `None` if there are none.
    fn split(&mut self) -> Option<Share> {
        if self.next >= self.end {
            return None;
        }
        let rest = Share {
            ready: Arc::clone(&self.ready),
            next: self.next,
            end: self.end,
        };
        self.next = self.end;
        Some(rest)
    }
}

/// Whether the caller runs where a run can be started: on a tokio runtime. Inside a task
/// (where services call `start`) that is read from the thread's task context, without
/// touching the runtime's handle, whose reference count every run's start would otherwise
/// write, on every core: a run whose steps never wait then spawns nothing and takes no
/// reference to the runtime at all. Elsewhere (a `block_on`) the handle is looked up.
pub(crate) fn in_runtime() -> bool {
    tokio::task::try_id().is_some() || tokio::runtime::Handle::try_current().is_ok()
}

/// Spawns `future` on the runtime the caller runs on, which for a run's tasks is the run's:
/// they are spawned by `start`, on the caller's runtime, and by the run's own tasks. Looked up
/// at each spawn rather than held by the run (see [`in_runtime`]); a spawn writes the same
/// line of the runtime's anyway. Without a runtime (its thread is being torn down), nothing
/// is spawned: the run then ends without an outcome, which its handles report as an error.
pub(super) fn spawn<F>(future: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::runtime::Handle::try_current()
        .ok()
        .map(|runtime| runtime.spawn(future))
}

/// Spawns a task that takes over `ready`'s next steps, if any are left.
pub(super) fn spawn_helper(run: &Arc<Run>, ready: &Arc<Ready>) {
    if let Some(share) = ready.claim(run) {
        spawn_share(run, share);
    }
}

/// Spawns a task that runs the steps of `share`, then claims more.
fn spawn_share(run: &Arc<Run>, mut share: Share) {
    if let Some(first) = share.next(run) {
        spawn_task(run, first, Some(share), 0);
    }
}

/// Runs a run's first task on the caller's thread, inside `start`, for as long as it does
/// not wait; only if it does is it spawned, as it is. A run of steps that never wait (or
/// whose first wait is late) then costs no spawn and no wake-up of another thread: its
/// outcome is there when `start` returns. The first poll is made with a waker that does
/// nothing, which is safe because the spawned task polls the future again at once and every
/// tokio primitive registers the waker of each poll.
pub(super) fn start_inline(run: &Arc<Run>, first: usize, share: Option<Share>, helpers: usize) {
    let Some(cell) = run.steps.get(first) else {
        return;
    };
    if run.stopped.load(Ordering::SeqCst) {
        return;
    }
    run.live.fetch_add(1, Ordering::AcqRel);
    let live = Live(Arc::clone(run));
    let mut future = Box::pin(async move {
        let live = live;
        run_steps(&live.0, first, share, helpers).await;
    });
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if future.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    let Some(task) = spawn(future) else {
        return;
    };
    *lock(&cell.task) = Some(task.abort_handle());
    // SeqCst pairs with `Run::stop`: either it saw the handle, or this sees `stopped`.
    if run.stopped.load(Ordering::SeqCst) {
        task.abort();
    }
}

/// Spawns a task that runs step `first`, then each dependent it makes ready, one after the
/// other; then, while `ready` has steps left, the next of them the same way. A chain costs no
/// spawn per step, and 10,000 ready steps cost a few tasks, not 10,000: as many as the runtime
/// has workers (the new task spawns `helpers` more, from a worker thread, where spawning is
/// cheap), plus one more each time a step has to wait, which takes over the ready steps that
/// would otherwise wait behind it. Independent steps thus run in parallel on every worker and
/// concurrently whenever they wait.
///
/// The task holds its steps' state boxed, so that a task waiting to be polled is small and
/// the box lives only while it runs. (A run's first task is started by [`start_inline`].)
pub(super) fn spawn_task(run: &Arc<Run>, first: usize, share: Option<Share>, helpers: usize) {
    let Some(cell) = run.steps.get(first) else {
        return;
    };
    if run.stopped.load(Ordering::SeqCst) {
        return;
    }
    run.live.fetch_add(1, Ordering::AcqRel);
    let live = Live(Arc::clone(run));
    let Some(task) = spawn(async move {
        let live = live;
        Box::pin(run_steps(&live.0, first, share, helpers)).await;
    }) else {
        return;
    };
    // The task is filed under the step it was spawned for; it may have ended already, and
    // then this handle is merely stale (aborting an ended task does nothing).
    *lock(&cell.task) = Some(task.abort_handle());
    // SeqCst pairs with `Run::stop`: either it saw the handle, or this sees `stopped`.
    if run.stopped.load(Ordering::SeqCst) {
        task.abort();
    }
}

/// The body of a step task: spawns `helpers` tasks for the ready set of `share`, then runs
/// `first` and each dependent it makes ready that no other task takes, then the same from the
/// share's next step, until none is left.
pub(super) async fn run_steps(
    run: &Arc<Run>,
    first: usize,
    mut share: Option<Share>,
    helpers: usize,
) {
    if let Some(share) = &share {
        for _ in 0..helpers {
            spawn_helper(run, &share.ready);
        }
    }
    // The previous step's end and permit, which the next step run here takes over.
    let mut carry = Carry::default();
    let mut ran: u32 = 0;
    let mut start = Some(first);
    while let Some(begin) = start {
        let mut next = Some(begin);
        while let Some(index) = next {
            let Some(name) = run.name(index) else {
                break;
            };
            // Many steps may run in this one task; let the worker's other tasks in now and
            // then.
            ran = ran.wrapping_add(1);
            if ran.is_multiple_of(STEPS_PER_YIELD) {
                if let Some(deferred) = carry.deferred.take()
                    && let Err(error) = Box::pin(flush(run, deferred)).await
                {
                    run.stop(Stop::Store(error));
                    break;
                }
                carry = Carry::default();
                tokio::task::yield_now().await;
            }
            let span = tracing::info_span!(
                parent: &run.span,
                "step",
                run_id = %run.run_id,
                step = %name
            );
            // A task that works through no ready set takes a share of the one this step
            // releases, if it releases several.
            let mut adopted = None;
            let adopt = share
                .as_ref()
                .is_none_or(|share| !share.left())
                .then_some(&mut adopted);
            // Polled where it is made, in the step's span: wrapped by `.instrument()`, the
            // step's future (some 700 bytes) would be copied into the wrapper once a step, a
            // twelfth of what a no-op step costs in all (`benches/instructions.sh`).
            next = {
                let mut step = std::pin::pin!(step_task(run, index, &mut carry, adopt));
                match share.as_mut().filter(|share| share.left()) {
                    // The first time the step waits, another task takes over the ready steps:
                    // those claimed here, else the next ones.
                    Some(share) => {
                        let mut helped = false;
                        std::future::poll_fn(|cx| {
                            let poll = span.in_scope(|| step.as_mut().poll(cx));
                            if poll.is_pending() && !helped {
                                helped = true;
                                match share.split() {
                                    Some(rest) => spawn_share(run, rest),
                                    None => spawn_helper(run, &share.ready),
                                }
                            }
                            poll
                        })
                        .await
                    }
                    None => {
                        std::future::poll_fn(|cx| span.in_scope(|| step.as_mut().poll(cx))).await
                    }
                }
            };
            if adopted.is_some() {
                share = adopted;
            }
        }
        start = share.as_mut().and_then(|share| share.next(run));
    }
    // A completion still carried belongs to the run's last step: the run's end records it.
    // One carried for a dependent the run stopped before running is dropped, as before,
    // unless the engine drains: the run is handed over, and the step must not run again.
    if let Some(deferred) = carry.deferred.take() {
        if !run.stopped.load(Ordering::SeqCst) {
            *lock(&run.last) = Some(deferred);
        } else if run.draining()
            && let Err(error) = Box::pin(flush(run, deferred)).await
        {
            run.stop(Stop::Store(error));
        }
    }
    drop(carry);
    if let Some(cell) = run.steps.get(first) {
        lock(&cell.task).take();
    }
}

/// Steps run one after the other in one task before it yields to the worker's other tasks.
const STEPS_PER_YIELD: u32 = 128;
