//! sagaflow's graph model and step options.
//!
//! Free of async and I/O dependencies, so that the proc-macro crate checks a workflow at build
//! time with exactly the code the engine trusts at run time, and so that later front ends
//! (definitions loaded from files) share it too. The engine (`sagaflow-core`) re-exports all of
//! it under the same paths.

pub mod fnv;
pub mod graph;
pub mod policy;

pub use graph::{Graph, GraphError, GraphSpec, NodeStyle};
pub use policy::{Missing, OnError, PolicyError, RetryPolicy, StepOptions, may_be_missing};
