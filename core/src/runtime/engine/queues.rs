//! Queues on the engine: a run put on a named queue ([`Engine::enqueue`]) instead of run
//! where it is started, run by whichever engine serves that queue ([`Engine::serve`]), and
//! waited for from any process ([`Engine::wait_for`]). See
//! [`store::queues`](crate::runtime::store::queues) for how a store keeps them.
//!
//! An engine serving a queue finds its runs at each poll of its takeover loop (every
//! [`takeover_every`](super::EngineBuilder::takeover_every)), highest priority first, then
//! oldest, among the workflows and graphs it registered ([`Engine::register`]), and takes each
//! up under a fenced lease, as it takes up a run whose lease ran out.

use std::sync::Arc;
use std::time::Duration;

use super::registry::TAKEOVER_BATCH;
use super::{Engine, RunHandle};
use crate::runtime::definition::{Codec, Definition, StepValue, Value, plan};
use crate::runtime::error::EngineError;
use crate::runtime::id::RunId;
use crate::runtime::store::{
    Admission, Admitted, Created, FreeRun, KnownGraph, NewRun, Queueing, StoredRunStatus,
};

/// Where and how [`Engine::enqueue`] puts a run: a queue, a priority (higher first; 0 by
/// default), and a concurrency key (none by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    queue: String,
    priority: i32,
    key: Option<String>,
}

impl Enqueue {
    /// On the queue `queue`, at priority 0, without a key.
    pub fn on(queue: impl Into<String>) -> Self {
        Enqueue {
            queue: queue.into(),
            priority: 0,
            key: None,
        }
    }

    /// With the concurrency key `key`: of the runs of the queue with the same key, at most
    /// [`Serve::at_most_per_key`] run at once over all engines (one deployment per service at
    /// a time: the service's name as the key).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// At `priority`: of the runs waiting on a queue, those of the highest priority are taken
    /// first, the oldest first among equals.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }
}

/// A queue an engine serves ([`Engine::serve`]), and its bounds (none by default): at most
/// how many of its runs this engine runs at once, and, counted by the store over all the
/// engines serving it, how many run at once, how many of one key, and how many start in a
/// period. `"name"` converts into one without a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    queue: String,
    at_most: Option<usize>,
    bounds: Admission,
}

impl Serve {
    /// The queue `queue`, with no bound on the runs this engine runs at once.
    pub fn queue(queue: impl Into<String>) -> Self {
        Serve {
            queue: queue.into(),
            at_most: None,
            bounds: Admission::default(),
        }
    }

    /// At most `runs` of the queue's runs at once on this engine (at least 1): it takes no
    /// more of them until one of those ends. Other engines serving the queue have bounds of
    /// their own.
    pub fn at_most(mut self, runs: usize) -> Self {
        self.at_most = Some(runs.max(1));
        self
    }

    /// At most `runs` of the queue's runs at once over all the engines serving it (at least
    /// 1), counted by the store: a run is taken only while fewer than `runs` of the queue are
    /// held under a live lease ([`QueueStore::admit`](crate::runtime::QueueStore::admit)).
    /// Every engine serving the queue should say the same.
    pub fn at_most_overall(mut self, runs: usize) -> Self {
        self.bounds.overall = Some(runs.max(1));
        self
    }

    /// At most `runs` of the queue's runs with one concurrency key ([`Enqueue::key`]) at once
    /// over all the engines serving it (at least 1), counted by the store. Runs without a key
    /// are not bounded by it.
    pub fn at_most_per_key(mut self, runs: usize) -> Self {
        self.bounds.per_key = Some(runs.max(1));
        self
    }

    /// At most `starts` of the queue's runs start (are first taken up) in any window of
    /// length `per` (at least 1 start and 1 ms), over all the engines serving it, counted by
    /// the store by its clock. A run waiting for room starts at a later poll.
    pub fn rate(mut self, starts: usize, per: Duration) -> Self {
        self.bounds.rate = Some((starts.max(1), per.max(Duration::from_millis(1))));
        self
    }

    /// The bounds the store counts over all engines.
    pub fn bounds(&self) -> &Admission {
        &self.bounds
    }

    /// The bound on this engine alone ([`at_most`](Self::at_most)).
    pub fn bound_here(&self) -> Option<usize> {
        self.at_most
    }

    /// The queue.
    pub fn name(&self) -> &str {
        &self.queue
    }
}

impl From<&str> for Serve {
    fn from(queue: &str) -> Self {
        Serve::queue(queue)
    }
}

impl From<String> for Serve {
    fn from(queue: String) -> Self {
        Serve::queue(queue)
    }
}

/// A queue served, as the engine's registry keeps it: with a bound, the runs of it this
/// engine took (at most the bound; those that ended are dropped at each poll).
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) serve: Serve,
    pub(crate) held: Vec<RunId>,
}

