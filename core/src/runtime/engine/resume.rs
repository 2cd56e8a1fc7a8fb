//! Taking up runs that an earlier process started: one by id, or every unfinished run of a
//! workflow at once. Ended steps come back from the store decoded into their types and are
//! not run again; the graph a run was started under must still be the workflow's.

use super::{Claimed, Engine, Waiting};
use crate::runtime::definition::{Codec, Definition, ErasedDefinition, Plan, StepValue, Value};
use crate::runtime::engine::RunHandle;
use crate::runtime::engine::executor::{Launch, Restored, Resume, StoredEnd};
use crate::runtime::error::{EngineError, StepError, StoreError};
use crate::runtime::id::RunId;
use crate::runtime::report::StepStatus;
use crate::runtime::store::StoredRunStatus;

/// What [`Engine::recover`] did: the runs it took up now, those another owner holds under a
/// live lease (taken up here by themselves once the lease runs out), and those it could not
/// take up, each with why. One broken run does not stop the others.
#[derive(Debug)]
pub struct Recovered<O> {
    /// Handles on the runs taken up now, oldest first.
    pub runs: Vec<RunHandle<O>>,
    /// The runs leased by another owner: each is taken up by this engine once its lease runs
    /// out unless renewed, with no further call ([`Waiting::taken`] gives its handle then).
    pub waiting: Vec<Waiting<RunHandle<O>>>,
    /// The runs that could not be taken up (a parked run, a changed graph, a stored input
    /// that no longer decodes…).
    pub failed: Vec<(RunId, EngineError)>,
}

impl Engine {
    /// Takes up the run `run_id` that an earlier process (or engine) started and did not
    /// finish: its ended steps are not run again, its interrupted step runs again (or comes
    /// back `Interrupted` when at-most-once). A run this engine already has is returned as
    /// it is; a finished run is returned with its stored outcome, and nothing runs.
    pub async fn resume<I: StepValue, O: StepValue>(
        &self,
        def: &Definition<I, O>,
        run_id: impl Into<RunId>,
    ) -> Result<RunHandle<O>, EngineError> {
        let run_id = run_id.into();
        let erased = def.erased();
        let (plan, reservation, handle) = match self.claim(erased, &run_id)? {
            Claimed::Existing(handle) => return Ok(handle),
            Claimed::New(claim) => (claim.plan, claim.reservation, claim.handle),
        };
        let (input, resume) = match self.take_up::<I>(erased, &run_id, plan, false).await {
            Ok(taken) => taken,
            Err(error) => return Err(reservation.abandon(error)),
        };
        let sender = reservation.commit();
        let launch = Launch {
            resume: Some(resume),
            begun: None,
        };
        Ok(self.launch(sender, handle, run_id, erased, input, launch))
    }

    /// Takes up every unfinished run of `def`'s workflow in the store, oldest first: what a
    /// service calls once at start-up, for each workflow it knows, after a crash.
    ///
    /// A run whose lease this store's owner held (this process's previous life, on the same
    /// host and database: see `sagaflow_sqlite::SqliteOptions::owner`)
    /// is taken up at once. A run another owner holds under a live lease is in
    /// [`Recovered::waiting`]: this engine takes it up by itself once that lease runs out
    /// unless renewed (its owner is gone), with no second call. Parked runs are not listed;
    /// a run taken up too many times is parked now and is in [`Recovered::failed`] with
    /// [`EngineError::Parked`].
    pub async fn recover<I: StepValue, O: StepValue>(
        &self,
        def: &Definition<I, O>,
    ) -> Result<Recovered<O>, EngineError> {
        let unfinished = self.inner.store.unfinished_runs().await?;
        let mut recovered = Recovered {
            runs: Vec::new(),
            waiting: Vec::new(),
            failed: Vec::new(),
        };
        for run in unfinished.into_iter().filter(|r| r.workflow == def.name()) {
            match self.resume(def, run.run_id.clone()).await {
                Ok(handle) => recovered.runs.push(handle),
                Err(EngineError::Leased {
                    run_id,
                    owner,
                    expires_in,
                    ..
                }) => {
                    let def = def.clone();
                    let id = run_id.clone();
                    let waiting =
                        self.take_up_when_free(run_id, owner, expires_in, move |engine| {
                            let def = def.clone();
                            let id = id.clone();
                            async move { engine.resume(&def, id).await }
                        });
                    tracing::info!(run_id = %run.run_id, "{waiting}");
                    recovered.waiting.push(waiting);
                }
                Err(error) => {
                    tracing::warn!(run_id = %run.run_id, error = %error, "a run could not be recovered");
                    recovered.failed.push((run.run_id, error));
                }
            }
        }
        Ok(recovered)
    }

