//! Executes one run: step tasks and no coordinator in between.
//!
//! A step's task, once its output is recorded, releases its dependents itself: the last input
//! to finish makes the dependent ready (dataflow, not waves). The task runs one ready
//! dependent next itself and spawns a task for each other one, so independent steps run in
//! parallel while a chain costs no spawn and no cross-thread wake-up per step; a central
//! driver would cost two wake-ups per step, which was most of the engine's overhead.
//!
//! The run ends when its count of live step tasks drops to zero, which happens exactly once:
//! a task is counted before it is spawned, by a task that is itself still counted. Stopping a
//! run (a failed step, a cancellation, a store failure) aborts every step task; an aborted
//! task drops its future, user code included, before it gives up its count, so when `wait()`
//! returns no future of that run is still alive. The final checkpoint and the outcome are then
//! produced by a task of their own, which nothing aborts.

mod attempt;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::policy::OnError;
use crate::runtime::context::RunId;
use crate::runtime::definition::{ErasedDefinition, Value};
use crate::runtime::engine::{self, Inner};
use crate::runtime::error::{RunError, StepError, StoreError};
use crate::runtime::report::{StepReport, StepStatus};
use crate::runtime::store::Change;

use self::attempt::{StepEnd, run_step};

/// A finished run, before it is typed for a handle.
pub(crate) struct Finished {
    pub(crate) output: Value,
    pub(crate) steps: Vec<StepReport>,
}

/// What every handle on a run eventually sees.
pub(crate) type Outcome = Result<Finished, RunError>;

/// Where the outcome is published; `None` until the run ends.
pub(crate) type OutcomeSender = watch::Sender<Option<Arc<Outcome>>>;

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
    input: Value,
    steps: Box<[StepCell]>,
    /// Step tasks spawned and not yet ended, plus one held by `start` while it spawns roots.
    live: AtomicUsize,
    stopped: AtomicBool,
    /// Why the run stopped early; the first reason wins.
    stop: Mutex<Option<Stop>>,
    outcome: OutcomeSender,
    runtime: tokio::runtime::Handle,
    span: tracing::Span,
    /// What `StepCell::started` counts from.
    born: Instant,
}

/// One step of a run in flight. Every field is written by the step's own task only (or, for
/// `waiting`, counted down by its inputs), so nothing here is contended.
struct StepCell {
    name: Arc<str>,
    /// Inputs not yet finished; the task that takes it to zero spawns this step.
    waiting: AtomicUsize,
    /// Set once, when the step ends; dependents read their inputs from it.
    end: OnceLock<Ended>,
    attempts: AtomicU32,
    /// When the first attempt began, in nanoseconds after `Run::born`, plus one; 0 = never.
    started: AtomicU64,
    task: Mutex<Option<AbortHandle>>,
}

struct Ended {
    status: StepStatus,
    output: Option<Value>,
    error: Option<StepError>,
    at: Instant,
}

impl StepCell {
    fn output(&self) -> Option<&Value> {
        self.end.get().and_then(|end| end.output.as_ref())
    }

    fn started(&self, born: Instant) -> Option<Instant> {
        match self.started.load(Ordering::Acquire) {
            0 => None,
            nanos => born.checked_add(Duration::from_nanos(nanos - 1)),
        }
    }

    fn mark_started(&self, born: Instant, now: Instant) {
        let nanos =
            u64::try_from(now.saturating_duration_since(born).as_nanos()).unwrap_or(u64::MAX - 1);
        self.started
            .store(nanos.saturating_add(1), Ordering::Release);
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
}

/// Lets handles cancel a run that may not exist yet (its start still awaits the store) or may
/// be gone (finished): it holds the run weakly, so a finished run's steps are freed.
#[derive(Default)]
pub(crate) struct Control {
    cancelled: AtomicBool,
    run: OnceLock<Weak<Run>>,
}

impl Control {
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(run) = self.run.get().and_then(Weak::upgrade) {
            run.stop(Stop::Cancelled);
        }
    }

    fn attach(&self, run: &Arc<Run>) {
        let _ = self.run.set(Arc::downgrade(run));
        if self.cancelled.load(Ordering::SeqCst) {
            run.stop(Stop::Cancelled);
        }
    }
}

