//! The engine of sagaflow: definitions, the run engine, the store seam and the in-memory store
//! (with the `runtime` feature, on by default). It holds no SQL: the SQLite store is the
//! `sagaflow-sqlite` crate.
//!
//! The graph model and the step options live in the dependency-free `sagaflow-graph` crate,
//! which the proc-macro crate uses too; they are re-exported here under the same paths.

pub use sagaflow_graph::{graph, policy};

#[cfg(feature = "runtime")]
pub mod runtime;

#[cfg(feature = "fault-injection")]
pub mod fault;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use graph::{Graph, GraphError, GraphSpec, NodeStyle};
pub use policy::{OnError, PolicyError, RetryPolicy, StepOptions};
