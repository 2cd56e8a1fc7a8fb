//! The conformance suite on the PostgreSQL store (`sagaflow_core::conformance`), unchanged:
//! the checks every store passes, those of stores whose runs outlive their engine, machines,
//! and take-overs. Each test has a schema of its own on the server (`tests/support`).

#[macro_use]
mod support;

sagaflow_core::run_conformance!(fresh_store!());
sagaflow_core::durable_conformance!(fresh_db!());
sagaflow_core::machine_conformance!(fresh_store!());
sagaflow_core::takeover_conformance!(fresh_db!());
sagaflow_core::replica_conformance!(fresh_db!());
sagaflow_core::queue_conformance!(fresh_db!());
sagaflow_core::retention_conformance!(fresh_db!());
