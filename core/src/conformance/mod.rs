//! The conformance suite: one set of checks that every store passes, run by each store's own
//! tests (the `conformance` feature; a dev-dependency feature, never in a build that ships).
//!
//! Each check is a function over a store that panics, as a test does, when the store breaks the
//! contract of its capability. A store's tests run all of them with one macro call per
//! capability, so a check added here runs on every store at once: the SQLite store's tests
//! call `sagaflow_core::machine_conformance!(SqliteStore::in_memory().expect("opens"))`.
//!
//! The in-memory store runs them in `core/tests/conformance.rs`, the SQLite store in
//! `sqlite/tests/conformance.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // checks fail as tests do

pub mod machines;
