//! The engine: starts runs, finds them again by id, and cancels them.
//!
//! The engine owns no thread and no runtime: a run's steps are tasks spawned on the caller's
//! tokio runtime, so it works the same on a current-thread test runtime and a multi-threaded
//! server. A run id is an idempotency key: starting an id again hands back the same run, never
//! a second execution. The engine's table holds the runs that are live; where a finished run
//! is found again depends on the store:
//!
//! - a store that keeps finished runs ([`RunStore::keeps_finished_runs`](crate::runtime::RunStore::keeps_finished_runs): the SQLite store) has
//!   them; the engine forgets a run once it has ended, and starting its id again reads the
//!   run and its outcome back from the store, so the engine's memory does not grow with the
//!   runs it has finished;
//! - with any other store ([`Engine::ephemeral`]) the table keeps finished runs with their
//!   outcomes, up to a bound ([`EngineBuilder::keep_finished_runs`],
//!   [`EngineBuilder::keep_finished_for`]): the most recent ones, none older than the age.
//!   The idempotency of a run id lasts as long as its run is kept: an id started again after
//!   its run was dropped runs again. A completed run is kept compactly once its last handle
//!   is gone (its output, and 16 bytes a step for its report), and a handle made on it later
//!   gets its report made again.

use std::any::Any;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod builder;
mod drain;
mod executor;
mod handle;
mod permits;
mod queues;
mod registry;
mod resume;
mod retention;
mod signals;
mod table;
mod takeover;

pub use builder::EngineBuilder;
pub use drain::Drained;
pub use handle::RunHandle;
pub use queues::{Enqueue, Serve};
pub use registry::{DEFAULT_TAKEOVER_EVERY, HEARTBEAT_EVERY, TAKEOVER_AT_ONCE, TAKEOVER_BATCH};
pub use resume::Recovered;
pub use takeover::{LeaseRefusal, Waiting};

use self::executor::{Control, Launch, OutcomeSender};
pub(crate) use self::permits::{Permit, Permits};
use self::table::{RunEntry, RunTable};
use crate::runtime::definition::{
    Codec, Definition, ErasedDefinition, Name, Plan, StepDef, StepValue, Value, plan,
};
use crate::runtime::error::{EngineError, RunError};
use crate::runtime::events::{EventStream, Feed};
use crate::runtime::id::RunId;
use crate::runtime::store::{Created, NewRun, Store};

/// The default bound on step attempts running at once, over all runs of an engine.
pub const DEFAULT_MAX_CONCURRENT_STEPS: usize = 1024;

/// How many finished runs an engine whose store does not keep them holds on to by default
/// (see [`EngineBuilder::keep_finished_runs`]): about 4 MB for runs of 5 steps, 20 MB for
/// runs of 100 (a run kept is about 350 bytes and 16 a step), plus what their outputs hold.
pub const DEFAULT_KEEP_FINISHED_RUNS: usize = 10_000;

/// How long an engine whose store does not keep finished runs holds on to one by default
/// (see [`EngineBuilder::keep_finished_for`]).
pub const DEFAULT_KEEP_FINISHED_FOR: Duration = Duration::from_secs(3_600);

