//! The run engine: definitions, the engine that executes them, and the store seam that records
//! every change of a run's state.

pub mod context;
pub mod definition;
pub mod error;
pub mod report;

pub use context::{RunId, StepContext};
pub use definition::{
    Builder, Definition, Dep, Deps, ErasedDefinition, Handle, Optional, StepDef, StepValue, Value,
};
pub use error::{DefinitionError, EngineError, RunError, StepError, StoreError};
pub use report::{Report, StepReport, StepStatus};
