//! [`EngineBuilder`]: an engine's store, limits and policies, and how [`Engine`] is built from
//! them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::registry::DEFAULT_TAKEOVER_EVERY;
use super::table::{Keep, RunTable};
use super::{
    DEFAULT_KEEP_FINISHED_FOR, DEFAULT_KEEP_FINISHED_RUNS, DEFAULT_MAX_CONCURRENT_STEPS, Engine,
    Inner, Permits, drain, registry, retention, signals,
};
use crate::runtime::events::{DEFAULT_EVENT_BUFFER, Feed};
use crate::runtime::store::{MemoryStore, SignalStore, Store};

/// Configures an [`Engine`].
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    max_concurrent_steps: usize,
    jitter_seed: Option<u64>,
    event_buffer: usize,
    keep: Keep,
    takeover_every: Duration,
    retention: Option<crate::runtime::retention::RetentionPolicy>,
}

impl EngineBuilder {
    /// The defaults (see [`Engine::builder`]).
    pub(super) fn new() -> Self {
        EngineBuilder {
            store: None,
            max_concurrent_steps: DEFAULT_MAX_CONCURRENT_STEPS,
            jitter_seed: None,
            event_buffer: DEFAULT_EVENT_BUFFER,
            keep: Keep {
                runs: DEFAULT_KEEP_FINISHED_RUNS,
                age: DEFAULT_KEEP_FINISHED_FOR,
            },
            takeover_every: DEFAULT_TAKEOVER_EVERY,
            retention: None,
        }
    }

    /// Records runs in `store` instead of a fresh [`MemoryStore::without_history`].
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Bounds the step attempts running at once over all runs (default
    /// [`DEFAULT_MAX_CONCURRENT_STEPS`]; 0 is taken as 1).
    pub fn max_concurrent_steps(mut self, max: usize) -> Self {
        self.max_concurrent_steps = max;
        self
    }

    /// Seeds the retry jitter: a retry's delay depends on this seed, the run id, the step and
    /// the attempt only ([`RetryPolicy::retry_delay`](crate::RetryPolicy::retry_delay)), so
    /// with one seed a run id repeats its delays on every run of a test, and other run ids
    /// draw other delays. Without it the seed is random, new for every engine.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// How many events the live feed holds for a subscriber that has not read them yet
    /// (default [`DEFAULT_EVENT_BUFFER`]; taken into `1..=`[`MAX_EVENT_BUFFER`]). A subscriber
    /// further behind loses nothing: it catches up from the store, which costs reads.
    ///
    /// [`MAX_EVENT_BUFFER`]: crate::runtime::events::MAX_EVENT_BUFFER
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events;
        self
    }

    /// With a store that does not keep finished runs (the engine of [`Engine::ephemeral`],
    /// a [`MemoryStore`]), how many finished runs the engine keeps with their outcomes, the
    /// most recent ones (default [`DEFAULT_KEEP_FINISHED_RUNS`]). Starting the id of a run
    /// still kept hands that run back; an id whose run was dropped starts a new run. A
    /// completed run is kept in about 350 bytes and 16 a step, with its output; a run that
    /// failed, with its error and report as they are. Outputs are kept whole, so the bound is
    /// on memory only as far as the outputs are small: 10,000 runs whose outputs hold a
    /// megabyte each keep 10 GB. For such a workflow, lower this bound or
    /// [`keep_finished_for`](Self::keep_finished_for), or give the engine a store that keeps
    /// finished runs.
    ///
    /// So that runs share no lock, the engine's table is split by run id into up to 32
    /// shards, and a bound of 512 or more is split between them: each shard drops its own
    /// oldest run beyond its share, so a run is kept for about `runs` more ends, not exactly.
    /// A smaller bound keeps one shard and the exact order. A store
    /// that keeps finished runs (SQLite) makes this moot: the engine forgets a run once it
    /// ends, and finds it again in the store.
    pub fn keep_finished_runs(mut self, runs: usize) -> Self {
        self.keep.runs = runs;
        self
    }

    /// With a store that does not keep finished runs, how long the engine keeps a finished
    /// run at most (default [`DEFAULT_KEEP_FINISHED_FOR`]): see
    /// [`keep_finished_runs`](Self::keep_finished_runs).
    pub fn keep_finished_for(mut self, age: Duration) -> Self {
        self.keep.age = age;
        self
    }

    /// How often the engine looks for runs of its registered definitions to take over
    /// ([`Engine::register`]): runs whose lease ran out or was given up (default
    /// [`DEFAULT_TAKEOVER_EVERY`]; at least 1 ms). Each look is one query to the store.
    pub fn takeover_every(mut self, every: Duration) -> Self {
        self.takeover_every = every.max(Duration::from_millis(1));
        self
    }

    /// Prunes finished runs under `policy` in the background, for the life of the engine: a
    /// pass every [`period`](crate::runtime::retention::RetentionPolicy::period), of at most
    /// its [`batches_per_pass`](crate::runtime::retention::RetentionPolicy::batches_per_pass)
    /// batches, each a short transaction of its own (see
    /// [`retention`](crate::runtime::retention) for what a policy deletes). The loop holds
    /// the engine weakly and stops when it drains ([`Engine::shutdown`]) or is dropped; it
    /// starts when the engine is built inside a tokio runtime. A saga registered or started on
    /// the engine is named on the policy by itself, so that its runs stay until compensated.
    /// Several replicas may each run a policy: a run two of them select is deleted by one.
    pub fn retention(mut self, policy: crate::runtime::retention::RetentionPolicy) -> Self {
        self.retention = Some(policy);
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        let permits = self.max_concurrent_steps.clamp(1, Semaphore::MAX_PERMITS);
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::without_history()));
        let records = store.records_changes();
        let events = records
            .then(|| Feed::attach(&*store, self.event_buffer))
            .flatten();
        let creates_runs = records || store.records_runs();
        let inner = Arc::new(Inner {
            records,
            creates_runs,
            signals: signals::SignalHub::new(Arc::clone(&store) as Arc<dyn SignalStore>),
            runs: RunTable::new(self.keep, store.keeps_finished_runs()),
            store,
            permits: Permits::new(permits),
            jitter_seed: self.jitter_seed.unwrap_or_else(|| fastrand::u64(..)),
            events,
            lifecycle: drain::Lifecycle::new(),
            registry: registry::Registry::default(),
            takeover_every: self.takeover_every,
            retention: self.retention.map(retention::Retained::new),
        });
        retention::start(&inner);
        Engine { inner }
    }
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("custom_store", &self.store.is_some())
            .field("max_concurrent_steps", &self.max_concurrent_steps)
            .field("jitter_seed", &self.jitter_seed)
            .field("event_buffer", &self.event_buffer)
            .field("keep_finished_runs", &self.keep.runs)
            .field("keep_finished_for", &self.keep.age)
            .field("takeover_every", &self.takeover_every)
            .field("retention", &self.retention)
            .finish()
    }
}