/// Runs workflow definitions. Cheap to clone: clones share the same runs, store and limits.
///
/// ```
/// use sagaflow_core::runtime::{Builder, Engine, StepError};
/// use sagaflow_core::StepOptions;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut b = Builder::<u32>::new("Double");
/// let input = b.input();
/// let out = b.step("double", StepOptions::new(), (input,), |_, (x,)| async move {
///     Ok::<_, StepError>(*x * 2)
/// });
/// let def = b.build_with_output(out);
///
/// let engine = Engine::ephemeral();
/// let report = engine.start(&def, "run-1", 21).await?.wait().await?;
/// assert_eq!(*report.output, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What every clone of an [`Engine`] and every run task shares. Aligned to 128 bytes, so that
/// its `Arc`'s counts, which every run raises and lowers from whichever core runs it, are on a
/// line of their own, apart from the fields every run and step reads.
#[repr(align(128))]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    /// The store's [`RunStore::records_changes`], asked once: when `false`, no change is sent.
    pub(crate) records: bool,
    /// Whether runs are created in the store ([`RunStore::records_runs`], or `records`): when
    /// `false`, the engine's table is the only record of its runs.
    pub(crate) creates_runs: bool,
    /// Bounds the attempts running at once; a retry waiting for its delay holds no permit.
    pub(crate) permits: Permits,
    pub(crate) jitter_seed: u64,
    /// The runs, in shards by id. If the store keeps finished runs
    /// ([`RunStore::keeps_finished_runs`](crate::runtime::RunStore::keeps_finished_runs)),
    /// the table forgets a run once it has ended; else it keeps the last ones, up to a
    /// count and an age.
    runs: RunTable,
    /// The live event feed the store publishes to; `None` if the store keeps no event log.
    events: Option<Arc<Feed>>,
    /// Steps waiting for signals, woken when one is delivered.
    pub(crate) signals: Arc<signals::SignalHub>,
    /// Whether the engine drains, and what it released (see `drain`).
    pub(crate) lifecycle: drain::Lifecycle,
    /// The definitions it can run, for its takeover loop (see `registry`).
    registry: registry::Registry,
    /// How often the takeover loop polls.
    takeover_every: Duration,
    /// The automatic retention policy, if any (see `retention`).
    retention: Option<retention::Retained>,
}

impl Inner {
    /// Called once a run's outcome is published: the table forgets the run if the store keeps
    /// it, or keeps it among the finished runs, dropping the oldest beyond the bound; and the
    /// store's lease on it is let go whatever its end (a run whose end could not be recorded
    /// is no longer run here, so another process may take it up once the lease runs out). A
    /// run `released` by a drain keeps its lease until the drain gives it up in the store.
    pub(crate) fn run_ended(
        &self,
        run_id: &RunId,
        control: &Arc<Control>,
        released: bool,
        at: tokio::time::Instant,
        done: impl FnOnce() -> Option<table::Done>,
    ) {
        if released && self.records {
            self.lifecycle.released(run_id);
        } else if self.records {
            self.store.release(run_id);
        }
        let dropped = self.runs.ended(run_id, control, at, done);
        for run_id in dropped.iter() {
            self.store.forget(run_id);
        }
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("runs", &self.inner.runs.len())
            .field("available_permits", &self.inner.permits.available())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine that records nothing, with the default limits: a run lives in memory while
    /// it runs, its outcome for a while after (the last [`DEFAULT_KEEP_FINISHED_RUNS`] runs,
    /// none older than [`DEFAULT_KEEP_FINISHED_FOR`]; see
    /// [`EngineBuilder::keep_finished_runs`]), nothing survives the process, and the
    /// engine costs no store at all (the fastest, for work that need not be durable). Sagas
    /// refuse it, since they compensate from stored outputs. `Engine::open_in_memory()` (the
    /// `sqlite` feature) is the durable engine on a SQLite database in memory, for tests.
    pub fn ephemeral() -> Engine {
        Engine::builder().build()
    }

    /// Configures an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::new()
    }

    /// The store runs are recorded in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The store this engine records in, as the type it was built with, or `None` if it is
    /// another: `engine.store_as::<SqliteStore>()` hands back the SQLite store an
    /// `Engine::open` made, so machines and other calls of that store share its database.
    pub fn store_as<S: Store>(&self) -> Option<&S> {
        let store: &dyn Any = &*self.inner.store;
        store.downcast_ref::<S>()
    }

    /// How many runs the engine holds in memory: the live ones, and the finished ones it
    /// keeps because its store does not (see the [module docs](self)). With the SQLite store
    /// this is the number of runs in flight.
    pub fn runs_in_memory(&self) -> usize {
        self.inner.runs.len()
    }

