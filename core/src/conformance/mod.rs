//! The conformance suite: one set of checks that every store passes, run by each store's own
//! tests (the `conformance` feature; a dev-dependency feature, never in a build that ships).
//!
//! Each check is a function over a store that panics, as a test does, when the store breaks the
//! contract of its capability. A store's tests run all of them with one macro call per
//! capability, so a check added here runs on every store at once: the SQLite store's tests
//! call `sagaflow_core::machine_conformance!(SqliteStore::in_memory().expect("opens"))`.
//!
//! | macro | checks | stores |
//! | --- | --- | --- |
//! | [`run_conformance!`](crate::run_conformance) | [`runs`]: creation, changes, signals | every store |
//! | [`durable_conformance!`](crate::durable_conformance) | [`durable`]: reopening, leases and fencing, the event log | stores whose runs outlive their engine |
//! | [`machine_conformance!`](crate::machine_conformance) | [`machines`]: the machine capability | every store with machines |
//! | [`takeover_conformance!`](crate::takeover_conformance) | [`takeover`]: a run changing hands | stores whose runs outlive their engine |
//! | [`replica_conformance!`](crate::replica_conformance) | [`replicas`]: drain and takeover without anyone asking | stores whose runs outlive their engine |
//! | [`retention_conformance!`](crate::retention_conformance) | [`retention`]: pruning finished runs, positions after it | stores whose runs outlive their engine |
//! | [`resume_conformance!`](crate::resume_conformance) | [`resume`]: runs taken up after their process died (`#[test]`s that make and drop runtimes) | stores whose runs outlive their process |
//!
//! The in-memory store runs them in `core/tests/conformance.rs`, the SQLite store in
//! `sqlite/tests/conformance.rs`. [`compact`] is no macro: the runs and checks that a store
//! with a compact log (a step's completion and the next start in one row) runs in its own
//! `tests/compact_log.rs`, against a database of its own with the log plain and compact.
//! Nor is `crash` (with the `fault-injection` feature too): the harness of every durable
//! store's crash-at-every-commit-point suite, which crashes child processes; and [`side`], the
//! file of effects that outlives a killed process, which every such test reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // checks fail as tests do

pub mod compact;
#[cfg(feature = "fault-injection")]
pub mod crash;
pub mod durable;
mod forward;
pub mod machines;
pub mod queues;
pub mod replicas;
pub mod resume;
pub mod retention;
pub mod runs;
pub mod side;
pub mod takeover;

/// The tests of one group of checks: a module `$group` (the checks' own module name, or another
/// for a second flavour) with one test per check, each on a fresh subject made by `$make`;
/// `$flavor` is `[]`, or `[(...)]` with the arguments of `#[tokio::test]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_checks {
    ($group:ident, $make:expr, $flavor:tt: $($check:ident),+ $(,)?) => {
        mod $group {
            #[allow(unused_imports)]
            use super::*;

            $( $crate::__conformance_checks!(@test $group, $make, $flavor, $check); )+
        }
    };
    (@test $group:ident, $make:expr, [$($flavor:tt)*], $check:ident) => {
        #[::tokio::test $($flavor)*]
        async fn $check() {
            let subject = $make;
            $crate::__conformance_checks!(@call $group, $check, &subject);
        }
    };
    (@call machines_racing, $check:ident, $subject:expr) => {
        $crate::conformance::machines::$check($subject).await
    };
    (@call $group:ident, $check:ident, $subject:expr) => {
        $crate::conformance::$group::$check($subject).await
    };
}
