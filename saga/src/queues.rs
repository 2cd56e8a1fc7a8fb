//! Sagas on queues: a saga run put on a named queue instead of run where it is started, run
//! by whichever engine serves that queue and registered the saga
//! ([`SagaDefinition::register`]), forward steps and compensations alike, and waited for from
//! any process. See `Engine::enqueue` and `Engine::serve` for the queues themselves.

use std::time::Duration;

use sagaflow_core::runtime::{Engine, Enqueue, RunId, StepValue};

use crate::definition::SagaDefinition;
use crate::driver::SagaHandle;
use crate::error::SagaError;
use crate::status::SagaStatus;

/// How long [`SagaDefinition::wait_for`] waits between two looks at the store, at most.
const WAIT_AT_MOST: Duration = Duration::from_millis(250);

impl<I: StepValue, O: StepValue> SagaDefinition<I, O> {
    /// Puts a saga run of this saga with `input` on a queue instead of running it here: its
    /// forward run waits in the store until an engine that serves the queue and registered
    /// this saga takes it up, and that engine compensates it too if it fails. Returns its
    /// id, the idempotency key: a run already there under it is left as it is.
    ///
    /// ```
    /// use sagaflow_core::runtime::{Engine, Enqueue, StepError};
    /// use sagaflow_core::StepOptions;
    /// use sagaflow_saga::SagaBuilder;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut b = SagaBuilder::<u32>::new("Book");
    /// let input = b.input();
    /// let booked = b.step("book", StepOptions::new(), (input,), |_, (n,)| async move {
    ///     Ok::<_, StepError>(*n)
    /// });
    /// let saga = b.build_with_output(booked);
    /// // The in-memory engine keeps no queue: a durable store does (SQLite, PostgreSQL).
    /// let refused = saga.enqueue(&Engine::ephemeral(), "book-1", 2, &Enqueue::on("bookings")).await;
    /// assert!(refused.unwrap_err().to_string().contains("keeps no queue"));
    /// # }
    /// ```
    pub async fn enqueue(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
        input: I,
        on: &Enqueue,
    ) -> Result<RunId, SagaError> {
        self.inner.check()?;
        engine.retain_until_compensated(self.name());
        Ok(engine.enqueue(self.forward(), run_id, input, on).await?)
    }

    /// Waits until the saga run `run_id` has ended wherever it runs (completed, compensated,
    /// stuck or abandoned), looking at the store at most every 250 ms, and gives a handle
    /// whose [`wait`](SagaHandle::wait) is its outcome (taken up here, an ended saga runs
    /// nothing). Errors: there is no such run, or the store fails.
    pub async fn wait_for(
        &self,
        engine: &Engine,
        run_id: impl Into<RunId>,
    ) -> Result<SagaHandle<O>, SagaError> {
        let run_id = run_id.into();
        let mut pause = Duration::from_millis(5);
        loop {
            match self.status(engine, run_id.clone()).await? {
                SagaStatus::Running
                | SagaStatus::Retrying { .. }
                | SagaStatus::Compensating { .. } => {}
                _ => break,
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(WAIT_AT_MOST);
        }
        self.resume(engine, run_id).await
    }
}
