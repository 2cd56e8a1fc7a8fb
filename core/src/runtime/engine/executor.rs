//! Executes one run: step tasks and no coordinator in between.
//!
//! A step's task, once its output is recorded, releases its dependents itself: the last input
//! to finish makes the dependent ready (dataflow, not waves). The task runs one ready
//! dependent next itself, so a chain costs no spawn and no cross-thread wake-up per step; a
//! central driver would cost two wake-ups per step, which was most of the engine's overhead.
//! Steps made ready together (a run's roots, the dependents one step released) are worked
//! through by as many tasks as the runtime has workers (the task that released them among
//! them), each claiming the next few ready steps when it is done with its own, and one more
//! task is spawned whenever a step has to wait, taking over what that task had claimed:
//! independent steps run in parallel on every worker and concurrently whenever they wait, and
//! 10,000 ready no-op steps cost a few tasks instead of 10,000.
//!
//! The run ends when its count of live step tasks drops to zero, which happens exactly once:
//! a task is counted before it is spawned, by a task that is itself still counted. Stopping a
//! run (a failed step, a cancellation, a store failure) aborts every step task; an aborted
//! task drops its future, user code included, before it gives up its count, so when `wait()`
//! returns no future of that run is still alive. The final checkpoint and the outcome are then
//! produced by a task of their own, which nothing aborts; with a store that records no changes
//! there is nothing to await, and the last task out publishes the outcome itself.

mod attempt;
mod control;
mod outcome;
mod tasks;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::policy::OnError;
use crate::runtime::context::{SignalSource, StepScope};
use crate::runtime::definition::{self, ErasedDefinition, Name, StepDef, Value};
use crate::runtime::engine::Inner;
use crate::runtime::error::{RunError, StepError, StoreError};
use crate::runtime::id::RunId;
use crate::runtime::report::StepStatus;
use crate::runtime::store::Change;

use self::attempt::{StepEnd, run_step};
pub(crate) use self::control::{Control, Finished, Outcome, OutcomeSender};
use self::outcome::{conclude, settle};
pub(crate) use self::tasks::in_runtime;
use self::tasks::{Ready, Share, spawn, spawn_helper, spawn_task, start_inline};
use crate::runtime::engine::Permit;

/// What a task carries from one step it runs to the next.
#[derive(Default)]
pub(crate) struct Carry<'r> {
    /// When the previous step ended, if nothing came between.
    clock: Option<Instant>,
    /// The previous step's permit, for the next step to take over.
    permit: Option<Permit<'r>>,
    /// The previous step's completion, not yet recorded: the next step run here records it
    /// with its own start, in one write (one commit per step of a chain, not two). Whoever
    /// cannot do that (a step with a guard, a step that must wait for a permit, a task about
    /// to yield or to hand dependents to other tasks) records it first, with [`flush`].
    deferred: Option<Deferred>,
}

/// A step's completion whose checkpoint is deferred to the next step's start.
pub(crate) struct Deferred {
    index: usize,
    attempt: u32,
    output: Value,
}

