//! The conformance suite on the in-memory store (`sagaflow_core::conformance`): the checks
//! every store passes. The SQLite store runs the same in `sqlite/tests/conformance.rs`.

use std::sync::Arc;

use sagaflow_core::runtime::MemoryStore;

sagaflow_core::machine_conformance!(Arc::new(MemoryStore::new()));
