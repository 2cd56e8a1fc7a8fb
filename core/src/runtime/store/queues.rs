//! Queues: runs put on a named queue instead of run where they are started, and run by
//! whichever engine serves that queue ([`Engine::enqueue`](crate::runtime::Engine::enqueue),
//! [`Engine::serve`](crate::runtime::Engine::serve)).
//!
//! An enqueued run is stored as any run is, with its queue and priority, held by no owner:
//! no lease, so nobody runs it yet. An engine that serves the queue claims it
//! ([`QueueStore::claim`]: several runs in one step, each for one engine only), or, for a
//! queue with bounds over all engines, lists it ([`QueueStore::queued_runs`]) and reserves it
//! ([`QueueStore::admit`]); then takes it up as it takes up a run whose lease ran out: under a
//! lease with a fencing token ([`LeaseStore::acquire`](super::LeaseStore::acquire)), which one
//! engine wins when several find the run. A run of a queue that an engine took and
//! then lost (it died, it was cut off) is listed again once its lease runs out, to the engines
//! that serve its queue only. [`LeaseStore::free_runs`](super::LeaseStore::free_runs) never
//! lists a run of a queue.

use std::time::Duration;

use super::{Created, FreeRun, KnownGraph, NewRun, SignalNotices};
use crate::runtime::error::StoreError;
use crate::runtime::id::RunId;

/// Where an enqueued run waits: its queue, its priority (higher first), and its concurrency
/// key, if any (see [`Admission::per_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queueing<'a> {
    /// The queue.
    pub queue: &'a str,
    /// Higher first; among equals, older first.
    pub priority: i32,
    /// Runs of a queue that share a key are bounded together (one deployment per service at a
    /// time, say); a run without one is bounded by the others only.
    pub key: Option<&'a str>,
}

/// The bounds a store checks, over every process on the database, before a run waiting on a
/// queue may start ([`QueueStore::admit`]). None set: nothing to check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admission {
    /// At most this many of the queue's runs held under a live lease at once.
    pub overall: Option<usize>,
    /// At most this many of the queue's runs with the run's key held under a live lease at
    /// once (a run without a key is not bounded by it).
    pub per_key: Option<usize>,
    /// At most this many of the queue's runs started (first taken up) in any window of this
    /// length.
    pub rate: Option<(usize, Duration)>,
}

impl Admission {
    /// Whether no bound is set.
    pub fn is_empty(&self) -> bool {
        self.overall.is_none() && self.per_key.is_none() && self.rate.is_none()
    }
}

/// A queue as a store finds it: what waits, what runs, when the oldest waiting run was put
/// there, and how many runs started lately. What `sagaflow queues` reads
/// ([`Inspect::queues`](super::inspect::Inspect::queues)), beside each replica's bounds
/// ([`ServedQueue`](super::replicas::ServedQueue)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueStanding {
    /// The queue.
    pub queue: String,
    /// Runs waiting: unfinished, not parked, held by no live lease.
    pub waiting: u64,
    /// Runs held under a live lease.
    pub running: u64,
    /// Runs parked (taken up too many times), waiting for an operator.
    pub parked: u64,
    /// When the oldest waiting run was put on the queue, unix milliseconds.
    pub oldest_waiting_at: Option<i64>,
    /// Runs first taken up from the queue in the last minute.
    pub started_last_minute: u64,
}

/// The queues with a run unfinished or started in the last minute, read at `now` (unix
/// milliseconds, the store's clock), by name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Queues {
    /// When they were read.
    pub now: i64,
    /// Each queue.
    pub queues: Vec<QueueStanding>,
}

/// What [`QueueStore::admit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Reserved for this store's owner: the take-up that follows finds the lease its own.
    Reserved,
    /// The queue's bound over all engines, or its rate, leaves no room now: no run of the
    /// queue may start, whatever its key.
    QueueFull,
    /// The run's key is at its bound; runs of other keys may start.
    KeyFull,
    /// The run is no longer free to take (another engine took it, or it ended).
    Taken,
}

/// What [`QueueStore::admit_first`] found on a bounded queue: its first run and what its
/// admission said, and the runs listed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmittedFirst {
    /// The first run waiting (highest priority, then oldest), if any, and whether it was
    /// reserved for this store's owner, or which bound refused it.
    pub first: Option<(FreeRun, Admitted)>,
    /// The runs waiting after it, in the queue's order, not reserved.
    pub rest: Vec<FreeRun>,
}

