//! The errors of saga definitions and of driving a saga.

use sagaflow_core::runtime::{DefinitionError, EngineError, RunError, RunId, StoreError};

/// A problem with a saga's definition, found when it is built (the `saga!` macro finds the
/// same ones at compile time).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SagaDefinitionError {
    /// The forward graph is invalid (a cycle, an unknown or duplicate step...).
    #[error(transparent)]
    Graph(#[from] DefinitionError),
    /// A compensation was declared for a step past a pivot, where there is no going back.
    #[error("step `{step}` comes after the pivot `{pivot}`, so it cannot have a compensation")]
    UndoAfterPivot {
        /// The step.
        step: String,
        /// The pivot it follows.
        pivot: String,
    },
    /// A compensation was declared for the pivot itself: a pivot is what cannot be undone.
    #[error("step `{step}` is a pivot, so it cannot have a compensation")]
    UndoOnPivot {
        /// The pivot.
        step: String,
    },
    /// Two pivots on one path: the second would come after the point of no return.
    #[error("step `{second}` is a pivot after the pivot `{first}`: one path has one pivot")]
    TwoPivots {
        /// The pivot that comes first.
        first: String,
        /// The pivot that follows it.
        second: String,
    },
    /// A second compensation for one step.
    #[error("step `{step}` has two compensations")]
    DuplicateUndo {
        /// The step.
        step: String,
    },
    /// A compensation that does not receive what its forward step receives.
    #[error("the compensation of step `{step}` must receive the step's own inputs, in order")]
    UndoInputs {
        /// The step.
        step: String,
    },
    /// A handle that is not a step of this saga.
    #[error("the compensation `{undo}` names a handle that is not a step of this saga")]
    ForeignStep {
        /// The compensation.
        undo: String,
    },
}

/// Why a saga could not be started, driven or operated on. How a saga *ended* (completed,
/// compensated, stuck) is a [`SagaOutcome`](crate::SagaOutcome), not an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SagaError {
    /// The saga's definition is invalid.
    #[error("saga `{saga}` is not valid: {}", list(.problems))]
    Definition {
        /// The saga.
        saga: String,
        /// Every problem found.
        problems: Vec<SagaDefinitionError>,
    },
    /// The engine refused to start or take up a run.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A run of the saga stopped for a reason that is not a step's failure (the store
    /// refused a checkpoint, the runtime shut down): the saga can be taken up again later.
    #[error("saga run stopped: {0}")]
    Run(RunError),
    /// No saga run has this id.
    #[error("saga `{saga}` has no run `{run_id}`")]
    NotFound {
        /// The saga.
        saga: String,
        /// The id asked for.
        run_id: RunId,
    },
    /// The engine's store keeps no step outputs, so nothing could be compensated after a
    /// failure. Sagas need a store that does: `Engine::open` or `Engine::open_in_memory`.
    #[error(
        "saga `{saga}`, run `{run_id}`: the engine's store keeps no step outputs, so a failure could not be compensated; open the engine on SQLite (`Engine::open` or `Engine::open_in_memory`)"
    )]
    NotDurable {
        /// The saga.
        saga: String,
        /// The run.
        run_id: RunId,
    },
    /// An operator action (retry, skip, abandon) on a saga that is not stuck.
    #[error(
        "saga `{saga}`, run `{run_id}` is not stuck (it is {status}), so it cannot be {action}"
    )]
    NotStuck {
        /// The saga.
        saga: String,
        /// The run.
        run_id: RunId,
        /// Where it stands.
        status: String,
        /// What was asked (`retried`, `skipped`, `abandoned`).
        action: &'static str,
    },
    /// A stored value no longer decodes into its type (the step's output type changed).
    #[error("saga `{saga}`, run `{run_id}`: the stored {what} does not decode: {message}")]
    Decode {
        /// The saga.
        saga: String,
        /// The run.
        run_id: RunId,
        /// What did not decode (`input`, `output of step `x``, `compensation plan`).
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// The task driving the saga ended without an outcome (the runtime shut down).
    #[error("saga `{saga}`, run `{run_id}`: the task driving it ended early: {message}")]
    Driver {
        /// The saga.
        saga: String,
        /// The run.
        run_id: RunId,
        /// What happened to it.
        message: String,
    },
}

fn list(problems: &[SagaDefinitionError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl sagaflow_core::runtime::LeaseRefusal for SagaError {
    fn lease_expires_in(&self) -> Option<std::time::Duration> {
        match self {
            SagaError::Engine(error) => error.lease_expires_in(),
            _ => None,
        }
    }
}
