//! The core of sagaflow: the graph model, step options, and (with the `runtime` feature, on by
//! default) the run engine.
//!
//! The graph model and the options are free of async and I/O dependencies so that the
//! proc-macro crate can check a workflow at build time with exactly the code the engine uses.

mod fnv;
pub mod graph;
pub mod policy;

#[cfg(feature = "runtime")]
pub mod runtime;

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "fault-injection")]
pub mod fault;

pub use graph::{Graph, GraphError, GraphSpec, NodeStyle};
pub use policy::{OnError, PolicyError, RetryPolicy, StepOptions};