/// Records a deferred completion on its own.
async fn flush(run: &Run, deferred: Deferred) -> Result<(), StoreError> {
    run.record_completed(&deferred, None).await
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single assignment or `take`, so the data behind a
    // poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One run in flight, shared by its step tasks.
pub(crate) struct Run {
    engine: Arc<Inner>,
    run_id: RunId,
    def: Arc<ErasedDefinition>,
    /// Always `Some`: an `Option` so that a step can read it in place, as it reads its
    /// upstream steps' outputs.
    input: Option<Value>,
    steps: Box<[StepCell]>,
    /// Step tasks spawned and not yet ended, plus one held by `start` while it spawns roots.
    live: AtomicUsize,
    /// Whether the code starting the run still holds its count of `live` (it gives it up
    /// once it has started the first task).
    starting: AtomicBool,
    /// The last step's completion, kept by the run's last task for [`conclude`] to record
    /// with the run's end, in one write (see `finish`).
    last: Mutex<Option<Deferred>>,
    stopped: AtomicBool,
    /// Why the run stopped early; the first reason wins.
    stop: Mutex<Option<Stop>>,
    outcome: OutcomeSender,
    span: tracing::Span,
    /// The run had ended in an earlier process, which recorded that end: it is not recorded
    /// again (a run's outcome is recorded exactly once).
    end_recorded: bool,
    /// For a run taken up after a crash, the time its interrupted steps had already spent
    /// since their first attempt began (by the wall clock), by step: their deadlines count
    /// it. Empty for a new run.
    spent: Box<[(usize, Duration)]>,
    /// The step whose first attempt's start the run's creation recorded (see [`Launch`]).
    begun: Option<usize>,
}

/// One step of a run in flight. Every field is written by the step's own task only (or, for
/// `waiting`, counted down by its inputs), so nothing here is contended.
/// Its name is the definition's ([`Run::name`]), not copied for every run.
struct StepCell {
    /// Inputs not yet finished; the task that takes it to zero spawns this step.
    waiting: AtomicUsize,
    /// Set once, when the step ends; dependents read their inputs from it.
    end: OnceLock<Ended>,
    attempts: AtomicU32,
    task: Mutex<Option<AbortHandle>>,
}

struct Ended {
    status: StepStatus,
    output: Option<Value>,
    error: Option<StepError>,
    /// When the first attempt began, if one did.
    started: Option<Instant>,
    at: Instant,
}

impl StepCell {
    fn output(&self) -> Option<&Value> {
        self.end.get().and_then(|end| end.output.as_ref())
    }
}

/// Why a run stopped before every step ended.
enum Stop {
    Failed {
        index: usize,
        attempts: u32,
        error: StepError,
    },
    Cancelled,
    Store(StoreError),
    Internal(String),
    /// The run had failed in an earlier process.
    Earlier(String),
    /// The engine drains: the run starts no step, and is released once its running ones end
    /// (see `drain`).
    Drained,
}

/// How a step of a run taken up from the store stands: what an earlier process recorded.
pub(crate) enum Restored {
    /// Never started: it runs as in a new run.
    Fresh,
    /// Ended earlier (completed, skipped, or failed with `on_error = continue`): it does not
    /// run again, and its dependents get its stored output.
    Ended {
        status: StepStatus,
        output: Option<Value>,
        error: Option<StepError>,
        attempts: u32,
    },
    /// Its start was recorded, not its end: an attempt was cut by a crash. It runs again,
    /// attempts counting on, unless it is at-most-once; `started` is when its first attempt
    /// began, if the store knows, from which its deadline counts.
    Interrupted {
        attempts: u32,
        started: Option<SystemTime>,
    },
}

/// What an earlier process left of a run: each step as it stood, and, for a run that had
/// ended, how (its end is already recorded and must not be recorded twice).
pub(crate) struct Resume {
    pub(crate) steps: Vec<Restored>,
    pub(crate) ended: Option<StoredEnd>,
}

/// How a run begins executing.
pub(crate) struct Launch {
    /// What an earlier process left of it; `None` for a new run.
    pub(crate) resume: Option<Resume>,
    /// The step whose first attempt's start the run's creation recorded (see
    /// [`NewRun::first_step`](crate::runtime::store::NewRun::first_step)): that attempt
    /// records no start of its own.
    pub(crate) begun: Option<usize>,
}

/// How a run had ended in an earlier process.
pub(crate) enum StoredEnd {
    Completed,
    Failed(String),
    Cancelled,
}

/// Starts executing a run whose store record exists. The outcome is published on `outcome`.
/// With `resume`, the run is one an earlier process started: ended steps are not run again.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_run(
    engine: Arc<Inner>,
    run_id: RunId,
    def: Arc<ErasedDefinition>,
    input: Value,
    outcome: OutcomeSender,
    control: &Control,
    launch: Launch,
) {
    let Launch { resume, begun } = launch;
    let Ok(graph) = def.graph() else {
        let error = RunError::Internal {
            run_id: run_id.clone(),
            message: "the definition became invalid after it was checked".to_owned(),
        };
        outcome.send_ended(Err(error), &engine, &run_id, Instant::now(), None);
        return;
    };
    // Only a run taken up has steps that ended before it began here.
    let now = resume.is_some().then(Instant::now);
    let (restored, ended_before) = match resume {
        Some(resume) => (Some(resume.steps), resume.ended),
        None => (None, None),
    };
    let mut failed_for_good = Vec::new();
    let spent: Box<[(usize, Duration)]> = restored
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, step)| match step {
            Restored::Interrupted {
                started: Some(at), ..
            } => Some((i, SystemTime::now().duration_since(*at).unwrap_or_default())),
            _ => None,
        })
        .collect();
    let fresh = |i: usize| StepCell {
        waiting: AtomicUsize::new(graph.inputs(i).len()),
        end: OnceLock::new(),
        attempts: AtomicU32::new(0),
        task: Mutex::new(None),
    };
    let steps: Box<[StepCell]> = match &restored {
        // A new run: every cell as it starts, made where it is kept.
        None => (0..def.steps().len()).map(fresh).collect(),
        Some(restored) => restore_cells(&def, restored, now, fresh, &mut failed_for_good),
    };
    // What is ready: in a new run its roots (read from the plan below, not copied); in a
    // resumed one, every step not ended whose inputs all have.
    let resumed: Option<Arc<[usize]>> = if restored.is_some() {
        for (i, cell) in steps.iter().enumerate() {
            let open = graph
                .inputs(i)
                .iter()
                .filter(|&&u| steps.get(u).is_some_and(|c| c.end.get().is_none()))
                .count();
            cell.waiting.store(open, Ordering::Relaxed);
        }
        (0..steps.len())
            .filter(|&i| {
                steps[i].end.get().is_none() && steps[i].waiting.load(Ordering::Relaxed) == 0
            })
            .collect::<Arc<[usize]>>()
            .into()
    } else {
        None
    };
    let span = tracing::info_span!("run", run_id = %run_id, workflow = %def.name());
    let run = Arc::new(Run {
        engine,
        run_id,
        def,
        input: Some(input),
        steps,
        live: AtomicUsize::new(1),
        last: Mutex::new(None),
        starting: AtomicBool::new(true),
        stopped: AtomicBool::new(false),
        stop: Mutex::new(None),
        outcome,
        span,
        end_recorded: ended_before.is_some(),
        spent,
        begun,
    });
    match ended_before {
        None => {}
        Some(StoredEnd::Completed) => {}
        Some(StoredEnd::Cancelled) => run.stop(Stop::Cancelled),
        Some(StoredEnd::Failed(error)) => run.stop(Stop::Earlier(error)),
    }
    for (index, attempts, error) in failed_for_good {
        let continues = run
            .def
            .steps()
            .get(index)
            .is_some_and(|d| d.options().on_error == Some(OnError::Continue));
        if !continues {
            run.stop(Stop::Failed {
                index,
                attempts,
                error,
            });
        }
    }
    control.attach(&run);
    let roots = &definition::plan(&run.def).roots;
    match resumed.as_deref().unwrap_or(roots) {
        [] => {}
        &[root] => start_inline(&run, root, None, 0),
        _ => {
            let ready = resumed.unwrap_or_else(|| Arc::clone(roots));
            let workers = run.width().min(ready.len());
            let ready = Arc::new(Ready::new(ready, workers));
            if let Some(mut share) = ready.claim(&run)
                && let Some(first) = share.next(&run)
            {
                start_inline(&run, first, Some(share), helpers(workers));
            }
        }
    }
    // Before the count goes: a task reading `live` then `starting` never counts this twice.
    run.starting.store(false, Ordering::SeqCst);
    run.release();
}

