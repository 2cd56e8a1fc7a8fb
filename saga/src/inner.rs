//! What a saga is, apart from its typed forward definition: its steps as the builder saw
//! them, their compensations, its deadline and its problems. The builder makes it; the
//! definition, the driver, the plans and the status read it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Codec, StepContext, StepError, Value};

use crate::error::{SagaDefinitionError, SagaError};

/// What a saga is, apart from its typed forward definition.
pub(crate) struct SagaInner {
    pub(crate) name: String,
    pub(crate) steps: Vec<StepInfo>,
    /// Each step's compensation, by step index.
    pub(crate) undos: Vec<Option<UndoDef>>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) problems: Vec<SagaDefinitionError>,
    pub(crate) input_codec: Codec,
}

impl SagaInner {
    pub(crate) fn index_of(&self, step: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == step)
    }

    /// The workflow name of the saga's compensation rounds.
    pub(crate) fn compensation_name(&self) -> String {
        crate::naming::compensation_workflow(&self.name)
    }

    /// Whether `step` is a pivot or comes after one.
    pub(crate) fn is_forward_only(&self, step: &str) -> bool {
        self.index_of(step)
            .is_some_and(|i| self.steps[i].pivot.is_some() && !self.steps[i].is_pivot)
    }

    pub(crate) fn pivots(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .filter(|s| s.is_pivot)
            .map(|s| s.name.as_str())
    }

    pub(crate) fn check(&self) -> Result<(), SagaError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(SagaError::Definition {
                saga: self.name.clone(),
                problems: self.problems.clone(),
            })
        }
    }
}

/// The future of one attempt of a compensation.
pub(crate) type UndoFuture = Pin<Box<dyn Future<Output = Result<(), StepError>> + Send>>;

/// A compensation, type-erased: the forward step's inputs (by slot) and its output (`None`
/// when the step's outcome is unknown) in, an attempt's future out.
pub(crate) type UndoFn = dyn Fn(StepContext, &[Option<Value>], Option<Value>) -> Result<UndoFuture, StepError>
    + Send
    + Sync;

/// One step's compensation.
pub(crate) struct UndoDef {
    /// The compensation's own name (its function's), for reports.
    pub(crate) name: String,
    /// Its options (its own retry policy), after the saga's defaults.
    pub(crate) options: StepOptions,
    /// Whether it may run for a step whose outcome is unknown (interrupted or failed).
    pub(crate) on_unknown: bool,
    pub(crate) call: Arc<UndoFn>,
}

/// What the builder knows of each forward step.
pub(crate) struct StepInfo {
    pub(crate) name: String,
    /// Value slots read, in argument order (0 is the saga input, `i + 1` step `i`).
    pub(crate) inputs: Vec<usize>,
    /// The pivot this step is, or comes after (by name), if any.
    pub(crate) pivot: Option<String>,
    pub(crate) is_pivot: bool,
}