    /// Starts a run of `def` with `input`, or, if a run with this id exists, returns a handle
    /// on that run (its steps do not run again).
    ///
    /// The run goes on in the background whether or not the handle is kept. Errors: the
    /// definition is invalid, the id belongs to a run of another workflow, or the store
    /// refused the run.
    pub async fn start<I: StepValue, O: StepValue>(
        &self,
        def: &Definition<I, O>,
        run_id: impl Into<RunId>,
        input: I,
    ) -> Result<RunHandle<O>, EngineError> {
        // A run of steps that never wait is done inline, so a loop of starts would never
        // yield to the runtime: each start spends a unit of the task's budget, as tokio's own
        // resources do, and yields once it is spent.
        tokio::task::coop::consume_budget().await;
        let run_id = run_id.into();
        let erased = def.erased();
        let (plan, reservation, handle) = match self.claim(erased, &run_id)? {
            Claimed::Existing(handle) => return Ok(handle),
            Claimed::New(claim) => (claim.plan, claim.reservation, claim.handle),
        };
        let input: Value = Arc::new(input);
        let first_step = self.first_step(erased, plan);
        let new_run = NewRun {
            run_id: &run_id,
            workflow: erased.name(),
            graph_fingerprint: plan.fingerprint,
            input: &*input,
            input_codec: Codec::of::<I>(),
            graph: plan.graph.as_deref(),
            first_step: first_step
                .and_then(|i| erased.steps().get(i))
                .map(StepDef::name),
        };
        // A store that keeps nothing of runs is not asked (the claim above was the check); one
        // that can answer at once (in memory) spares the boxed future of the call.
        let created = if !self.inner.creates_runs {
            Ok(Created::New)
        } else {
            match self.inner.store.create_run_now(&new_run) {
                Some(created) => created,
                None => self.inner.store.create_run(&new_run).await,
            }
        };
        let mut resume = None;
        let mut input = input;
        let mut begun = None;
        match created {
            Ok(Created::New) => begun = first_step,
            Ok(Created::Existing { workflow }) if workflow == erased.name() => {
                // An earlier process started this run: take it up where the store left it.
                match self.take_up::<I>(erased, &run_id, plan, true).await {
                    Ok((stored_input, taken)) => {
                        input = stored_input;
                        resume = Some(taken);
                    }
                    Err(error) => return Err(reservation.abandon(error)),
                }
            }
            Ok(Created::Existing { workflow }) => {
                let error = {
                    EngineError::RunIdConflict {
                        run_id: run_id.clone(),
                        workflow: erased.name().to_owned(),
                        existing: workflow,
                    }
                };
                return Err(reservation.abandon(error));
            }
            Err(error) => return Err(reservation.abandon(EngineError::Store(error))),
        }
        let sender = reservation.commit();
        let launch = Launch { resume, begun };
        Ok(self.launch(sender, handle, run_id, erased, input, launch))
    }

    /// The step a new run of `def` begins with, when its creation can record that step's
    /// start (see [`NewRun::first_step`]): the plan's one first step, if the store records
    /// changes, the step has no guard (which may skip it instead), is not at-most-once, and a
    /// permit is free now (else the step would wait for one, started in the store but not
    /// here). A run with several first steps records their starts as each begins.
    ///
    /// The start is then recorded a little before the attempt begins: a crash or a drain in
    /// between (the step's task not yet run) leaves the step started, and the process that
    /// takes the run up counts that attempt as interrupted. An at-most-once step would then
    /// not run at all, so its start stays its own.
    fn first_step(&self, def: &ErasedDefinition, plan: &Plan) -> Option<usize> {
        let &[root] = &plan.roots[..] else {
            return None;
        };
        let step = def.steps().get(root)?;
        let once = step.options().at_most_once == Some(true);
        (self.inner.records && !step.is_guarded() && !once && self.inner.permits.available() > 0)
            .then_some(root)
    }

