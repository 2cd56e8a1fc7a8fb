//! The generated workflow that `expand.rs` and `compile_time.rs` both measure: the chain
//! `s0 -> ... -> sN-1`, written ten links per statement; every tenth step also feeds the next
//! tenth (`s0 -> s10`, `s10 -> s20`, ...), so about one step in ten has two inputs; one step in
//! ten has options (retry, timeout, deadline, on_error); and workflow-wide defaults.

use std::fmt::Write as _;

/// The options of step `i`, when it has any: every tenth step from `s5`, in turn.
fn options(i: usize) -> Option<&'static str> {
    if i % 10 != 5 {
        return None;
    }
    Some(match (i / 10) % 4 {
        0 => {
            "retry(max_attempts = 5, initial = 100ms, coefficient = 2.0, max = 10s), timeout = 30s"
        }
        1 => "timeout = 2s, deadline = 1m",
        2 => "retry(max_attempts = 3, initial = 10ms, jitter = 0.2), on_error = continue",
        _ => "retry(initial = 1s), timeout = 500ms, deadline = 5m",
    })
}

/// Whether step `i` sets `on_error = continue`, so that its dependent takes `Option<&u64>`.
pub(crate) fn continues(i: usize) -> bool {
    options(i).is_some_and(|o| o.contains("on_error = continue"))
}

/// Whether step `i` has a second input, from step `i - 10`.
pub(crate) fn has_second_input(i: usize) -> bool {
    i >= 10 && i.is_multiple_of(10)
}

/// The body of `workflow! { ... }` for a workflow of `steps` steps (at least 11).
pub(crate) fn source(steps: usize) -> String {
    let mut s = String::from("/// A generated workflow.\npub Big(u64) -> u64 {\n");
    for start in (0..steps - 1).step_by(10) {
        let end = (start + 10).min(steps - 1);
        let links: Vec<String> = (start..=end).map(|i| format!("s{i}")).collect();
        let _ = writeln!(s, "    {};", links.join(" -> "));
    }
    for i in (0..steps - 10).step_by(10) {
        let _ = writeln!(s, "    s{i} -> s{};", i + 10);
    }
    for i in 0..steps {
        if let Some(options) = options(i) {
            let _ = writeln!(s, "    s{i}: {options};");
        }
    }
    s.push_str("    defaults: deadline = 1h;\n}\n");
    s
}
