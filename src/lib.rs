//! sagaflow: workflows, sagas and state machines written as macros, checked at build time, run
//! on a small tokio engine.
//!
//! ```
//! use sagaflow::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Rows(Vec<i64>);
//!
//! async fn extract(_: &StepContext, day: &u32) -> Result<Rows, StepError> {
//!     Ok(Rows(vec![i64::from(*day), -1, 2]))
//! }
//! async fn clean(_: &StepContext, rows: &Rows) -> Result<Rows, StepError> {
//!     Ok(Rows(rows.0.iter().copied().filter(|r| *r >= 0).collect()))
//! }
//! async fn audit(_: &StepContext, rows: &Rows) -> Result<usize, StepError> {
//!     Ok(rows.0.len())
//! }
//! async fn load(_: &StepContext, rows: &Rows, seen: Option<&usize>) -> Result<String, StepError> {
//!     Ok(format!("loaded {} of {:?}", rows.0.len(), seen))
//! }
//!
//! workflow! {
//!     /// A nightly ETL.
//!     pub Etl(u32) -> String {
//!         extract -> [clean, audit] -> load;
//!         extract: retry(max_attempts = 3, initial = 100ms), timeout = 30s;
//!         audit: on_error = continue;
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::in_memory();
//! let report = Etl::start(&engine, "etl-2026-11-21", 21).await?.wait().await?;
//! assert_eq!(*report.output, "loaded 2 of Some(3)");
//! # Ok(())
//! # }
//! ```

extern crate self as sagaflow;

pub use sagaflow_core::graph::{Graph, GraphError, GraphSpec, NodeStyle};
pub use sagaflow_core::policy::{OnError, PolicyError, RetryPolicy, StepOptions};
pub use sagaflow_core::runtime;
pub use sagaflow_core::runtime::{
    Builder, Definition, Engine, EngineError, Recovered, Report, RunError, RunHandle, RunId,
    StepContext, StepError, StepReport, StepStatus,
};
pub use sagaflow_core::sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// Declares a workflow: a DAG of ordinary async functions, checked while it compiles and run on
/// the [`Engine`].
///
/// # Syntax
///
/// ```text
/// workflow! {
///     /// docs and attributes
///     VISIBILITY NAME [(INPUT)] [-> OUTPUT] {
///         CHAIN;                          // a -> b -> c   or   a -> [b, c] -> d
///         STEP: OPTION, OPTION, ...;      // options of one step
///         defaults: OPTION, ...;          // options of every step that does not set its own
///     }
/// }
/// ```
///
/// - A step is an async fn in scope, named by its path (`steps::extract`); its name is the
///   last segment. It is called as `step(&StepContext, inputs...)` and returns
///   `Result<T, E>` where `T: Serialize + DeserializeOwned + Send + Sync + 'static` and
///   `E: Into<StepError>` (any `std::error::Error` is).
/// - A step with no upstream receives `&INPUT` when the workflow declares an input type, and
///   nothing else otherwise. Any other step receives its direct upstream outputs by reference,
///   in the order the edges were written: `[clean, audit] -> load` calls
///   `load(ctx, &Cleaned, &Audit)`. Deref coercion applies, so a step may take `&[T]` for a
///   `Vec<T>` output and `&str` for a `String`.
/// - A step downstream of a step with `when` or `on_error = continue` receives `Option<&T>`
///   for it, so the compiler makes you handle the missing value.
/// - With `-> OUTPUT`, the workflow must end in exactly one step, whose output is the run's.
///
/// # Options
///
/// | option | meaning |
/// | --- | --- |
/// | `retry(max_attempts = 5, initial = 100ms, coefficient = 2.0, max = 10s, jitter = 0.2)` | Temporal's retry vocabulary; unset keys take Temporal's defaults (1 s, 2.0, 100 × initial, unlimited, no jitter). Without `retry`, a step gets one attempt. |
/// | `timeout = 30s` | time allowed for one attempt |
/// | `deadline = 5m` | time allowed for all attempts and delays together |
/// | `on_error = fail \| continue` | `continue` lets the run finish; dependents receive `None` |
/// | `when = guard_fn` | `guard_fn` receives the step's inputs (without the context) and returns `bool`; `false` skips the step, and dependents receive `None` |
/// | `at_most_once` | when a run is resumed after a crash, an attempt the crash cut is not repeated: the step comes back [`StepStatus::Interrupted`] and the run fails (or goes on, with `on_error = continue`) |
///
/// Durations are a number and a unit: `ms`, `s`, `m`, `h`.
///
/// # What it generates
///
/// A unit struct `NAME` with `NAME::start(&engine, run_id[, input])`, `NAME::definition()`,
/// `NAME::mermaid()`, `NAME::dot()` and `NAME::NAME`. `examples/etl_by_hand.rs` shows the
/// same workflow written with [`Builder`] directly: that is what the macro expands to.
///
/// # Build-time errors
///
/// A cycle (at the edge that closes it, with its whole path), a step whose input is declared
/// twice, an unknown step in an options statement, an unknown or repeated option, a bad
/// duration or retry value, an empty workflow, an output type on a workflow with several
/// final steps: each is an error at the offending token, all reported together.
///
/// ```compile_fail
/// use sagaflow::prelude::*;
/// async fn a(_: &StepContext) -> Result<(), StepError> { Ok(()) }
/// async fn b(_: &StepContext, _: &()) -> Result<(), StepError> { Ok(()) }
/// workflow! { Loop { a -> b -> a; } } // error: cycle: a -> b -> a
/// ```
pub use sagaflow_macros::workflow;

pub use sagaflow_saga::{
    RecoveredSagas, SagaBuilder, SagaDefinition, SagaDefinitionError, SagaError, SagaHandle,
    SagaOutcome, SagaStatus,
};

/// Declares a saga. (Documentation in progress.)
pub use sagaflow_macros::saga;

// fsm: begin (the fsm! work owns these lines)
/// Declares a typed state machine. (Documentation in progress.)
pub use sagaflow_macros::fsm;
// fsm: end

/// The names most programs need.
pub mod prelude {
    pub use crate::{Engine, OnError, Report, RunError, RunId, StepContext, StepError, StepStatus};
    pub use crate::{saga, workflow};
}

/// What the macros' generated code names. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use ::std::string::String;
    pub use ::std::sync::OnceLock;
    pub use ::std::time::Duration;
    pub use sagaflow_core::policy::{OnError, RetryPolicy, StepOptions};
    pub use sagaflow_core::runtime::{
        Builder, Definition, Engine, EngineError, Recovered, RunHandle, RunId, StepContext,
    };
    /// The state-machine runtime, for `fsm!`'s generated code.
    pub use sagaflow_fsm as fsm_rt;
    pub use sagaflow_saga::{
        RecoveredSagas, SagaBuilder, SagaDefinition, SagaError, SagaHandle, SagaStatus,
    };
}

/// The README's examples, compiled and run as doctests so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