    /// Cancels the run `run_id`. Returns whether a run that had not finished was told to stop.
    pub fn cancel(&self, run_id: &RunId) -> bool {
        match self.inner.runs.shard(run_id).runs.get(run_id) {
            Some(entry) => entry.running().is_some_and(|control| {
                control.cancel();
                true
            }),
            None => false,
        }
    }

    /// Commits the claim on `run_id` and starts executing the run (from scratch, or from
    /// what an earlier process left: see [`Launch`]), on the caller's runtime.
    fn launch<O>(
        &self,
        sender: OutcomeSender,
        handle: RunHandle<O>,
        run_id: RunId,
        erased: &Arc<ErasedDefinition>,
        input: Value,
        launch: Launch,
    ) -> RunHandle<O> {
        executor::launch_run(
            Arc::clone(&self.inner),
            run_id,
            Arc::clone(erased),
            input,
            sender,
            &handle.control,
            launch,
        );
        handle
    }

    /// What `start` and `resume` share: the definition checked, the caller's runtime found,
    /// and the id claimed in the engine's table (or the run that has it already).
    fn claim<'d, O: StepValue>(
        &'d self,
        erased: &'d ErasedDefinition,
        run_id: &'d RunId,
    ) -> Result<Claimed<'d, O>, EngineError> {
        let plan = plan(erased);
        if !plan.problems.is_empty() {
            return Err(EngineError::InvalidDefinition {
                workflow: erased.name().to_owned(),
                problems: plan.problems.clone(),
            });
        }
        if !executor::in_runtime() {
            return Err(EngineError::NoRuntime);
        }
        Ok(match self.reserve(run_id, erased.shared_name())? {
            Reserved::Existing(handle) => Claimed::Existing(handle),
            Reserved::New(reservation, handle) => Claimed::New(Claim {
                plan,
                reservation,
                handle,
            }),
        })
    }

    /// Finds the run `run_id`, or claims the id for a new run.
    fn reserve<'a, O: StepValue>(
        &'a self,
        run_id: &'a RunId,
        workflow: &Name,
    ) -> Result<Reserved<'a, O>, EngineError> {
        let mut table = self.inner.runs.shard(run_id);
        // Under the shard's lock, as `shutdown` begins the drain under every shard's.
        if self.inner.lifecycle.is_draining() {
            return Err(EngineError::ShuttingDown {
                run_id: run_id.clone(),
            });
        }
        match table.runs.entry(run_id.clone()) {
            Entry::Occupied(entry) => {
                let entry = entry.get();
                if entry.workflow() != workflow {
                    return Err(EngineError::RunIdConflict {
                        run_id: run_id.clone(),
                        workflow: workflow.to_string(),
                        existing: entry.workflow().to_string(),
                    });
                }
                Ok(Reserved::Existing(RunHandle::new(run_id.clone(), entry)))
            }
            Entry::Vacant(vacant) => {
                let control = Arc::new(Control::new(workflow.clone()));
                let entry = vacant.insert(RunEntry::new(Arc::clone(&control)));
                let handle = RunHandle::new(run_id.clone(), entry);
                let reservation = Reservation {
                    inner: &self.inner,
                    run_id,
                    control: Some(control),
                    committed: false,
                    reason: None,
                };
                Ok(Reserved::New(reservation, handle))
            }
        }
    }

    /// Follows the store's events live, of every run, from now on, in `seq` order (see
    /// [`events`](crate::runtime::events) for what is promised). A subscriber that falls
    /// behind the [`event_buffer`](EngineBuilder::event_buffer) catches up from the store.
    ///
    /// Only a store with an event log (the SQLite store) has events: with an in-memory store
    /// the stream ends at once.
    pub fn subscribe(&self) -> EventStream {
        EventStream::live(Arc::clone(&self.inner.store), self.inner.events.as_deref())
    }

    /// Replays the store's events after the position `after` (`0`: from the start), of the run
    /// `run_id` or of every run, then follows them live, with no gap and no repeat at the seam.
    /// The replay is the store's ([`EventLog::events`](crate::runtime::EventLog::events)); with a store that publishes no events the
    /// stream ends after it.
    pub fn subscribe_from(&self, run_id: Option<RunId>, after: u64) -> EventStream {
        EventStream::from_position(
            Arc::clone(&self.inner.store),
            self.inner.events.as_deref(),
            run_id,
            after,
        )
    }
}

