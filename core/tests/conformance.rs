//! The conformance suite on the in-memory store (`sagaflow_core::conformance`): the checks
//! every store passes. The SQLite store runs the same, and the durable ones, in
//! `sqlite/tests/conformance.rs`. The in-memory store's runs do not outlive its engine, so
//! the durable checks do not apply to it; the run checks hold it to saying so.

use std::sync::Arc;

use sagaflow_core::runtime::MemoryStore;

sagaflow_core::run_conformance!(MemoryStore::new());
sagaflow_core::machine_conformance!(Arc::new(MemoryStore::new()));
