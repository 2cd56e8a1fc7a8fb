//! The conformance suite on the SQLite store (`sagaflow_core::conformance`): the checks every
//! store passes. The in-memory store runs the same in `core/tests/conformance.rs`.

use sagaflow_sqlite::SqliteStore;

sagaflow_core::machine_conformance!(SqliteStore::in_memory().expect("a database in memory"));