/// The cells of a run taken up after a crash: each step as the store left it. Steps that
/// failed for good before (or were interrupted and are at-most-once) are put in
/// `failed_for_good`, for the run to fail again for them.
fn restore_cells(
    def: &ErasedDefinition,
    restored: &[Restored],
    now: Option<Instant>,
    fresh: impl Fn(usize) -> StepCell,
    failed_for_good: &mut Vec<(usize, u32, StepError)>,
) -> Box<[StepCell]> {
    let at = || now.unwrap_or_else(Instant::now);
    def.steps()
        .iter()
        .map(StepDef::name)
        .enumerate()
        .map(|(i, name)| {
            let cell = fresh(i);
            match restored.get(i) {
                None | Some(Restored::Fresh) => {}
                Some(Restored::Ended {
                    status,
                    output,
                    error,
                    attempts,
                }) => {
                    cell.attempts.store(*attempts, Ordering::Relaxed);
                    let _ = cell.end.set(Ended {
                        status: *status,
                        output: output.clone(),
                        error: error.clone(),
                        started: None,
                        at: at(),
                    });
                    // A step that failed for good before the crash, whose run's end was not
                    // recorded: the run fails again for it, as it was failing then.
                    if *status == StepStatus::Failed {
                        let error = error.clone().unwrap_or_else(|| {
                            StepError::permanent(format!("step `{name}` failed before the crash"))
                        });
                        failed_for_good.push((i, *attempts, error));
                    }
                }
                Some(Restored::Interrupted { attempts, .. }) => {
                    cell.attempts.store(*attempts, Ordering::Relaxed);
                    let at_most_once = def
                        .steps()
                        .get(i)
                        .is_some_and(|d| d.options().at_most_once == Some(true));
                    if at_most_once {
                        let error = StepError::permanent(format!(
                            "step `{name}` was interrupted by a crash after {attempts} attempt(s) and is at-most-once, so it was not run again"
                        ));
                        let _ = cell.end.set(Ended {
                            status: StepStatus::Interrupted,
                            output: None,
                            error: Some(error.clone()),
                            started: None,
                            at: at(),
                        });
                        failed_for_good.push((i, *attempts, error));
                    }
                }
            }
            cell
        })
        .collect()
}

