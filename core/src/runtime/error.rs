//! The errors of steps, runs and the engine.

use std::fmt;
use std::time::Duration;

use crate::graph::GraphError;
use crate::runtime::id::RunId;
use crate::runtime::report::{StepReport, StepReports};

pub(crate) mod step;

pub use step::StepError;

/// Why a run did not produce its output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// A step failed for good (after its retries) and its `on_error` is `fail`.
    #[error("run `{run_id}` failed: step `{step}` failed after {attempts} attempt(s): {error}")]
    StepFailed {
        /// The run.
        run_id: RunId,
        /// The step that failed.
        step: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        error: StepError,
        /// Every step's state when the run stopped.
        steps: StepReports,
    },
    /// The run was cancelled.
    #[error("run `{run_id}` was cancelled")]
    Cancelled {
        /// The run.
        run_id: RunId,
        /// Every step's state when the run stopped.
        steps: StepReports,
    },
    /// The store refused a checkpoint, so the run stopped rather than go on unrecorded.
    #[error("run `{run_id}` stopped: {source}")]
    Store {
        /// The run.
        run_id: RunId,
        /// What the store said.
        source: StoreError,
    },
    /// The engine broke one of its own invariants (a bug in sagaflow, never in user code).
    #[error("run `{run_id}`: internal error: {message}")]
    Internal {
        /// The run.
        run_id: RunId,
        /// What went wrong.
        message: String,
    },
    /// The run had failed in an earlier process; this is what the store kept of it.
    #[error("run `{run_id}` failed before this process took it up: {error}")]
    FailedEarlier {
        /// The run.
        run_id: RunId,
        /// The error as it was stored.
        error: String,
    },
    /// The engine was shut down before the run ended ([`Engine::shutdown`]): what had ended
    /// of the run is checkpointed and its lease given up, so another engine on the store
    /// takes it up and runs the rest (a step cut at the end of the grace period runs again
    /// there, at least once). The run goes on; only this engine let go of it.
    ///
    /// [`Engine::shutdown`]: crate::runtime::Engine::shutdown
    #[error(
        "run `{run_id}` was released by an engine shutting down; another engine on its store takes it up"
    )]
    Released {
        /// The run.
        run_id: RunId,
        /// Every step's state when the engine let go of the run.
        steps: StepReports,
    },
    /// The run never started: a handle joined it while another caller was starting it, and
    /// that start failed (the store refused it, or the id belongs to another workflow).
    #[error("run `{run_id}` did not start: {reason}")]
    NotStarted {
        /// The run.
        run_id: RunId,
        /// Why the start failed.
        reason: String,
    },
}

impl RunError {
    /// Every step's state when the run stopped, where known.
    pub fn steps(&self) -> &[StepReport] {
        match self {
            RunError::StepFailed { steps, .. }
            | RunError::Cancelled { steps, .. }
            | RunError::Released { steps, .. } => steps,
            RunError::Store { .. }
            | RunError::Internal { .. }
            | RunError::NotStarted { .. }
            | RunError::FailedEarlier { .. } => &[],
        }
    }
}