/// Where a run listed for a take-up waits: its queue, and the queue's bounds over all engines;
/// and whether the store reserved it already (the first run of a bounded queue's listing).
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub(crate) queue: String,
    pub(crate) bounds: Admission,
    pub(crate) reserved: bool,
}

impl Engine {
    /// The runs listed on the queues served that may be taken up here now, in their order:
    /// each run of a queue with bounds over all engines is reserved by the store first, one
    /// after the other (the store counts under the queue's lock anyway), so that a run of
    /// lower priority never takes the room a higher one was refused a moment before; once the
    /// queue's bound or rate is full, the rest of that queue waits for the next poll (a run
    /// whose key is full is skipped, for other keys may go).
    pub(crate) async fn admitted(&self, listed: Vec<(FreeRun, Queued)>) -> Vec<(FreeRun, Queued)> {
        let mut full: Vec<String> = Vec::new();
        let mut admitted = Vec::with_capacity(listed.len());
        for (run, queued) in listed {
            if queued.bounds.is_empty() || queued.reserved {
                admitted.push((run, queued));
                continue;
            }
            if full.contains(&queued.queue) || self.runs_here(&run.run_id) {
                continue;
            }
            match self
                .inner
                .store
                .admit(&run.run_id, &queued.queue, &queued.bounds)
                .await
            {
                Ok(Admitted::Reserved) => admitted.push((run, queued)),
                Ok(Admitted::QueueFull) => full.push(queued.queue.clone()),
                Ok(Admitted::KeyFull | Admitted::Taken) => {}
                Err(error) => {
                    tracing::warn!(%error, run_id = %run.run_id, queue = %queued.queue, "cannot reserve a run of a bounded queue; trying again at the next poll");
                    full.push(queued.queue.clone());
                }
            }
        }
        admitted
    }
}

/// How long [`Engine::wait_for`] waits between two looks at the store, at most.
const WAIT_AT_MOST: Duration = Duration::from_millis(250);

impl Engine {
    /// Puts a run of `def` with `input` on a queue instead of running it here: it waits in
    /// the store until an engine that serves the queue ([`serve`](Self::serve), in this
    /// process or another) takes it up. Returns its id. The id is the idempotency key: a run
    /// already there under it (enqueued or started) is left as it is.
    ///
    /// Errors: the definition is invalid; the queue's name is empty; the id is a run of
    /// another workflow's; the store cannot keep queues (the in-memory store: no other engine
    /// sees its runs) or fails.
    ///
    /// ```
    /// use sagaflow_core::runtime::{Builder, Engine, Enqueue, StepError};
    /// use sagaflow_core::StepOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut b = Builder::<u32>::new("Double");
    /// let input = b.input();
    /// let out = b.step("double", StepOptions::new(), (input,), |_, (x,)| async move {
    ///     Ok::<_, StepError>(*x * 2)
    /// });
    /// let def = b.build_with_output(out);
    /// // The in-memory engine keeps no queue: a durable store does (SQLite, PostgreSQL).
    /// let refused = Engine::ephemeral().enqueue(&def, "run-1", 21, &Enqueue::on("doubling")).await;
    /// assert!(refused.unwrap_err().to_string().contains("keeps no queue"));
    /// # }
    /// ```
    pub async fn enqueue<I: StepValue, O: StepValue>(
        &self,
        def: &Definition<I, O>,
        run_id: impl Into<RunId>,
        input: I,
        on: &Enqueue,
    ) -> Result<RunId, EngineError> {
        let run_id = run_id.into();
        if on.queue.trim().is_empty() {
            return Err(EngineError::EmptyQueueName { run_id });
        }
        if on.key.as_deref().is_some_and(|key| key.trim().is_empty()) {
            return Err(EngineError::EmptyQueueKey {
                run_id,
                queue: on.queue.clone(),
            });
        }
        let erased = def.erased();
        let plan = plan(erased);
        if !plan.problems.is_empty() {
            return Err(EngineError::InvalidDefinition {
                workflow: erased.name().to_owned(),
                problems: plan.problems.clone(),
            });
        }
        let input: Value = Arc::new(input);
        let new_run = NewRun {
            run_id: &run_id,
            workflow: erased.name(),
            graph_fingerprint: plan.fingerprint,
            input: &*input,
            input_codec: Codec::of::<I>(),
            graph: plan.graph.as_deref(),
            first_step: None,
        };
        match self
            .inner
            .store
            .enqueue(
                &new_run,
                Queueing {
                    queue: &on.queue,
                    priority: on.priority,
                    key: on.key.as_deref(),
                },
            )
            .await?
        {
            Created::New => Ok(run_id),
            Created::Existing { workflow } if workflow == erased.name() => Ok(run_id),
            Created::Existing { workflow } => Err(EngineError::RunIdConflict {
                run_id,
                workflow: erased.name().to_owned(),
                existing: workflow,
            }),
        }
    }

