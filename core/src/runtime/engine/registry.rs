//! Takeover without anyone asking: the definitions an engine can run, and the loop that takes
//! up, for the life of the engine, the runs of those definitions whose lease has run out or
//! was given up.
//!
//! An engine learns what it can run from [`Engine::register`] (a workflow definition) or
//! [`Engine::register_take_up`] (what a crate built on the engine runs, a saga). The first
//! registration starts the loop: every [`takeover_every`](super::EngineBuilder::takeover_every)
//! it asks the store for at most [`TAKEOVER_BATCH`] free runs of the registered workflows and
//! graphs ([`LeaseStore::free_runs`]: unfinished, not parked, lease expired or given up) and
//! takes each up as [`Engine::resume`] does, [`TAKEOVER_AT_ONCE`] at a time. So a replica that died or
//! was cut off has its runs continued on another within its lease plus a poll, and a replica
//! that drained ([`Engine::shutdown`]) within a poll. A store that announces hand-overs
//! ([`LeaseStore::freed_notices`]: PostgreSQL's `NOTIFY`) wakes the loop at once, and each
//! engine woken takes its share of the runs handed over ([`LeaseStore::free_runs_shared`]),
//! so that a drained replica's runs spread over the others. A run started under a graph no
//! registered definition has is not listed, so not taken: it waits for a replica that knows
//! its version. A run that keeps killing the replicas that take it up is parked by the store
//! after its maximum of take-ups ([`EngineError::Parked`], a `run_parked` event).
//!
//! The loop holds the engine weakly and keeps nothing per run: it ends when the engine is
//! dropped or drains. Several replicas may find the same free run; the store's lease lets one
//! take it, and the others are refused (`Leased`) and go on.
//!
//! [`LeaseStore::free_runs`]: crate::runtime::LeaseStore::free_runs
//! [`LeaseStore::freed_notices`]: crate::runtime::LeaseStore::freed_notices
//! [`LeaseStore::free_runs_shared`]: crate::runtime::LeaseStore::free_runs_shared

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;

use super::{Engine, Inner, LeaseRefusal};
use crate::runtime::definition::{Definition, StepValue, plan};
use crate::runtime::error::EngineError;
use crate::runtime::id::RunId;
use crate::runtime::store::{FreeRun, KnownGraph};

/// How often an engine looks for runs to take over by default (see
/// [`EngineBuilder::takeover_every`](super::EngineBuilder::takeover_every)): a run a replica
/// gave up is taken up within this (and the take-up's own time); one whose replica died,
/// within its lease and this.
pub const DEFAULT_TAKEOVER_EVERY: Duration = Duration::from_millis(500);

/// At most this many free runs are asked for, and taken up, at each poll.
pub const TAKEOVER_BATCH: usize = 100;

/// At most this many of a poll's free runs are being taken up at once.
pub const TAKEOVER_AT_ONCE: usize = 16;

/// How often the loop tells the store that this engine lives and what it runs
/// ([`LeaseStore::heartbeat`](crate::runtime::LeaseStore::heartbeat)); tools take a replica
/// not heard from for three of these as gone.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// How one listed run's take-up at a poll ended.
enum TakeUp {
    Taken,
    /// Another replica's, or it failed (logged).
    Refused,
    /// Not tried: the engine began to drain.
    Skipped(RunId),
}

/// How the loop takes a run up; `Err((leased, why))`.
type TakeFn = dyn Fn(Engine, RunId) -> Pin<Box<dyn Future<Output = Result<(), (bool, String)>> + Send>>
    + Send
    + Sync;

/// One registered graph and how to take up its runs.
struct Entry {
    graph: KnownGraph,
    take: Arc<TakeFn>,
}

