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
/// which the tasks working through them take one at a time.
pub(super) struct Ready {
    pub(super) steps: Arc<[usize]>,
    next: AtomicUsize,
}

impl Ready {
    pub(super) fn new(steps: Arc<[usize]>) -> Self {
        Self {
            steps,
            next: AtomicUsize::new(0),
        }
    }

    /// Whether steps are left to take.
    fn left(&self) -> bool {
        self.next.load(Ordering::Relaxed) < self.steps.len()
    }

    /// The next step to run, unless none is left or the run stopped.
    pub(super) fn claim(&self, run: &Run) -> Option<usize> {
        if !self.left() || run.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.steps.get(i).copied()
    }
}

/// Spawns a task that takes over `ready`'s next step, if one is left.
pub(super) fn spawn_helper(run: &Arc<Run>, ready: &Arc<Ready>) {
    if let Some(index) = ready.claim(run) {
        spawn_task(run, index, Some(Arc::clone(ready)), 0);
    }
}

/// Runs a run's first task on the caller's thread, inside `start`, for as long as it does
/// not wait; only if it does is it spawned, as it is. A run of steps that never wait (or
/// whose first wait is late) then costs no spawn and no wake-up of another thread: its
/// outcome is there when `start` returns. The first poll is made with a waker that does
/// nothing, which is safe because the spawned task polls the future again at once and every
/// tokio primitive registers the waker of each poll.
pub(super) fn start_inline(
    run: &Arc<Run>,
    first: usize,
    ready: Option<Arc<Ready>>,
    helpers: usize,
) {
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
        run_steps(&live.0, first, ready, helpers).await;
    });
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if future.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    let task = run.runtime.spawn(future);
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
pub(super) fn spawn_task(run: &Arc<Run>, first: usize, ready: Option<Arc<Ready>>, helpers: usize) {
    let Some(cell) = run.steps.get(first) else {
        return;
    };
    if run.stopped.load(Ordering::SeqCst) {
        return;
    }
    run.live.fetch_add(1, Ordering::AcqRel);
    let live = Live(Arc::clone(run));
    let task = run.runtime.spawn(async move {
        let live = live;
        Box::pin(run_steps(&live.0, first, ready, helpers)).await;
    });
    // The task is filed under the step it was spawned for; it may have ended already, and
    // then this handle is merely stale (aborting an ended task does nothing).
    *lock(&cell.task) = Some(task.abort_handle());
    // SeqCst pairs with `Run::stop`: either it saw the handle, or this sees `stopped`.
    if run.stopped.load(Ordering::SeqCst) {
        task.abort();
    }
}

/// The body of a step task: spawns `helpers` tasks for `ready`, then runs `first` and each
/// dependent it makes ready that no other task takes, then the same from `ready`'s next step,
/// until none is left.
pub(super) async fn run_steps(
    run: &Arc<Run>,
    first: usize,
    ready: Option<Arc<Ready>>,
    helpers: usize,
) {
    if let Some(ready) = &ready {
        for _ in 0..helpers {
            spawn_helper(run, ready);
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
            let step = step_task(run, index, &mut carry).instrument(span);
            next = match ready.as_ref().filter(|ready| ready.left()) {
                // The first time the step waits, another task takes over the ready steps.
                Some(ready) => {
                    let mut step = std::pin::pin!(step);
                    let mut helped = false;
                    std::future::poll_fn(|cx| {
                        let poll = step.as_mut().poll(cx);
                        if poll.is_pending() && !helped {
                            helped = true;
                            spawn_helper(run, ready);
                        }
                        poll
                    })
                    .await
                }
                None => step.await,
            };
        }
        start = ready.as_ref().and_then(|ready| ready.claim(run));
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