/// Starts executing a run whose store record exists. The outcome is published on `outcome`.
pub(crate) fn launch_run(
    engine: Arc<Inner>,
    run_id: RunId,
    def: Arc<ErasedDefinition>,
    input: Value,
    outcome: OutcomeSender,
    control: &Control,
    runtime: tokio::runtime::Handle,
) {
    let Ok(graph) = def.graph() else {
        let error = RunError::Internal {
            run_id,
            message: "the definition became invalid after it was checked".to_owned(),
        };
        outcome.send_replace(Some(Arc::new(Err(error))));
        return;
    };
    let plan = engine::plan(&def);
    let steps = plan
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| StepCell {
            name: Arc::clone(name),
            waiting: AtomicUsize::new(graph.inputs(i).len()),
            end: OnceLock::new(),
            attempts: AtomicU32::new(0),
            started: AtomicU64::new(0),
            task: Mutex::new(None),
        })
        .collect();
    let span = tracing::info_span!("run", run_id = %run_id, workflow = %def.name());
    let run = Arc::new(Run {
        engine,
        run_id,
        def: Arc::clone(&def),
        input,
        steps,
        live: AtomicUsize::new(1),
        stopped: AtomicBool::new(false),
        stop: Mutex::new(None),
        outcome,
        runtime,
        span,
        born: Instant::now(),
    });
    control.attach(&run);
    if let Some((&first, rest)) = plan.roots.split_first() {
        spawn_task(&run, first, rest.to_vec());
    }
    run.release();
}

impl Run {
    async fn record(&self, change: &Change<'_>) -> Result<(), StoreError> {
        self.engine.store.record(&self.run_id, change).await
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

    /// Gives up one count of live tasks; the last one out concludes the run in a task of its
    /// own, so that no abort can cut the final checkpoint short.
    fn release(self: &Arc<Self>) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            let run = Arc::clone(self);
            let span = self.span.clone();
            self.runtime.spawn(
                async move {
                    let outcome = conclude(&run).await;
                    run.outcome.send_replace(Some(Arc::new(outcome)));
                }
                .instrument(span),
            );
        }
    }
}