#[async_trait::async_trait]
impl SignalSource for Run {
    async fn wait(&self, run_id: &RunId, name: &str) -> Result<String, StepError> {
        self.engine.signals.wait(run_id, name).await
    }
}

impl StepScope for Run {
    fn run_id(&self) -> &RunId {
        &self.run_id
    }

    fn step_name(&self, index: usize) -> &str {
        self.name(index).map_or("", |name| name)
    }
}

impl Run {
    /// What step `index` had spent of its time before the crash this run was taken up after.
    fn spent(&self, index: usize) -> Duration {
        self.spent
            .iter()
            .find(|&&(i, _)| i == index)
            .map_or(Duration::ZERO, |&(_, spent)| spent)
    }

    /// Step `index`'s name, the definition's (and so every run's).
    fn name(&self, index: usize) -> Option<&Name> {
        self.def.steps().get(index).map(StepDef::shared_name)
    }

    /// Records `change`, unless the store records no changes: then nothing is called, and
    /// nothing is boxed.
    async fn record(&self, change: &Change<'_>) -> Result<(), StoreError> {
        if !self.engine.records {
            return Ok(());
        }
        self.engine.store.record(&self.run_id, change).await
    }

    /// Records the deferred completion `done`, with `then` in the same write when given.
    async fn record_completed(
        &self,
        done: &Deferred,
        then: Option<&Change<'_>>,
    ) -> Result<(), StoreError> {
        let (Some(name), Some(def)) = (self.name(done.index), self.def.steps().get(done.index))
        else {
            return Err(StoreError::Backend(format!(
                "internal: run `{}` has no step {}",
                self.run_id, done.index
            )));
        };
        let completed = Change::StepCompleted {
            step: name,
            attempt: done.attempt,
            output: &*done.output,
            codec: def.codec(),
        };
        match then {
            None => self.record(&completed).await,
            Some(then) => {
                self.engine
                    .store
                    .record_pair(&self.run_id, &completed, then)
                    .await
            }
        }
    }

    /// The runtime's workers: how many tasks at most work through a set of ready steps.
    /// Read from the runtime the caller runs on, the run's (see [`spawn`]).
    fn width(&self) -> usize {
        tokio::runtime::Handle::try_current()
            .map_or(1, |runtime| runtime.metrics().num_workers().max(1))
    }

