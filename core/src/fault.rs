//! Crash points for tests (the `fault-injection` feature; never in a build that ships).
//!
//! A test process started with `SAGAFLOW_CRASH_AT=<point>:<n>` aborts the `n`-th time it
//! reaches `<point>`: no destructor runs, nothing is flushed, as with `kill -9`. The points:
//!
//! - `before-commit`: the writer has applied a batch and is about to commit it;
//! - `after-commit`: the batch is committed, and no caller has heard so yet;
//! - `after-effect`: a step's function returned, and its checkpoint is not yet written.
//!
//! With `SAGAFLOW_RUN_TWICE=1`, every step (compensations included) runs twice on purpose,
//! its second output kept: the idempotency test mode, which shows that a run's outcome does
//! not depend on a step having run only once.
//!
//! Walking `n` over every value a run reaches, for each point, crashes a run at every commit
//! point it has; the tests that do are `sqlite/tests/faults.rs` and `saga/tests/faults.rs`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms a crash point.
pub const CRASH_AT: &str = "SAGAFLOW_CRASH_AT";

/// A place where a test may crash the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Before the writer commits a batch.
    BeforeCommit,
    /// After the writer committed a batch, before it acknowledges it.
    AfterCommit,
    /// After a step's function returned, before its checkpoint.
    AfterEffect,
}

impl Point {
    /// Every point.
    pub const ALL: [Point; 3] = [Point::BeforeCommit, Point::AfterCommit, Point::AfterEffect];

    /// The point's name in [`CRASH_AT`].
    pub fn as_str(self) -> &'static str {
        match self {
            Point::BeforeCommit => "before-commit",
            Point::AfterCommit => "after-commit",
            Point::AfterEffect => "after-effect",
        }
    }

    fn index(self) -> usize {
        match self {
            Point::BeforeCommit => 0,
            Point::AfterCommit => 1,
            Point::AfterEffect => 2,
        }
    }
}

static PLAN: OnceLock<Option<(Point, u64)>> = OnceLock::new();
static REACHED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn plan() -> Option<(Point, u64)> {
    *PLAN.get_or_init(|| {
        let value = std::env::var(CRASH_AT).ok()?;
        let (name, n) = value.split_once(':')?;
        let point = Point::ALL.into_iter().find(|p| p.as_str() == name)?;
        Some((point, n.parse().ok()?))
    })
}

/// The environment variable that turns on the idempotency test mode.
pub const RUN_TWICE: &str = "SAGAFLOW_RUN_TWICE";

/// Whether every step runs twice ([`RUN_TWICE`] is set to `1`).
pub fn twice() -> bool {
    static TWICE: OnceLock<bool> = OnceLock::new();
    *TWICE.get_or_init(|| std::env::var(RUN_TWICE).is_ok_and(|v| v == "1"))
}

/// How many times this process reached `point`.
pub fn reached(point: Point) -> u64 {
    REACHED[point.index()].load(Ordering::SeqCst)
}

/// Marks that `point` is reached; aborts the process if this is the armed one. Called by the
/// engine and by the stores at their commit points.
pub fn hit(point: Point) {
    let n = REACHED[point.index()].fetch_add(1, Ordering::SeqCst) + 1;
    if plan() == Some((point, n)) {
        eprintln!("sagaflow: crash injected at {} #{n}", point.as_str());
        std::process::abort();
    }
}
