//! The conformance suite on the PostgreSQL store (`sagaflow_core::conformance`), unchanged:
//! the checks every store passes, those of stores whose runs outlive their engine, machines,
//! and take-overs. Each test has a schema of its own on the server (`tests/support`). The
//! suite runs twice: on the log as every release writes it, and on a compact log
//! (`PgOptions::compact_log`, a step's completion and the next step's start in one row).

#[macro_use]
mod support;

sagaflow_core::run_conformance!(fresh_store!());
sagaflow_core::durable_conformance!(fresh_db!());
sagaflow_core::machine_conformance!(fresh_store!());
sagaflow_core::takeover_conformance!(fresh_db!());
sagaflow_core::replica_conformance!(fresh_db!());
sagaflow_core::queue_conformance!(fresh_db!());
sagaflow_core::retention_conformance!(fresh_db!());

/// The same suites on stores that keep a compact log.
mod compact {
    use super::support;

    sagaflow_core::run_conformance!(fresh_store!(compact));
    sagaflow_core::durable_conformance!(fresh_db!(compact));
    sagaflow_core::machine_conformance!(fresh_store!(compact));
    sagaflow_core::takeover_conformance!(fresh_db!(compact));
    sagaflow_core::replica_conformance!(fresh_db!(compact));
    sagaflow_core::queue_conformance!(fresh_db!(compact));
    sagaflow_core::retention_conformance!(fresh_db!(compact));
}
