//! How long `workflow!` takes to parse, check and expand a generated 1,000-step workflow.
//!
//! A proc-macro crate cannot be linked into a benchmark, so the macro's sources are compiled
//! into this one by path. They use only `proc_macro2`, which outside a compiler falls back on
//! its own token types: what is timed is the macro's own work (parse → model → validate →
//! expand), not rustc's proc-macro bridge nor the type checking of the expanded code.
//!
//! The workflow: a chain `s0 -> s1 -> ... -> s999`, written ten links per statement; every
//! tenth step also feeds the next tenth (`s0 -> s10`, `s10 -> s20`, ...), so 99 steps have two
//! inputs; 100 steps have options (retry, timeout, deadline, on_error); and workflow-wide
//! defaults.
//!
//! Run with `cargo bench --bench expand`; figures: `benches/README.md`.

#![allow(missing_docs)]

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use proc_macro2::TokenStream;

#[allow(dead_code, unreachable_pub)]
#[path = "../macros/src/dsl/mod.rs"]
mod dsl;

#[allow(dead_code, unreachable_pub)]
#[path = "../macros/src/workflow/mod.rs"]
mod workflow;

#[allow(dead_code)]
#[path = "shared/big_workflow.rs"]
mod big_workflow;

const STEPS: usize = 1_000;

/// The body of `workflow! { ... }` for the generated workflow.
fn source() -> String {
    big_workflow::source(STEPS)
}

fn tokens() -> TokenStream {
    source().parse().expect("the generated workflow tokenizes")
}

fn expansion(c: &mut Criterion) {
    let input = tokens();

    // Checked once: the workflow is valid, so the macro expanded it rather than reporting.
    let output = workflow::workflow(input.clone()).to_string();
    assert!(
        !output.contains("compile_error"),
        "the macro reported errors: {output}"
    );
    assert!(output.contains("__step_999"), "every step is expanded");

    let mut group = c.benchmark_group("workflow_macro");
    group.sample_size(20);
    group.bench_function("expand_1000_steps", |b| {
        b.iter_batched(|| input.clone(), workflow::workflow, BatchSize::SmallInput);
    });
    group.bench_function("tokenize_and_expand_1000_steps", |b| {
        let text = source();
        b.iter(|| workflow::workflow(text.parse().expect("tokenizes")));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = expansion
}
criterion_main!(benches);