/// Why the engine could not start a run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The workflow's definition is broken (only possible for definitions built by hand; the
    /// macro refuses these at build time).
    #[error("workflow `{workflow}` is invalid: {}", join(.problems))]
    InvalidDefinition {
        /// The workflow.
        workflow: String,
        /// Every problem found.
        problems: Vec<DefinitionError>,
    },
    /// The run id is already used by a run of another workflow.
    #[error(
        "run id `{run_id}` is already used by a run of workflow `{existing}`, not `{workflow}`"
    )]
    RunIdConflict {
        /// The run id.
        run_id: RunId,
        /// The workflow asked for.
        workflow: String,
        /// The workflow that owns the id.
        existing: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store holds a run with this id and workflow that this engine is not running, and
    /// the engine cannot take a stored run over (resuming comes with the durable store).
    #[error(
        "run `{run_id}` of workflow `{workflow}` exists in the store but not in this engine; it cannot be resumed here"
    )]
    RunNotResumable {
        /// The run id.
        run_id: RunId,
        /// The workflow.
        workflow: String,
    },
    /// A signal of that name was delivered to that run already.
    #[error("signal `{name}` was delivered to run `{run_id}` already; a signal is delivered once")]
    SignalAlreadyDelivered {
        /// The run.
        run_id: RunId,
        /// The signal.
        name: String,
    },
    /// The engine holds no run by that id to signal, and its store keeps no record of runs
    /// beside it ([`RunStore::records_runs`](crate::runtime::RunStore::records_runs) is
    /// `false`, as for [`Engine::ephemeral`](crate::runtime::Engine::ephemeral)).
    #[error(
        "no run `{run_id}` to signal `{name}` to: this engine holds none by that id (an ephemeral engine keeps its finished runs for a while, then forgets them)"
    )]
    NoRunToSignal {
        /// The run.
        run_id: RunId,
        /// The signal.
        name: String,
    },
    /// A signal's payload could not be serialized.
    #[error("signal `{name}` for run `{run_id}`: the payload does not serialize: {message}")]
    SignalPayload {
        /// The run.
        run_id: RunId,
        /// The signal.
        name: String,
        /// What serde said.
        message: String,
    },
    /// Waiting for a signal outside a step failed: the store could not be read, or the
    /// payload did not decode.
    #[error("waiting for signal `{name}` of run `{run_id}`: {message}")]
    SignalWait {
        /// The run.
        run_id: RunId,
        /// The signal.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// There is no such run to resume.
    #[error(
        "no run `{run_id}` to resume: the store has none by that id (an in-memory store keeps no run beyond its engine)"
    )]
    RunNotFound {
        /// The run id.
        run_id: RunId,
    },
    /// The stored run was started under a different graph than the workflow has now.
    #[error(
        "run `{run_id}` of workflow `{workflow}` was started under another graph: {changed}; finish it with the old code, or start a new run"
    )]
    GraphChanged {
        /// The run.
        run_id: RunId,
        /// The workflow.
        workflow: String,
        /// What differs, as far as the store can tell.
        changed: String,
    },
    /// A run was to go on a queue without a name.
    #[error("run `{run_id}` cannot be put on a queue whose name is empty")]
    EmptyQueueName {
        /// The run.
        run_id: RunId,
    },
    /// A run was to go on a queue with a concurrency key that is empty.
    #[error("run `{run_id}` cannot be put on queue `{queue}` with an empty concurrency key")]
    EmptyQueueKey {
        /// The run.
        run_id: RunId,
        /// The queue.
        queue: String,
    },
    /// `start` was not polled inside a tokio runtime, which the engine needs to spawn the run.
    #[error("the engine must run inside a tokio runtime")]
    NoRuntime,
    /// Another process (another store owner) holds a live lease on the run: it is running
    /// there. It can be taken over once that lease expires without being renewed.
    #[error(
        "run `{run_id}` is leased by owner `{owner}` for another {:.1} s; it runs there, or can be taken over once the lease expires",
        .expires_in.as_secs_f64()
    )]
    Leased {
        /// The run.
        run_id: RunId,
        /// The owner holding the lease.
        owner: String,
        /// When the lease expires unless renewed, in unix milliseconds.
        until_ms: i64,
        /// How long the lease had left when it was found, unless renewed.
        expires_in: Duration,
    },
    /// The engine was dropped before it could take the run up (see
    /// [`Waiting`](crate::runtime::engine::Waiting)).
    #[error("run `{run_id}` was not taken up: its engine was dropped first")]
    Dropped {
        /// The run.
        run_id: RunId,
    },
    /// The engine is shutting down ([`Engine::shutdown`]): it starts and takes up no run.
    ///
    /// [`Engine::shutdown`]: crate::runtime::Engine::shutdown
    #[error("run `{run_id}` was not started: the engine is shutting down")]
    ShuttingDown {
        /// The run.
        run_id: RunId,
    },
    /// The run was taken up more times than the store allows (it keeps crashing its process)
    /// and is parked: it is not retried until an operator looks at it.
    #[error(
        "run `{run_id}` is parked after {recoveries} recoveries: it kept crashing its process and is no longer retried"
    )]
    Parked {
        /// The run.
        run_id: RunId,
        /// How many times it had been taken up.
        recoveries: u32,
    },
}

impl EngineError {
    /// The engine error for a store error: a live lease held by another owner is
    /// [`EngineError::Leased`], a parked run [`EngineError::Parked`], anything else
    /// [`EngineError::Store`].
    pub fn from_store(error: StoreError) -> EngineError {
        match error {
            StoreError::Leased {
                run_id,
                owner,
                until_ms,
                expires_in,
            } => EngineError::Leased {
                run_id,
                owner,
                until_ms,
                expires_in,
            },
            StoreError::Parked { run_id, recoveries } => EngineError::Parked { run_id, recoveries },
            other => EngineError::Store(other),
        }
    }
}

