//! Sagas taken over without anyone asking: a saga registered on an engine has its runs that
//! another replica left (its lease ran out, or it drained) taken up by the engine's takeover
//! loop, forward run and compensation rounds alike (see `Engine::register`).

use sagaflow_core::runtime::{Engine, EngineError, KnownGraph, RunId, StepValue};

use crate::definition::SagaDefinition;
use crate::driver::launch;
use crate::error::SagaError;
use crate::plan;

impl<I: StepValue, O: StepValue> SagaDefinition<I, O> {
    /// Tells `engine` it can run this saga: from now on, for the life of the engine, it takes
    /// up by itself the saga's runs whose lease has run out or was given up (another replica
    /// died, was cut off, or drained): a forward run of this saga's graph where it stands, a
    /// compensation round where it stands (whatever its graph, which depends on what it
    /// undoes), with no call to [`recover`](Self::recover). A forward run started under
    /// another graph is left for a replica that knows it. What the loop does not find is a
    /// saga whose forward run failed and whose first round a crash kept from starting (no
    /// run of it is unfinished): [`recover`](Self::recover) at start-up takes those up.
    ///
    /// ```
    /// use sagaflow_core::runtime::{Engine, StepError};
    /// use sagaflow_core::StepOptions;
    /// use sagaflow_saga::SagaBuilder;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut b = SagaBuilder::<u32>::new("Book");
    /// let input = b.input();
    /// let booked = b.step("book", StepOptions::new(), (input,), |_, (n,)| async move {
    ///     Ok::<_, StepError>(*n)
    /// });
    /// let saga = b.build_with_output(booked);
    ///
    /// let engine = Engine::builder().build(); // a durable store in a service
    /// saga.register(&engine)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn register(&self, engine: &Engine) -> Result<(), SagaError> {
        self.inner.check()?;
        engine.retain_until_compensated(self.name());
        let graph =
            self.forward()
                .erased()
                .graph()
                .map_err(|problems| EngineError::InvalidDefinition {
                    workflow: self.name().to_owned(),
                    problems: problems.to_vec(),
                })?;
        let forward = KnownGraph {
            workflow: self.name().to_owned(),
            fingerprint: Some(graph.fingerprint()),
        };
        let saga = self.clone();
        engine.register_take_up(forward, move |engine: Engine, run_id: RunId| {
            let saga = saga.clone();
            async move { launch(&saga, &engine, run_id, None).await.map(drop) }
        })?;
        let rounds = KnownGraph {
            workflow: self.inner.compensation_name(),
            fingerprint: None,
        };
        let saga = self.clone();
        engine.register_take_up(rounds, move |engine: Engine, round: RunId| {
            let saga = saga.clone();
            async move {
                let Some(run_id) = plan::saga_of_round(&round) else {
                    return Err(SagaError::NotFound {
                        saga: saga.name().to_owned(),
                        run_id: round,
                    });
                };
                launch(&saga, &engine, run_id, None).await.map(drop)
            }
        })?;
        Ok(())
    }
}