/// Gives up a step task's live count when the task ends, however it ends: an aborted task's
/// future is dropped with this guard in it, after everything inside it.
struct Live(Arc<Run>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Spawns a task that runs step `first`, then each dependent it makes ready, one after the
/// other, spawning a task for every further dependent made ready at the same time: a chain
/// costs no spawn per step, and independent steps still run in tasks of their own. `also`
/// are spawned from inside the new task, so that a run's roots are spawned from a worker
/// thread (cheap, local) rather than from the caller's.
fn spawn_task(run: &Arc<Run>, first: usize, also: Vec<usize>) {
    let Some(cell) = run.steps.get(first) else {
        return;
    };
    if run.stopped.load(Ordering::SeqCst) {
        return;
    }
    run.live.fetch_add(1, Ordering::AcqRel);
    let live = Live(Arc::clone(run));
    // Boxed, so that a task waiting to be polled is small (10,000 ready steps would otherwise
    // each hold a whole step's state machine); the box lives only while the task runs.
    let task = run.runtime.spawn(async move {
        let live = live;
        Box::pin(run_steps(&live.0, first, also)).await;
    });
    // The task is filed under the step it was spawned for; it may have ended already, and
    // then this handle is merely stale (aborting an ended task does nothing).
    *lock(&cell.task) = Some(task.abort_handle());
    // SeqCst pairs with `Run::stop`: either it saw the handle, or this sees `stopped`.
    if run.stopped.load(Ordering::SeqCst) {
        task.abort();
    }
}

/// The body of a step task: spawns `also`, then runs `first` and each dependent it makes
/// ready that no other task takes.
async fn run_steps(run: &Arc<Run>, first: usize, also: Vec<usize>) {
    for index in also {
        spawn_task(run, index, Vec::new());
    }
    let mut next = Some(first);
    while let Some(index) = next {
        let Some(cell) = run.steps.get(index) else {
            break;
        };
        let span = tracing::info_span!(
            parent: &run.span,
            "step",
            run_id = %run.run_id,
            step = %cell.name
        );
        next = step_task(run, index).instrument(span).await;
    }
    if let Some(cell) = run.steps.get(first) {
        lock(&cell.task).take();
    }
}

/// Runs step `index` to its end, records how it ended, and releases its dependents (or
/// stops the run). Returns a dependent made ready, for the caller to run next itself.
async fn step_task(run: &Arc<Run>, index: usize) -> Option<usize> {
    let (Some(def), Some(cell)) = (run.def.steps().get(index), run.steps.get(index)) else {
        run.stop(Stop::Internal(format!("no step {index}")));
        return None;
    };
    let (status, output, error) = match run_step(run, def, cell).await {
        StepEnd::Completed(output) => (StepStatus::Completed, Some(output), None),
        StepEnd::Skipped => (StepStatus::Skipped, None, None),
        StepEnd::Failed { attempts, error } => {
            if def.options().on_error != Some(OnError::Continue) {
                let _ = cell.end.set(Ended {
                    status: StepStatus::Failed,
                    output: None,
                    error: Some(error.clone()),
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
            run.stop(Stop::Store(error));
            return None;
        }
    };
    let _ = cell.end.set(Ended {
        status,
        output,
        error,
        at: Instant::now(),
    });
    let Ok(graph) = run.def.graph() else {
        return None;
    };
    let mut next = None;
    for &dependent in graph.outputs(index) {
        let ready = run
            .steps
            .get(dependent)
            .is_some_and(|d| d.waiting.fetch_sub(1, Ordering::AcqRel) == 1);
        if !ready {
            continue;
        }
        if next.is_none() {
            next = Some(dependent);
        } else {
            spawn_task(run, dependent, Vec::new());
        }
    }
    next.filter(|_| !run.stopped.load(Ordering::SeqCst))
}

/// Records the run's end and returns its outcome.
async fn conclude(run: &Run) -> Outcome {
    let stop = lock(&run.stop).take();
    let stop = match stop {
        Some(stop) => stop,
        None => match completed_output(run) {
            Ok(output) => {
                return match run.record(&Change::RunCompleted).await {
                    Ok(()) => Ok(Finished {
                        output,
                        steps: reports(run),
                    }),
                    Err(source) => Err(store_error(run, source)),
                };
            }
            Err(message) => Stop::Internal(message.to_owned()),
        },
    };
    let error = match stop {
        Stop::Failed {
            index,
            attempts,
            error,
        } => {
            let step = run
                .def
                .steps()
                .get(index)
                .map(|s| s.name().to_owned())
                .unwrap_or_default();
            tracing::warn!(step = %step, attempts, error = %error, "run failed");
            RunError::StepFailed {
                run_id: run.run_id.clone(),
                step,
                attempts,
                error,
                steps: reports(run),
            }
        }
        Stop::Cancelled => {
            tracing::debug!("run cancelled");
            return match run.record(&Change::RunCancelled).await {
                Ok(()) => Err(RunError::Cancelled {
                    run_id: run.run_id.clone(),
                    steps: reports(run),
                }),
                Err(source) => Err(store_error(run, source)),
            };
        }
        // The run is left as the store last saw it: a durable store can resume it once it
        // is reachable again, which a recorded failure would rule out.
        Stop::Store(source) => return Err(store_error(run, source)),
        Stop::Internal(message) => run.internal(message),
    };
    match run.record(&Change::RunFailed { error: &error }).await {
        Ok(()) => Err(error),
        Err(source) => Err(store_error(run, source)),
    }
}

/// The output of a run that was not stopped, once every step has ended.
fn completed_output(run: &Run) -> Result<Value, &'static str> {
    if run.steps.iter().any(|cell| cell.end.get().is_none()) {
        return Err("the run ended with steps that never started, although none failed");
    }
    match run.def.output_step() {
        None => Ok(Arc::new(())),
        Some(index) => run
            .steps
            .get(index)
            .and_then(StepCell::output)
            .cloned()
            .ok_or("the output step finished without an output"),
    }
}

fn store_error(run: &Run, source: StoreError) -> RunError {
    tracing::warn!(error = %source, "the store failed; the run stops");
    RunError::Store {
        run_id: run.run_id.clone(),
        source,
    }
}

/// Each step's state when the run ended, in declaration order. A step whose task was
/// aborted mid-way is `Running` with the attempts it made; one that never began an attempt
/// is `NotRun`.
fn reports(run: &Run) -> Vec<StepReport> {
    run.def
        .steps()
        .iter()
        .zip(run.steps.iter())
        .map(|(def, cell)| {
            let attempts = cell.attempts.load(Ordering::Acquire);
            let ended = cell.end.get();
            let status = match ended {
                Some(ended) => ended.status,
                None if attempts > 0 => StepStatus::Running,
                None => StepStatus::NotRun,
            };
            let duration = match (cell.started(run.born), ended) {
                (Some(started), Some(ended)) => Some(ended.at.saturating_duration_since(started)),
                _ => None,
            };
            StepReport {
                name: def.name().to_owned(),
                status,
                attempts,
                duration,
                error: ended.and_then(|e| e.error.clone()),
            }
        })
        .collect()
}