/// Putting runs on queues and finding them there: the capability queues work through.
#[async_trait::async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Creates `run` on the queue of `on`, with its priority and key, held by no owner, or
    /// reports the run that has its id (the id is the idempotency key, as for
    /// [`RunStore::create_run`](super::RunStore::create_run)). A store whose runs cannot
    /// outlive their engine, so that no other engine could take them, refuses it with an
    /// error that says so.
    async fn enqueue(&self, run: &NewRun<'_>, on: Queueing<'_>) -> Result<Created, StoreError>;

    /// At most `limit` unfinished, unparked runs of the queues `queues` that no live lease
    /// holds (never taken, or their lease ran out or was given up), of the workflows and
    /// graphs in `known` (a graph of `None` matches every graph of its workflow): highest
    /// priority first, then oldest. A store that keeps no queue lists none.
    async fn queued_runs(
        &self,
        queues: &[String],
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError>;

    /// Reserves for this store's owner up to `limit` runs waiting on `queue` (a queue with no
    /// bound the store counts), highest priority first, then oldest, of the graphs in
    /// `known`, in one step: each under its lease as [`admit`](Self::admit) reserves one,
    /// and its start time set. Engines claiming at once take different runs (PostgreSQL:
    /// `FOR UPDATE SKIP LOCKED`; SQLite: its one writer), instead of racing for the same ones.
    /// Returns the runs reserved; the take-up that follows finds each lease this owner's. A
    /// store may take the runs up in the claim itself, counting each take-up as
    /// [`acquire`](super::LeaseStore::acquire) counts it, and answer the `acquire` and
    /// [`load_run`](super::RunStore::load_run) of that take-up from what the claim read, so
    /// that a queued run costs one round trip more than one started in process (PostgreSQL
    /// does). A store that keeps no queue claims none.
    async fn claim(
        &self,
        queue: &str,
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError>;

    /// Reserves the run `run_id` of `queue` for this store's owner (its lease, as
    /// [`acquire`](super::LeaseStore::acquire) gives it; a store may take the run up there and
    /// then, as [`claim`](Self::claim) may) if every bound of `bounds` leaves room for it, counted and taken at once for every process on
    /// the database: the queue's bounds over all replicas. The run's start time is the
    /// reservation's, the first time (by the store's clock, which the rate bound counts in).
    /// Otherwise says which bound refused it, or that the run is no longer free to take. The
    /// take-up that follows a reservation finds the lease this owner's. A store that keeps no
    /// queue has nothing to reserve ([`Admitted::Taken`]).
    async fn admit(
        &self,
        run_id: &RunId,
        queue: &str,
        bounds: &Admission,
    ) -> Result<Admitted, StoreError>;

    /// The runs waiting on `queue`, a queue with bounds the store counts (`bounds`), as
    /// [`queued_runs`](Self::queued_runs) lists them (at most `limit`), the first of them
    /// [`admit`](Self::admit)ted at once: an idle engine's poll then reserves the run it would
    /// start first in the step that finds it. By default, the listing and then the
    /// admission; a store may do both in one round trip (PostgreSQL does).
    async fn admit_first(
        &self,
        queue: &str,
        known: &[KnownGraph],
        limit: usize,
        bounds: &Admission,
    ) -> Result<AdmittedFirst, StoreError> {
        let mut rest = self.queued_runs(&[queue.to_owned()], known, limit).await?;
        if rest.is_empty() {
            return Ok(AdmittedFirst { first: None, rest });
        }
        let first = rest.remove(0);
        let admitted = self.admit(&first.run_id, queue, bounds).await?;
        Ok(AdmittedFirst {
            first: Some((first, admitted)),
            rest,
        })
    }

    /// A counter the store bumps when a run may have been put on a queue (by any process on
    /// the database), so that the engines serving queues look at once instead of at their
    /// next poll; `None` if the store cannot tell (they poll). A bump is a hint, never a
    /// promise: the engine lists the queues' runs again either way.
    fn queue_notices(&self) -> Option<SignalNotices>;
}