/// The definitions an engine can run, by workflow and graph, and whether its loop runs.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Mutex<Vec<Entry>>,
    started: std::sync::atomic::AtomicBool,
    /// A graph was registered since the store last heard what this engine runs.
    changed: std::sync::atomic::AtomicBool,
    /// The queues this engine serves (see `queues`).
    queues: Mutex<Vec<super::queues::Served>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // Every write under this lock is one push or one replacement.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers (or replaces) how the runs of `graph` are taken up.
    fn insert(&self, graph: KnownGraph, take: Arc<TakeFn>) {
        let mut entries = self.lock();
        match entries.iter_mut().find(|e| e.graph == graph) {
            Some(entry) => entry.take = take,
            None => entries.push(Entry { graph, take }),
        }
        self.changed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Serves a queue (once: serving it again replaces its bound). The store hears of it at
    /// the next poll, with the next heartbeat.
    pub(crate) fn serve(&self, serve: super::queues::Serve) {
        self.with_served(|served| {
            match served.iter_mut().find(|s| s.serve.name() == serve.name()) {
                Some(s) => s.serve = serve,
                None => served.push(super::queues::Served {
                    serve,
                    held: Vec::new(),
                }),
            }
        });
        self.changed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The queues served and their bounds, as a heartbeat tells them.
    pub(crate) fn served_queues(&self) -> Vec<crate::runtime::store::replicas::ServedQueue> {
        self.with_served(|served| {
            served
                .iter()
                .map(|s| {
                    let bounds = s.serve.bounds();
                    crate::runtime::store::replicas::ServedQueue {
                        queue: s.serve.name().to_owned(),
                        at_most: s.serve.bound_here(),
                        overall: bounds.overall,
                        per_key: bounds.per_key,
                        rate: bounds.rate.map(|(n, per)| {
                            (n, u64::try_from(per.as_millis()).unwrap_or(u64::MAX))
                        }),
                    }
                })
                .collect()
        })
    }

    /// `f` on the queues served. Every change under this lock is one push, one replacement
    /// or a `retain`.
    pub(crate) fn with_served<T>(&self, f: impl FnOnce(&mut Vec<super::queues::Served>) -> T) -> T {
        f(&mut self.queues.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether any queue is served.
    fn serves_queues(&self) -> bool {
        self.with_served(|served| !served.is_empty())
    }

    /// Every graph registered.
    fn known(&self) -> Vec<KnownGraph> {
        self.lock().iter().map(|e| e.graph.clone()).collect()
    }

    /// How to take up a run of `workflow` under the graph `fingerprint`: its graph's entry,
    /// else one for every graph of the workflow.
    fn taker(&self, workflow: &str, fingerprint: u64) -> Option<Arc<TakeFn>> {
        let entries = self.lock();
        let of = |exact: bool| {
            entries.iter().find(|e| {
                e.graph.workflow == workflow
                    && if exact {
                        e.graph.fingerprint == Some(fingerprint)
                    } else {
                        e.graph.fingerprint.is_none()
                    }
            })
        };
        of(true).or_else(|| of(false)).map(|e| Arc::clone(&e.take))
    }
}

impl Engine {
    /// Tells the engine it can run `def`: from now on, for the life of the engine, it takes
    /// up by itself every unfinished run of `def`'s workflow and graph whose lease has run
    /// out (its replica died or was cut off) or was given up (its replica drained, see
    /// [`shutdown`](Self::shutdown)), at every poll
    /// ([`takeover_every`](super::EngineBuilder::takeover_every)), with no call to
    /// [`recover`](Self::recover). A run whose graph no registered definition has is left
    /// alone. Registering the same workflow and graph again replaces the definition; several
    /// graphs of one workflow (versions) may be registered side by side.
    ///
    /// The first registration starts the engine's takeover loop, which holds the engine
    /// weakly and ends when it drains or is dropped. Errors: the definition is invalid, or
    /// there is no tokio runtime to run the loop on.
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
    /// // Every replica of a service registers what it runs, once, at start-up: runs other
    /// // replicas leave behind are then taken up here by themselves.
    /// let engine = Engine::ephemeral();
    /// engine.register(&def)?;
    /// assert_eq!(*engine.start(&def, "run-1", 21).await?.wait().await?.output, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn register<I: StepValue, O: StepValue>(
        &self,
        def: &Definition<I, O>,
    ) -> Result<(), EngineError> {
        let erased = def.erased();
        let plan = plan(erased);
        if !plan.problems.is_empty() {
            return Err(EngineError::InvalidDefinition {
                workflow: erased.name().to_owned(),
                problems: plan.problems.clone(),
            });
        }
        let graph = KnownGraph {
            workflow: erased.name().to_owned(),
            fingerprint: Some(plan.fingerprint),
        };
        let def = def.clone();
        self.register_take_up(graph, move |engine, run_id| {
            let def = def.clone();
            async move { engine.resume(&def, run_id).await.map(drop) }
        })
    }

    /// Tells the engine how to take up the runs of `graph` that it finds free (see
    /// [`register`](Self::register)): `take` is called with the engine and the run's id, and
    /// takes the run up (its lease first, which may be refused as another replica's). For
    /// crates built on the engine whose runs are taken up their own way (a saga's forward run
    /// and compensation rounds); a workflow definition is registered with `register`.
    pub fn register_take_up<E, F, Fut>(&self, graph: KnownGraph, take: F) -> Result<(), EngineError>
    where
        E: LeaseRefusal + fmt::Display + Send + 'static,
        F: Fn(Engine, RunId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EngineError::NoRuntime);
        }
        let take: Arc<TakeFn> = Arc::new(move |engine, run_id| {
            let taken = take(engine, run_id);
            Box::pin(async move {
                taken
                    .await
                    .map_err(|e| (e.lease_expires_in().is_some(), e.to_string()))
            })
        });
        self.inner.registry.insert(graph, take);
        self.start_takeover_loop()
    }

    /// Starts the takeover loop, unless it runs already.
    pub(crate) fn start_takeover_loop(&self) -> Result<(), EngineError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EngineError::NoRuntime)?;
        let registry = &self.inner.registry;
        if !registry
            .started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let every = self.inner.takeover_every;
            let draining = self.inner.lifecycle.watch();
            runtime.spawn(run_loop(Arc::downgrade(&self.inner), every, draining));
        }
        Ok(())
    }

    /// One poll of the takeover loop: takes up the free runs of the registered graphs, at
    /// most [`TAKEOVER_BATCH`]; returns whether the store had a whole batch of them and some
    /// were taken (there may be more: the loop polls again at once). A poll woken by a notice
    /// of an enqueue ([`Poll::Queued`]) looks at the queues served alone: an enqueued run
    /// starts after one round trip, its claim. One woken by a notice of runs handed over
    /// ([`Poll::Freed`]) takes its share of them.
    pub(crate) async fn take_over_free_runs(&self, poll: Poll) -> bool {
        let registry = &self.inner.registry;
        let known = registry.known();
        if known.is_empty() || self.inner.lifecycle.is_draining() {
            return false;
        }
        let store = &self.inner.store;
        let listed = match poll {
            Poll::Queued => Ok(Vec::new()),
            Poll::Tick => store.free_runs(&known, TAKEOVER_BATCH).await,
            Poll::Freed(freed) => {
                store
                    .free_runs_shared(&known, TAKEOVER_BATCH, freed.min(TAKEOVER_BATCH))
                    .await
            }
        };
        let mut free = match listed {
            Ok(free) => free,
            Err(error) => {
                tracing::warn!(%error, "cannot list the runs free to take over; trying again at the next poll");
                return false;
            }
        };
        let mut full = free.len() >= TAKEOVER_BATCH;
        // Every replica is given the same runs, oldest first: each takes them in an order of
        // its own, so that they do not all queue for the same leases.
        fastrand::shuffle(&mut free);
        // The runs waiting on the queues served come first, in their order (priority, then
        // age), as many as their bounds leave room for.
        let mut runs: Vec<(FreeRun, Option<super::queues::Queued>)> = Vec::new();
        if registry.serves_queues() {
            let (queued, more) = self.queued_to_take(&known).await;
            full |= more;
            let queued = self.admitted(queued).await;
            runs.extend(queued.into_iter().map(|(run, queued)| (run, Some(queued))));
        }
        runs.extend(free.into_iter().map(|run| (run, None)));
        // Up to TAKEOVER_AT_ONCE take-ups at a time: each is a lease (a commit), a read of the
        // run and its start, mostly waiting on the store; one after the other, a drained or
        // dead replica's hundreds of runs would queue behind each other's round trips.
        let taking = runs.into_iter().filter_map(|(run, queue)| {
            if self.runs_here(&run.run_id) {
                return None;
            }
            let take = registry.taker(&run.workflow, run.graph_fingerprint)?;
            let engine = self.clone();
            Some(async move {
                if engine.inner.lifecycle.is_draining() {
                    return TakeUp::Skipped(run.run_id);
                }
                match take(engine.clone(), run.run_id.clone()).await {
                    Ok(()) => {
                        if let Some(queued) = &queue {
                            engine.took_from(&queued.queue, run.run_id.clone());
                        }
                        tracing::info!(run_id = %run.run_id, workflow = %run.workflow, "run taken over: its lease had run out or was given up");
                        TakeUp::Taken
                    }
                    Err((true, why)) => {
                        tracing::debug!(run_id = %run.run_id, %why, "another replica took the run first");
                        TakeUp::Refused
                    }
                    Err((false, why)) => {
                        tracing::warn!(run_id = %run.run_id, workflow = %run.workflow, %why, "a free run could not be taken over");
                        TakeUp::Refused
                    }
                }
            })
        });
        let (mut taken, mut skipped) = (0_usize, Vec::new());
        let mut ends = futures_util::stream::iter(taking).buffer_unordered(TAKEOVER_AT_ONCE);
        while let Some(end) = ends.next().await {
            match end {
                TakeUp::Taken => taken += 1,
                TakeUp::Refused => {}
                TakeUp::Skipped(run_id) => skipped.push(run_id),
            }
        }
        if taken > 0 {
            tracing::debug!(taken, "runs taken over at this poll");
        }
        // Runs listed and not taken up because the engine began to drain meanwhile: a store
        // that leased them to this engine as it listed them (a claim) lets them go now, so
        // that another engine takes them at once rather than once the lease runs out.
        if !skipped.is_empty()
            && let Err(error) = self.inner.store.give_up(&skipped).await
        {
            tracing::warn!(%error, runs = skipped.len(), "cannot give up the runs listed while the engine began to drain; they are free once their leases run out");
        }
        // Again at once only while it gets somewhere: a batch of runs that cannot be taken
        // (refused, or failing) waits for the next tick.
        full && taken > 0
    }

    /// Whether this engine runs `run_id` now.
    pub(crate) fn runs_here(&self, run_id: &RunId) -> bool {
        self.inner
            .runs
            .shard(run_id)
            .runs
            .get(run_id)
            .is_some_and(|entry| entry.running().is_some())
    }
}