    fn internal(&self, message: impl Into<String>) -> RunError {
        RunError::Internal {
            run_id: self.run_id.clone(),
            message: message.into(),
        }
    }

    /// Stops the run for `reason` (unless it stopped already) and aborts every step task. A
    /// step task that calls this aborts itself too, which is harmless: it returns without
    /// awaiting anything more, and what it owes the run is given back by its `Live` guard.
    fn stop(&self, reason: Stop) {
        {
            let mut stop = lock(&self.stop);
            if stop.is_none() {
                *stop = Some(reason);
            }
        }
        // SeqCst pairs with `spawn_task`: either it sees `stopped`, or this sees its handle.
        self.stopped.store(true, Ordering::SeqCst);
        for cell in self.steps.iter() {
            if let Some(task) = lock(&cell.task).take() {
                task.abort();
            }
        }
    }

    /// The engine drains: the run starts no further step (its running ones go on), and is
    /// released once they have ended, unless something stopped it first.
    fn drain(&self) {
        {
            let mut stop = lock(&self.stop);
            if stop.is_none() {
                *stop = Some(Stop::Drained);
            }
        }
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether the engine this run belongs to drains.
    fn draining(&self) -> bool {
        self.engine.lifecycle.is_draining()
    }

    /// When the run's last step ended (read when its steps ended, not again), or now if none
    /// did.
    fn ended_at(&self) -> Instant {
        self.steps
            .iter()
            .filter_map(|cell| cell.end.get().map(|end| end.at))
            .max()
            .unwrap_or_else(Instant::now)
    }

    /// Whether the calling task is the run's only one: `live` counts it, and the starting
    /// code until that lets go. `live` is read first: the starter clears `starting` before it
    /// gives up its count, so a count read without it finds `starting` cleared.
    fn alone(&self) -> bool {
        let live = self.live.load(Ordering::SeqCst);
        let starter = usize::from(self.starting.load(Ordering::SeqCst));
        live.saturating_sub(starter) == 1
    }

    /// Gives up one count of live tasks; the last one out concludes the run. With a store
    /// that records changes, that takes a task of its own, so that no abort can cut the final
    /// checkpoint short; with one that does not, there is nothing to await, and the outcome is
    /// published here and now, which no abort can interrupt either.
    fn release(self: &Arc<Self>) {
        if self.live.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if !self.engine.records {
            let _entered = self.span.enter();
            let outcome = settle(self);
            self.outcome.send_ended(
                outcome,
                &self.engine,
                &self.run_id,
                self.ended_at(),
                Some(&self.def),
            );
            return;
        }
        let run = Arc::clone(self);
        let span = self.span.clone();
        spawn(
            async move {
                let outcome = conclude(&run).await;
                run.outcome.send_ended(
                    outcome,
                    &run.engine,
                    &run.run_id,
                    Instant::now(),
                    Some(&run.def),
                );
            }
            .instrument(span),
        );
    }
}

/// How many helper tasks a task that works through a ready set itself spawns, on a runtime of
/// `workers` workers: one per worker, not one per other worker. On a multi-thread runtime, a
/// task spawned from a worker goes into that worker's LIFO slot, which no other worker can
/// take, and nobody is woken for it; the next one spawned pushes it to the worker's queue,
/// which the others take from. With one per worker, all but the last are there for the other
/// workers; the last one claims what is left when its worker gets to it (often nothing, and
/// then it ends at once).
fn helpers(workers: usize) -> usize {
    if workers > 1 { workers } else { 0 }
}

/// Runs step `index` to its end, records how it ended, and releases its dependents (or
/// stops the run). Returns a dependent made ready, for the caller to run next itself; leaves
/// in `carry` when the step ended and, after a success, its permit, for that dependent.
/// When it releases several and `adopt` is given (the calling task works through no ready
/// set), the caller takes a share of them there and works through it with as many tasks
/// as the runtime has workers, itself included; else the others go to tasks of their own.
async fn step_task<'r>(
    run: &'r Arc<Run>,
    index: usize,
    carry: &mut Carry<'r>,
    adopt: Option<&mut Option<Share>>,
) -> Option<usize> {
    let (Some(def), Some(cell)) = (run.def.steps().get(index), run.steps.get(index)) else {
        run.stop(Stop::Internal(format!("no step {index}")));
        return None;
    };
    let mut started = None;
    let (status, output, error) = match run_step(run, index, def, cell, carry, &mut started).await {
        StepEnd::Completed(output) => (StepStatus::Completed, Some(output), None),
        StepEnd::Skipped => (StepStatus::Skipped, None, None),
        StepEnd::Failed { attempts, error } => {
            if def.options().on_error != Some(OnError::Continue) {
                let _ = cell.end.set(Ended {
                    status: StepStatus::Failed,
                    output: None,
                    error: Some(error.clone()),
                    started,
                    at: Instant::now(),
                });
                let reason = Stop::Failed {
                    index,
                    attempts,
                    error,
                };
                run.stop(reason);
                return None;
            }
            (StepStatus::Failed, None, Some(error))
        }
        StepEnd::Store(error) => {
            run.stop(Stop::Store(*error));
            return None;
        }
        StepEnd::Drained => {
            run.drain();
            return None;
        }
    };
    let Ok(graph) = run.def.graph() else {
        return None;
    };
    // An output nothing reads (no dependent takes it, and it is not the run's) is dropped now,
    // not with the run: 10,000 independent steps then hold one output at a time, not 10,000.
    let read = !graph.outputs(index).is_empty() || run.def.output_step() == Some(index);
    let at = Instant::now();
    let _ = cell.end.set(Ended {
        status,
        output: output.filter(|_| read),
        error,
        started,
        at,
    });
    carry.clock = Some(at);
    let mut next = None;
    let mut also = Vec::new();
    let flushed = |carry: &mut Carry<'r>| carry.deferred.take();
    for &dependent in graph.outputs(index) {
        // A dependent with this one input is ready now; no other task counts it down.
        let ready = run.steps.get(dependent).is_some_and(|d| {
            graph.inputs(dependent).len() == 1 || d.waiting.fetch_sub(1, Ordering::AcqRel) == 1
        });
        if !ready {
            continue;
        }
        if next.is_none() {
            next = Some(dependent);
        } else {
            also.push(dependent);
        }
    }
    // The completion is recorded before any dependent starts: with the next step's start
    // when that step runs here next, else now, before other tasks get the dependents.
    let carried = next.is_some() && also.is_empty() && !run.stopped.load(Ordering::SeqCst);
    // Or, when no dependent is ready and this task is the run's only one, kept: until this
    // task hands work to another it flushes first, so nothing can start a dependent before
    // the completion is recorded; the next step it runs records it with its own start, and
    // if there is none, the run's end does (`run_steps`, then `conclude`).
    let kept = next.is_none()
        && also.is_empty()
        && run.engine.records
        && !run.stopped.load(Ordering::SeqCst)
        && run.alone();
    if !carried
        && !kept
        && let Some(deferred) = flushed(carry)
        && let Err(error) = Box::pin(flush(run, deferred)).await
    {
        run.stop(Stop::Store(error));
        return None;
    }
    match *also {
        [] => {}
        [dependent] => spawn_task(run, dependent, None, 0),
        _ => {
            // The caller takes a share of the set, with its `next` first, when it can.
            let adopt = adopt.zip(next);
            if let Some((_, first)) = adopt {
                also.insert(0, first);
            }
            let workers = run.width().min(also.len());
            let ready = Arc::new(Ready::new(Arc::from(also), workers));
            let spawned = match adopt {
                Some((slot, _)) => {
                    let mut own = ready.claim(run);
                    next = own.as_mut().and_then(|share| share.next(run));
                    *slot = own;
                    helpers(workers)
                }
                None => workers,
            };
            for _ in 0..spawned {
                spawn_helper(run, &ready);
            }
        }
    }
    next.filter(|_| !run.stopped.load(Ordering::SeqCst))
}