    /// Takes the run's lease ([`LeaseStore::acquire`](crate::runtime::LeaseStore::acquire)), then loads
    /// it. A run another process holds under a live lease is [`EngineError::Leased`], a run
    /// taken up too many times [`EngineError::Parked`]. If loading fails, the lease is
    /// released (left to expire) so that the run is not held by an engine that does not run
    /// it.
    pub(super) async fn take_up<I: StepValue>(
        &self,
        def: &ErasedDefinition,
        run_id: &RunId,
        plan: &Plan,
        must_exist: bool,
    ) -> Result<(Value, Resume), EngineError> {
        self.inner
            .store
            .acquire(run_id)
            .await
            .map_err(EngineError::from_store)?;
        let taken = self.load_taken::<I>(def, run_id, plan, must_exist).await;
        if taken.is_err() {
            self.inner.store.release(run_id);
        }
        taken
    }

    /// Loads a run an earlier process started, checks that it was started under this graph,
    /// and decodes its input and its ended steps' outputs into their types.
    async fn load_taken<I: StepValue>(
        &self,
        def: &ErasedDefinition,
        run_id: &RunId,
        plan: &Plan,
        must_exist: bool,
    ) -> Result<(Value, Resume), EngineError> {
        let graph = def.graph().ok();
        let stored = match self.inner.store.load_run(run_id).await? {
            Some(stored) => stored,
            None if must_exist => {
                return Err(EngineError::RunNotResumable {
                    run_id: run_id.clone(),
                    workflow: def.name().to_owned(),
                });
            }
            None => {
                return Err(EngineError::RunNotFound {
                    run_id: run_id.clone(),
                });
            }
        };
        if stored.workflow != def.name() {
            return Err(EngineError::RunIdConflict {
                run_id: run_id.clone(),
                workflow: def.name().to_owned(),
                existing: stored.workflow,
            });
        }
        if stored.graph_fingerprint != plan.fingerprint {
            let gone: Vec<&str> = stored
                .steps
                .iter()
                .map(|s| s.name.as_str())
                .filter(|name| graph.and_then(|g| g.index_of(name)).is_none())
                .collect();
            let changed = if gone.is_empty() {
                "its steps or edges changed".to_owned()
            } else {
                format!("steps no longer in the workflow: {}", gone.join(", "))
            };
            return Err(EngineError::GraphChanged {
                run_id: run_id.clone(),
                workflow: def.name().to_owned(),
                changed,
            });
        }
        let codec_error = |step: &str, message: String| {
            EngineError::Store(StoreError::Codec {
                run_id: run_id.clone(),
                step: step.to_owned(),
                message,
            })
        };
        let input = (Codec::of::<I>().decode)(&stored.input).map_err(|m| {
            codec_error(
                "(input)",
                format!("the stored input no longer decodes: {m}"),
            )
        })?;
        let mut steps: Vec<Restored> = def.steps().iter().map(|_| Restored::Fresh).collect();
        for step in &stored.steps {
            // The graph's name index: a linear search per stored step made taking up a
            // 10,000-step run quadratic.
            let Some(index) = graph.and_then(|g| g.index_of(&step.name)) else {
                continue;
            };
            let Some(slot) = steps.get_mut(index) else {
                continue;
            };
            let error = step.error.as_ref().map(|e| StepError::permanent(e.clone()));
            *slot = match step.status {
                StepStatus::Completed => {
                    let text = step.output.as_deref().unwrap_or("null");
                    let output = def.steps().get(index).map(|d| (d.codec().decode)(text));
                    match output {
                        Some(Ok(value)) => Restored::Ended {
                            status: StepStatus::Completed,
                            output: Some(value),
                            error: None,
                            attempts: step.attempts,
                        },
                        Some(Err(m)) => {
                            return Err(codec_error(
                                &step.name,
                                format!(
                                    "the stored output no longer decodes into the step's type: {m}"
                                ),
                            ));
                        }
                        None => Restored::Fresh,
                    }
                }
                StepStatus::Skipped | StepStatus::Failed | StepStatus::Interrupted => {
                    Restored::Ended {
                        status: step.status,
                        output: None,
                        error,
                        attempts: step.attempts,
                    }
                }
                StepStatus::Running => Restored::Interrupted {
                    attempts: step.attempts,
                    started: step.started_at,
                },
                StepStatus::Pending | StepStatus::NotRun => Restored::Fresh,
            };
        }
        let ended = match stored.status {
            StoredRunStatus::Running => None,
            StoredRunStatus::Parked => {
                return Err(EngineError::Parked {
                    run_id: run_id.clone(),
                    recoveries: stored.error.as_deref().and_then(parked_count).unwrap_or(0),
                });
            }
            StoredRunStatus::Completed => Some(StoredEnd::Completed),
            StoredRunStatus::Cancelled => Some(StoredEnd::Cancelled),
            StoredRunStatus::Failed => Some(StoredEnd::Failed(
                stored
                    .error
                    .unwrap_or_else(|| "no error was stored".to_owned()),
            )),
        };
        Ok((input, Resume { steps, ended }))
    }
}

/// The count of recoveries in a parked run's error text (`parked after N recoveries...`).
fn parked_count(error: &str) -> Option<u32> {
    let rest = error.split("parked after ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}