/// What woke a poll of the takeover loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Poll {
    /// Its tick (or a whole batch found at the last poll): every free run, up to a batch.
    Tick,
    /// A notice of an enqueue: the queues served alone.
    Queued,
    /// A notice that other processes handed this many runs over: this engine's share of
    /// them (see [`LeaseStore::free_runs_shared`](crate::runtime::LeaseStore::free_runs_shared)),
    /// and the queues served.
    Freed(usize),
}

/// Waits for the next change of `notices`, if there are any, and returns the value then;
/// without notices (or once their store is gone), never.
async fn next_notice(notices: Option<&mut crate::runtime::store::SignalNotices>) -> u64 {
    if let Some(notices) = notices
        && notices.changed().await.is_ok()
    {
        return *notices.borrow_and_update();
    }
    // The store is gone (or gives none): only the ticks are left.
    std::future::pending().await
}

/// The takeover loop: a poll every `every`, until the engine drains or is dropped.
async fn run_loop(
    engine: Weak<Inner>,
    every: Duration,
    mut draining: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the store last heard from this engine.
    let mut heard: Option<tokio::time::Instant> = None;
    // Whether the last poll found a whole batch: then the next comes at once.
    let mut more = false;
    // The store's notices of enqueues and of hand-overs, if it gives them: a poll at once.
    let (mut queued, mut freed) = engine.upgrade().map_or((None, None), |inner| {
        (inner.store.queue_notices(), inner.store.freed_notices())
    });
    // The runs handed over that this engine has heard of so far.
    let mut freed_seen = freed.as_mut().map_or(0, |n| *n.borrow_and_update());
    loop {
        let mut poll = Poll::Tick;
        if more {
            if *draining.borrow() {
                return;
            }
        } else {
            poll = tokio::select! {
                _ = tick.tick() => Poll::Tick,
                _ = next_notice(queued.as_mut()) => Poll::Queued,
                heard = next_notice(freed.as_mut()) => {
                    let count = heard.wrapping_sub(freed_seen);
                    freed_seen = heard;
                    Poll::Freed(usize::try_from(count).unwrap_or(usize::MAX))
                }
                // Drains, or the engine was dropped (its sender with it).
                _ = draining.wait_for(|d| *d) => return,
            };
            // A notice of an enqueue matters only to an engine that serves a queue.
            if poll == Poll::Queued
                && engine
                    .upgrade()
                    .is_none_or(|inner| !inner.registry.serves_queues())
            {
                continue;
            }
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let engine = Engine { inner };
        more = engine.take_over_free_runs(poll).await;
        // At once when a graph was registered since (a replica's start registers several,
        // and what it runs should be known before it is first due); else every
        // HEARTBEAT_EVERY.
        let changed = engine
            .inner
            .registry
            .changed
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        if changed || heard.is_none_or(|at| at.elapsed() >= HEARTBEAT_EVERY) {
            heard = Some(tokio::time::Instant::now());
            let known = engine.inner.registry.known();
            let queues = engine.inner.registry.served_queues();
            if let Err(error) = engine.inner.store.heartbeat(&known, &queues).await {
                tracing::warn!(%error, "cannot tell the store this replica lives; trying again later");
            }
        }
    }
}