    /// Serves a queue (`"name"`, or [`Serve::queue`] with a bound): from now on, for the life
    /// of the engine, its takeover loop also takes up the runs waiting on that queue whose
    /// workflow and graph it registered ([`register`](Self::register)), highest priority
    /// first, at every poll, at most [`Serve::at_most`] of them at once if bounded. Serving a
    /// queue again replaces its bound. Errors: the name is empty, or there is no tokio
    /// runtime to run the loop on.
    pub fn serve(&self, queue: impl Into<Serve>) -> Result<(), EngineError> {
        let serve = queue.into();
        if serve.queue.trim().is_empty() {
            return Err(EngineError::EmptyQueueName {
                run_id: RunId::from(""),
            });
        }
        self.inner.registry.serve(serve);
        self.start_takeover_loop()
    }

    /// The runs to take up from the queues served at this poll, each with its queue and the
    /// queue's bound over all engines: as many of each queue as this engine's bound leaves
    /// room for. Also whether a queue listed a whole batch (more may wait).
    pub(crate) async fn queued_to_take(
        &self,
        known: &[KnownGraph],
    ) -> (Vec<(FreeRun, Queued)>, bool) {
        let rooms: Vec<(String, usize, Admission)> = self.inner.registry.with_served(|served| {
            served
                .iter_mut()
                .map(|s| {
                    let room = match s.serve.at_most {
                        Some(at_most) => {
                            s.held.retain(|run| self.runs_here(run));
                            at_most.saturating_sub(s.held.len())
                        }
                        None => TAKEOVER_BATCH,
                    };
                    (
                        s.serve.queue.clone(),
                        room.min(TAKEOVER_BATCH),
                        s.serve.bounds,
                    )
                })
                .collect()
        });
        let (mut runs, mut full) = (Vec::new(), false);
        for (queue, room, bounds) in rooms {
            if room == 0 {
                continue;
            }
            // A queue without bounds the store counts is claimed: its runs reserved for this
            // engine in one step, different ones for engines claiming at once. One with such
            // bounds is listed with its first run reserved in the same step, and the rest
            // reserved run by run (`admitted`).
            let listed = if bounds.is_empty() {
                self.inner
                    .store
                    .claim(&queue, known, room)
                    .await
                    .map(|claimed| (None, claimed))
            } else {
                self.inner
                    .store
                    .admit_first(&queue, known, room, &bounds)
                    .await
                    .map(|found| match found.first {
                        Some((first, Admitted::Reserved)) => (Some(first), found.rest),
                        // No room in the queue: nothing of it starts before the next poll.
                        Some((_, Admitted::QueueFull)) => (None, Vec::new()),
                        Some((_, Admitted::KeyFull | Admitted::Taken)) | None => (None, found.rest),
                    })
            };
            match listed {
                Ok((first, rest)) => {
                    full |= first.iter().len() + rest.len() >= TAKEOVER_BATCH;
                    let queued = |reserved| Queued {
                        queue: queue.clone(),
                        bounds,
                        reserved,
                    };
                    let reserved = first.map(|run| (run, queued(true)));
                    let room = room.saturating_sub(reserved.iter().len());
                    runs.extend(reserved);
                    runs.extend(rest.into_iter().take(room).map(|run| (run, queued(false))));
                }
                Err(error) => {
                    tracing::warn!(%error, %queue, "cannot list the runs waiting on a queue served; trying again at the next poll");
                }
            }
        }
        (runs, full)
    }

    /// Notes that this engine took `run` up from `queue`, against the queue's bound.
    pub(crate) fn took_from(&self, queue: &str, run: RunId) {
        self.inner.registry.with_served(|served| {
            if let Some(s) = served
                .iter_mut()
                .find(|s| s.serve.queue == queue && s.serve.at_most.is_some())
            {
                s.held.push(run);
            }
        });
    }

    /// Waits until the run `run_id` of `def` has finished, wherever it runs (an enqueued run
    /// on whichever engine took it, or a run of another process), looking at the store at
    /// most every 250 ms, and gives a handle whose [`wait`](RunHandle::wait) is its stored
    /// outcome. Errors: there is no such run, or the store fails.
    pub async fn wait_for<I: StepValue, O: StepValue>(
        &self,
        def: &Definition<I, O>,
        run_id: impl Into<RunId>,
    ) -> Result<RunHandle<O>, EngineError> {
        let run_id = run_id.into();
        let mut pause = Duration::from_millis(5);
        loop {
            match self.inner.store.load_run(&run_id).await? {
                None => return Err(EngineError::RunNotFound { run_id }),
                Some(run) if run.status != StoredRunStatus::Running => break,
                Some(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(WAIT_AT_MOST);
        }
        // Finished: taken up here, it gives its stored outcome and runs nothing.
        self.resume(def, run_id).await
    }
}