/// See [`Engine::claim`].
enum Claimed<'d, O> {
    Existing(RunHandle<O>),
    New(Claim<'d, O>),
}

/// A new run's id, claimed, with what starting it needs.
struct Claim<'d, O> {
    plan: &'d Plan,
    reservation: Reservation<'d>,
    handle: RunHandle<O>,
}

enum Reserved<'a, O> {
    Existing(RunHandle<O>),
    New(Reservation<'a>, RunHandle<O>),
}

/// A run id claimed in the engine's table while the store creates the run. If the start
/// fails, or its future is dropped half-way, the claim is released and any handle that joined
/// meanwhile learns that the run never started. It borrows the engine and the id from the
/// call that starts the run, which it never outlives.
struct Reservation<'a> {
    inner: &'a Inner,
    run_id: &'a RunId,
    /// Handed to the run's [`OutcomeSender`] on commit.
    control: Option<Arc<Control>>,
    committed: bool,
    reason: Option<String>,
}

impl Reservation<'_> {
    /// Keeps the claim: the run is created and its outcome will be sent on the result.
    fn commit(mut self) -> OutcomeSender {
        self.committed = true;
        // The control is taken only here, and `commit` takes the reservation.
        let control = self.control.take();
        OutcomeSender::new(control.unwrap_or_else(|| Arc::new(Control::new(Name::default()))))
    }

    /// Releases the claim because of `error`, which it returns.
    fn abandon(mut self, error: EngineError) -> EngineError {
        self.reason = Some(error.to_string());
        error
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Some(control) = &self.control {
            self.inner.runs.remove(self.run_id, control);
        }
        let reason = self
            .reason
            .take()
            .unwrap_or_else(|| "the call that started it was dropped".to_owned());
        if let Some(control) = &self.control {
            control.outcome.publish(Err(RunError::NotStarted {
                run_id: self.run_id.clone(),
                reason,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StepOptions;
    use crate::runtime::store::MemoryStore;
    use crate::runtime::{Builder, StepError, StepStatus};

    fn plus_one() -> Definition<u32, u32> {
        let mut b = Builder::<u32>::new("W");
        let input = b.input();
        let out = b.step("one", StepOptions::new(), (input,), |_, (x,)| async move {
            Ok::<_, StepError>(*x + 1)
        });
        b.build_with_output(out)
    }

    #[tokio::test]
    async fn every_wait_on_a_run_shares_its_step_list() {
        let engine = Engine::ephemeral();
        // A run that waits until told to go on: both handles are made while it runs.
        let gate = Arc::new(tokio::sync::Notify::new());
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut builder = Builder::<u32>::new("W");
        let input = builder.input();
        let (g, c) = (Arc::clone(&gate), Arc::clone(&calls));
        let out = builder.step("one", StepOptions::new(), (input,), move |_, (x,)| {
            let (g, c) = (Arc::clone(&g), Arc::clone(&c));
            async move {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                g.notified().await;
                Ok::<_, StepError>(*x + 1)
            }
        });
        let def = builder.build_with_output(out);
        let first = engine.start(&def, "r", 1).await.expect("ok");
        let again = engine.start(&def, "r", 1).await.expect("the same run");
        gate.notify_one();
        let (a, b) = (
            first.wait().await.expect("ok"),
            again.wait().await.expect("ok"),
        );
        // One list, not a copy per wait.
        assert!(std::ptr::eq(a.steps.as_ptr(), b.steps.as_ptr()));
        assert_eq!(a.steps.len(), 1);
        let names: Vec<&str> = (&a.steps).into_iter().map(|s| &*s.name).collect();
        assert_eq!(names, ["one"]);
        assert_eq!(a.steps[0].status, StepStatus::Completed);
        assert_eq!(a.steps, Vec::from(b.steps.clone()));
        // Its handles gone, the run is kept compactly: a handle made now gets the same
        // report, made again, and the step does not run again.
        let later = engine
            .start(&def, "r", 1)
            .await
            .expect("the same run")
            .wait()
            .await
            .expect("ok");
        assert_eq!(*later.output, 2);
        assert_eq!(later.steps, Vec::from(a.steps.clone()));
        assert!(a.steps[0].duration.is_some());
        assert!(!std::ptr::eq(later.steps.as_ptr(), a.steps.as_ptr()));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A failed run's error shares its list the same way.
        let mut failing = Builder::<u32>::new("F");
        let input = failing.input();
        failing.step("boom", StepOptions::new(), (input,), |_, _| async move {
            Err::<u32, StepError>(StepError::permanent("no"))
        });
        let failing = failing.build();
        let first = engine.start(&failing, "f", 1).await.expect("ok");
        let again = engine.start(&failing, "f", 1).await.expect("the same run");
        let (a, b) = (
            first.wait().await.expect_err("failed"),
            again.wait().await.expect_err("failed"),
        );
        assert!(
            matches!(&a, RunError::StepFailed { step, .. } if step == "boom"),
            "{a}"
        );
        assert!(std::ptr::eq(a.steps().as_ptr(), b.steps().as_ptr()));
        assert_eq!(a.steps()[0].status, StepStatus::Failed);
    }

    #[tokio::test]
    async fn a_report_gives_the_definition_s_names_as_they_were_given() {
        let engine = Engine::ephemeral();
        let mut b = Builder::<u32>::new(Name::from_static("Written"));
        let input = b.input();
        let one = b.step(
            Name::from_static("one"),
            StepOptions::new(),
            (input,),
            |_, (x,)| async move { Ok::<_, StepError>(*x + 1) },
        );
        let made = format!("step {}", 2);
        let two = b.step(&made, StepOptions::new(), (one,), |_, (x,)| async move {
            Ok::<_, StepError>(*x + 1)
        });
        let def = b.build_with_output(two);
        let check = |report: &crate::runtime::Report<u32>| {
            assert_eq!(report.workflow, "Written");
            assert!(report.workflow.is_static());
            assert_eq!(report.steps[0].name, "one");
            assert!(report.steps[0].name.is_static(), "the literal, not a copy");
            assert_eq!(report.steps[1].name, made);
            assert!(!report.steps[1].name.is_static());
            // Every run shares the definition's copy of a name made at run time.
            let defined = def.erased().steps()[1].name();
            assert_eq!(report.steps[1].name.as_ptr(), defined.as_ptr());
        };
        let first = engine.start(&def, "r", 1).await.expect("ok").wait().await;
        check(&first.expect("ok"));
        // Kept compactly once its handle is gone, the run's report is made again from the
        // definition: the same names, given the same way.
        let kept = engine.start(&def, "r", 1).await.expect("ok").wait().await;
        check(&kept.expect("ok"));
        // A workflow named by any `&str` is copied once, into the definition.
        let named = Builder::<u32>::new(made.as_str()).build();
        assert!(!named.erased().shared_name().is_static());
        assert_eq!(named.name(), "step 2");
    }

    #[tokio::test]
    async fn an_id_is_refused_to_another_workflow_while_its_run_runs_and_once_it_is_kept() {
        let engine = Engine::ephemeral();
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut b = Builder::<u32>::new("Gated");
        let input = b.input();
        let g = Arc::clone(&gate);
        let out = b.step("wait", StepOptions::new(), (input,), move |_, (x,)| {
            let g = Arc::clone(&g);
            async move {
                g.notified().await;
                Ok::<_, StepError>(*x)
            }
        });
        let gated = b.build_with_output(out);
        let other = plus_one();
        let handle = engine.start(&gated, "r", 1).await.expect("starts");
        let refused = |error: EngineError| {
            assert!(
                matches!(&error, EngineError::RunIdConflict { workflow, existing, .. }
                    if workflow == "W" && existing == "Gated"),
                "{error}"
            );
        };
        // Live: the name is the run's control's.
        refused(engine.start(&other, "r", 1).await.expect_err("running"));
        gate.notify_one();
        assert_eq!(handle.wait().await.expect("completes").workflow, "Gated");
        // Kept compactly: the name is its definition's.
        refused(engine.start(&other, "r", 1).await.expect_err("kept"));
        let again = engine.start(&gated, "r", 1).await.expect("the kept run");
        assert_eq!(again.wait().await.expect("its outcome").workflow, "Gated");
    }

    #[tokio::test]
    async fn an_ephemeral_engine_s_runs_cost_its_store_nothing() {
        let engine = Engine::ephemeral();
        let def = plus_one();
        let report = engine
            .start(&def, "r", 1)
            .await
            .expect("ok")
            .wait()
            .await
            .expect("ok");
        assert_eq!(*report.output, 2);
        // The engine's table is the one record of the run: none was created in the store.
        let memory = engine
            .store_as::<MemoryStore>()
            .expect("the engine's own store");
        assert!(memory.is_empty());
        // Starting the id again hands back the same run, its outcome and all, and a run of
        // another workflow under the id is refused: the table answers both.
        let same = engine
            .start(&def, "r", 99)
            .await
            .expect("ok")
            .wait()
            .await
            .expect("ok");
        assert_eq!(*same.output, 2);
        let mut other = Builder::<u32>::new("V");
        let input = other.input();
        let out = other.step("one", StepOptions::new(), (input,), |_, (x,)| async move {
            Ok::<u32, StepError>(*x)
        });
        let other = other.build_with_output(out);
        let conflict = engine.start(&other, "r", 1).await.expect_err("refused");
        assert!(
            matches!(&conflict, EngineError::RunIdConflict { existing, .. } if existing == "W"),
            "{conflict}"
        );
        // Signals: the engine checks the run in its table, the store keeps the payload.
        let id = RunId::from("r");
        engine.signal("r", "s", &1).await.expect("delivered");
        assert_eq!(
            engine
                .store()
                .signal(&id, "s")
                .await
                .expect("ok")
                .as_deref(),
            Some("1")
        );
        let again = engine.signal("r", "s", &2).await.expect_err("once");
        assert!(
            matches!(again, EngineError::SignalAlreadyDelivered { .. }),
            "{again}"
        );
        let nobody = engine.signal("nobody", "s", &1).await.expect_err("no run");
        assert_eq!(
            nobody.to_string(),
            "no run `nobody` to signal `s` to: this engine holds none by that id (an ephemeral engine keeps its finished runs for a while, then forgets them)"
        );
        let nobody = RunId::from("nobody");
        assert_eq!(engine.store().signal(&nobody, "s").await.expect("ok"), None);
    }

    #[tokio::test]
    async fn a_step_of_an_ephemeral_run_gets_the_signal_the_engine_delivers() {
        let engine = Engine::ephemeral();
        let mut b = Builder::<u32>::new("W");
        let input = b.input();
        let out = b.step(
            "wait",
            StepOptions::new(),
            (input,),
            |ctx, (x,)| async move {
                let go: u32 = ctx.signal("go").await?;
                Ok::<_, StepError>(*x + go)
            },
        );
        let def = b.build_with_output(out);
        let handle = engine.start(&def, "r", 1).await.expect("started");
        tokio::task::yield_now().await;
        engine.signal("r", "go", &41_u32).await.expect("delivered");
        let report = handle.wait().await.expect("completes");
        assert_eq!(*report.output, 42);
    }

    #[tokio::test]
    async fn a_run_the_ephemeral_engine_drops_takes_its_signals_with_it() {
        let engine = Engine::builder().keep_finished_runs(1).build();
        let def = plus_one();
        let store = engine.store();
        engine
            .start(&def, "a", 1)
            .await
            .expect("ok")
            .wait()
            .await
            .expect("ok");
        let a = RunId::from("a");
        assert!(store.deliver_signal(&a, "s", "1").await.expect("ok"));
        assert_eq!(
            store.signal(&a, "s").await.expect("ok").as_deref(),
            Some("1")
        );
        // `b` ends: `a`, the oldest of two, is dropped, and its signal with it.
        engine
            .start(&def, "b", 1)
            .await
            .expect("ok")
            .wait()
            .await
            .expect("ok");
        assert_eq!(engine.runs_in_memory(), 1);
        assert_eq!(store.signal(&a, "s").await.expect("ok"), None);
    }

    #[tokio::test]
    async fn a_finished_run_keeps_its_outcome_but_not_its_memory() {
        let engine = Engine::ephemeral();
        let def = plus_one();
        let handle = engine.start(&def, "r", 1).await.expect("ok");
        let control = Arc::downgrade(&handle.control);
        {
            // While a handle holds it, the run's control has its outcome and no longer
            // its run.
            let control = control.upgrade().expect("held by the handle");
            assert!(control.outcome.get().is_some());
            assert!(control.is_detached());
        }
        handle.wait().await.expect("ok");
        // The completed run is kept compactly, and its control went with its last handle.
        assert!(control.upgrade().is_none());
        let id = RunId::from("r");
        let shard = engine.inner.runs.shard(&id);
        let entry = shard.runs.get(&id).expect("kept");
        assert!(entry.running().is_none());
        let kept = entry.control();
        let Some(Ok(finished)) = kept.outcome.get() else {
            panic!("the kept run completed");
        };
        assert_eq!(finished.output.downcast_ref::<u32>(), Some(&2));
        assert_eq!(finished.steps.len(), 1);
        assert_eq!(&*finished.steps[0].name, "one");
    }

    #[tokio::test]
    async fn a_kept_run_keeps_the_error_of_a_step_that_let_it_go_on() {
        let engine = Engine::ephemeral();
        let mut builder = Builder::<u32>::new("C");
        let input = builder.input();
        let audit = builder.step(
            "audit",
            StepOptions::new().on_error(crate::policy::OnError::Continue),
            (input,),
            |_, _| async { Err::<u32, _>(StepError::permanent("audit service down")) },
        );
        let out = builder.step(
            "load",
            StepOptions::new(),
            (audit.optional(),),
            |_, (a,)| async move { Ok::<_, StepError>(a.map_or(0, |a| *a)) },
        );
        let def = builder.build_with_output(out);
        let first = engine
            .start(&def, "c", 1)
            .await
            .expect("ok")
            .wait()
            .await
            .expect("the run completes");
        let again = engine
            .start(&def, "c", 1)
            .await
            .expect("the same run")
            .wait()
            .await
            .expect("ok");
        assert_eq!(again.steps, Vec::from(first.steps.clone()));
        let audit = again.step("audit").expect("a report");
        assert_eq!(audit.status, StepStatus::Failed);
        assert_eq!(
            audit.error.as_ref().map(StepError::message),
            Some("audit service down")
        );
        assert_eq!(again.step("load").map(|s| s.error.is_none()), Some(true));
    }
}
