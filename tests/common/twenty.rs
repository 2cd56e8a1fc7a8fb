//! The 20-step workflow the crash tests kill and resume (`tests/crash.rs` on SQLite,
//! `tests/crash_postgres.rs` on PostgreSQL), and what they check of its effects. Every step
//! appends its name to a side file, in the directory a child process is given in [`CHILD`],
//! so the side file shows what ran and how often.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use sagaflow::prelude::*;

/// Set in a child process: the directory of its side file.
pub const CHILD: &str = "SAGAFLOW_CRASH_CHILD";
/// Set in a child process: the lease owner it runs as.
pub const OWNER: &str = "SAGAFLOW_CRASH_OWNER";
/// The workflow's steps.
pub const STEPS: usize = 20;

/// Appends the step's name to the side file: the effect whose repetitions the tests count.
fn effect(ctx: &StepContext) {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&dir).join("side.txt"))
        .unwrap();
    writeln!(file, "{}", ctx.step()).unwrap();
    file.sync_all().unwrap();
}

macro_rules! steps {
    ($first:ident $(, $name:ident)*) => {
        async fn $first(ctx: &StepContext) -> Result<u32, StepError> {
            effect(ctx);
            tokio::time::sleep(Duration::from_millis(25)).await;
            Ok(1)
        }
        $(
            async fn $name(ctx: &StepContext, n: &u32) -> Result<u32, StepError> {
                effect(ctx);
                tokio::time::sleep(Duration::from_millis(25)).await;
                Ok(n + 1)
            }
        )*
    };
}

steps!(
    s01, s02, s03, s04, s05, s06, s07, s08, s09, s10, s11, s12, s13, s14, s15, s16, s17, s18, s19,
    s20
);

workflow! {
    pub Twenty -> u32 {
        s01 -> s02 -> s03 -> s04 -> s05 -> s06 -> s07 -> s08 -> s09 -> s10;
        s10 -> s11 -> s12 -> s13 -> s14 -> s15 -> s16 -> s17 -> s18 -> s19 -> s20;
    }
}

/// The lines of the side file in `dir`.
pub use sagaflow_core::conformance::side::side_lines;

/// Every step ran once, or twice for at most one of them (the one a kill cut); returns the
/// one that ran twice.
pub fn each_step_once_but_the_one_cut(lines: &[String]) -> Option<String> {
    let mut twice = Vec::new();
    for i in 1..=STEPS {
        let name = format!("s{i:02}");
        let count = lines.iter().filter(|l| **l == name).count();
        assert!(count >= 1, "{name} never ran: {lines:?}");
        assert!(count <= 2, "{name} ran {count} times: {lines:?}");
        if count == 2 {
            twice.push(name);
        }
    }
    assert!(
        twice.len() <= 1,
        "only the step in flight at the kill may run twice, not {twice:?}"
    );
    twice.pop()
}

/// [`each_step_once_but_the_one_cut`], and completed steps never ran again: the lines are
/// the steps in order, with at most the cut one repeated right after the kill.
pub fn in_order_with_at_most_the_cut_step_again(lines: &[String]) {
    let names: Vec<String> = (1..=STEPS).map(|i| format!("s{i:02}")).collect();
    let mut expected = names.clone();
    if let Some(again) = each_step_once_but_the_one_cut(lines) {
        let at = names.iter().position(|n| *n == again).unwrap();
        expected.insert(at + 1, again);
    }
    assert_eq!(lines, expected, "completed steps never ran again");
}
