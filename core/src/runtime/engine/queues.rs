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

use super::{Engine, RunHandle};
use crate::runtime::definition::{Codec, Definition, StepValue, Value, plan};
use crate::runtime::error::EngineError;
use crate::runtime::id::RunId;
use crate::runtime::store::{Created, NewRun, StoredRunStatus};

/// Where and how [`Engine::enqueue`] puts a run: a queue, and a priority (higher first; 0 by
/// default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    queue: String,
    priority: i32,
}

impl Enqueue {
    /// On the queue `queue`, at priority 0.
    pub fn on(queue: impl Into<String>) -> Self {
        Enqueue {
            queue: queue.into(),
            priority: 0,
        }
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
        };
        match self
            .inner
            .store
            .enqueue(&new_run, &on.queue, on.priority)
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

    /// Serves the queue `queue`: from now on, for the life of the engine, its takeover loop
    /// also takes up the runs waiting on that queue whose workflow and graph it registered
    /// ([`register`](Self::register)), highest priority first, at every poll. Serving a
    /// queue twice is serving it once. Errors: the name is empty, or there is no tokio
    /// runtime to run the loop on.
    pub fn serve(&self, queue: impl Into<String>) -> Result<(), EngineError> {
        let queue = queue.into();
        if queue.trim().is_empty() {
            return Err(EngineError::EmptyQueueName {
                run_id: RunId::from(""),
            });
        }
        self.inner.registry.serve(queue);
        self.start_takeover_loop()
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