/// A problem in a definition built with the [`Builder`](crate::runtime::Builder).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DefinitionError {
    /// The graph is invalid.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A step's retry policy cannot work.
    #[error("step `{step}`: {source}")]
    Policy {
        /// The step.
        step: String,
        /// The problem.
        source: crate::policy::PolicyError,
    },
    /// A step takes the output of a step that may have none (guarded or `on_error =
    /// continue`) without declaring the input optional.
    #[error(
        "step `{step}` requires the output of `{input}`, which may be missing; take it with `.optional()`"
    )]
    RequiredOptional {
        /// The downstream step.
        step: String,
        /// The upstream step that may have no output.
        input: String,
    },
    /// A handle from another builder was passed in.
    #[error("step `{step}` names an input that does not belong to this workflow")]
    ForeignHandle {
        /// The step.
        step: String,
    },
    /// The run's output comes from a step that may finish without one (guarded, or
    /// `on_error = continue`), so a run could complete with no output to return.
    #[error(
        "the workflow's output comes from step `{step}`, which may finish without an output (it is guarded or has `on_error = continue`)"
    )]
    OptionalOutput {
        /// The output step.
        step: String,
    },
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A failure of the store behind the engine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A stored output could not be encoded or decoded.
    #[error("run `{run_id}`, step `{step}`: {message}")]
    Codec {
        /// The run.
        run_id: RunId,
        /// The step.
        step: String,
        /// What failed.
        message: String,
    },
    /// The run's input could not be encoded, so the run was not created.
    #[error("run `{run_id}`: the input cannot be encoded: {message}")]
    Input {
        /// The run.
        run_id: RunId,
        /// What failed.
        message: String,
    },
    /// The database could not be opened: not a database file, unreadable, or its schema could
    /// not be brought up to date.
    #[error("cannot open the database `{path}`: {message}")]
    Open {
        /// The database file.
        path: String,
        /// Why.
        message: String,
    },
    /// The database was written by a newer sagaflow: its schema version is past the newest this
    /// code knows, and guessing would risk the data.
    #[error(
        "the database `{path}` has schema version {found}, newer than version {supported}, the newest this sagaflow knows; upgrade sagaflow to open it"
    )]
    SchemaTooNew {
        /// The database file.
        path: String,
        /// The version found in the file.
        found: i64,
        /// The newest version this code knows.
        supported: i64,
    },
    /// `PRAGMA quick_check` found the database damaged (`SqliteOptions::quick_check`); the
    /// store refused to open it rather than read or write a broken file.
    #[error("the database `{path}` is damaged: {problems}")]
    Corrupt {
        /// The database file.
        path: String,
        /// What `quick_check` reported, its first problems joined by `; `.
        problems: String,
    },
    /// Another connection held the database locked past the busy timeout; nothing was written.
    #[error("the database `{path}` stayed locked by another connection past the busy timeout")]
    Busy {
        /// The database file.
        path: String,
    },
    /// The disk, or the database's size limit, is full; nothing of the refused write was kept,
    /// and what was committed before is intact.
    #[error("the database `{path}` is full: {message}")]
    Full {
        /// The database file.
        path: String,
        /// What SQLite said.
        message: String,
    },
    /// The store is unavailable or refused the write.
    #[error("store: {0}")]
    Backend(String),
    /// The write was refused because this store no longer holds the run's lease: another
    /// process took the run over (its lease had expired), so this one is a stale owner and
    /// nothing of the write was kept.
    #[error(
        "run `{run_id}`: the write was refused: this store's lease (fencing token {token}) was lost to another owner"
    )]
    Fenced {
        /// The run.
        run_id: RunId,
        /// The fencing token this store held, no longer the run's.
        token: u64,
    },
    /// This store's lease on the run may have run out: it was neither taken nor renewed for
    /// nine tenths of a lease (its database unreachable, say), so the step about to start was
    /// not started; another process may be taking the run over.
    #[error(
        "run `{run_id}`: this store's lease may have run out (not renewed for most of a lease): the next step was not started, and another process may take the run over"
    )]
    LeaseLapsed {
        /// The run.
        run_id: RunId,
    },
    /// Another live store on the database holds the lease owner id this store was opened
    /// with (`sagaflow_sqlite::SqliteOptions::owner`): two processes
    /// under one owner would each believe they hold the same leases.
    #[error(
        "owner `{owner}` of `{path}` is held by another live process: two processes under one owner would each run every step, so each needs its own"
    )]
    OwnerInUse {
        /// The database, as named when opened.
        path: String,
        /// The owner id.
        owner: String,
    },
    /// Another owner holds a live lease on the run. See [`EngineError::Leased`].
    #[error(
        "run `{run_id}` is leased by owner `{owner}` for another {:.1} s",
        .expires_in.as_secs_f64()
    )]
    Leased {
        /// The run.
        run_id: RunId,
        /// The owner holding the lease.
        owner: String,
        /// When the lease expires unless renewed, in unix milliseconds.
        until_ms: i64,
        /// How long the lease had left when it was found, unless renewed.
        expires_in: Duration,
    },
    /// The run is parked. See [`EngineError::Parked`].
    #[error("run `{run_id}` is parked after {recoveries} recoveries")]
    Parked {
        /// The run.
        run_id: RunId,
        /// How many times it had been taken up.
        recoveries: u32,
    },
}

impl StoreError {
    /// Whether the failure comes from a lock held by another connection, so that trying again
    /// later may succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Busy { .. })
    }
}
