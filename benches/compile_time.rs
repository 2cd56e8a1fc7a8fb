//! How long `cargo check` takes on a crate holding one generated `workflow!` of 100 to 1,000
//! steps: the macro's expansion and, above all, rustc type-checking what it expanded to.
//!
//! For each size, a scratch crate is written under the target directory
//! (`$CARGO_TARGET_DIR/compile-time/steps_N`, else `target/compile-time/`), outside the
//! workspace, with a path dependency on this repository's `sagaflow`. It is checked once (which
//! checks the dependencies too), then its `src/lib.rs` is touched and it is checked again, five
//! times: only the scratch crate is recompiled; the median and the fastest of the five are
//! reported. The
//! scratch crates share one target directory of their own, so the dependencies are checked once
//! for all of them and the workspace's target directory is not locked while this runs.
//!
//! The workflow is the one `benches/expand.rs` expands (`benches/shared/big_workflow.rs`), with
//! N steps: a chain, one step in ten with a second input, one in ten with options (one of
//! those in four with `on_error = continue`, which makes the next step's input optional).
//! Every step is a real `async fn` that adds its inputs.
//!
//! `SAGAFLOW_DIR=/path/to/another/checkout` measures that checkout's `sagaflow` instead of
//! this one (for a figure before a change: `git worktree add /tmp/before <commit>`).
//!
//! Run with `cargo bench --bench compile_time` (about 2 minutes, more the first time), or
//! `cargo bench --bench compile_time -- 100 1000` for some sizes only; figures:
//! `benches/README.md`. Not part of CI.

#![allow(missing_docs)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SIZES: [usize; 4] = [100, 250, 500, 1_000];
const RUNS: usize = 5;

#[path = "shared/big_workflow.rs"]
mod big_workflow;

use big_workflow::{continues, has_second_input};

/// The scratch crate's `src/lib.rs`: the step functions and the workflow.
fn source(steps: usize) -> String {
    let mut s = String::from(
        "//! A generated workflow, for `benches/compile_time.rs`.\n\n\
         #![allow(dead_code)]\n\nuse sagaflow::prelude::*;\n\n",
    );
    for i in 0..steps {
        let optional = i > 0 && continues(i - 1);
        let (first, value) = if optional {
            ("x: Option<&u64>", "x.copied().unwrap_or(0)")
        } else {
            ("x: &u64", "*x")
        };
        let (second, add) = if has_second_input(i) {
            (", y: &u64", "y")
        } else {
            ("", "1")
        };
        let _ = writeln!(
            s,
            "async fn s{i}(_: &StepContext, {first}{second}) -> Result<u64, StepError> {{ Ok({value} + {add}) }}"
        );
    }
    let _ = write!(s, "\nworkflow! {{\n{}}}\n", big_workflow::source(steps));
    s
}

fn write_crate(dir: &Path, repo: &Path, steps: usize) {
    std::fs::create_dir_all(dir.join("src")).expect("the scratch directory can be made");
    let manifest = format!(
        "[package]\nname = \"steps_{steps}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nsagaflow = {{ path = {:?} }}\n\n[workspace]\n",
        repo.display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("the manifest can be written");
    std::fs::write(dir.join("src/lib.rs"), source(steps)).expect("the source can be written");
}

fn check(dir: &Path, target: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["check", "--quiet", "-j2"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_INCREMENTAL", "0")
        .status()
        .expect("cargo runs");
    let elapsed = started.elapsed();
    assert!(
        status.success(),
        "`cargo check` failed in {}",
        dir.display()
    );
    elapsed
}

fn touch(file: &Path) {
    let text = std::fs::read(file).expect("the source can be read");
    std::fs::write(file, text).expect("the source can be touched");
}

fn main() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = std::env::var_os("SAGAFLOW_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.clone());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("target"));
    let root = target.join("compile-time");
    let scratch_target = root.join("target");
    // `cargo bench` passes `--bench`; any other argument that is a number is a size.
    let asked: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes: Vec<usize> = if asked.is_empty() {
        SIZES.to_vec()
    } else {
        asked
    };
    println!("`sagaflow` at {}", repo.display());
    println!("| steps | `cargo check`, median of {RUNS} | fastest | median per step | each run |");
    println!("| --- | --- | --- | --- | --- |");
    for steps in sizes {
        assert!(steps >= 20, "a workflow of at least 20 steps");
        let dir = root.join(format!("steps_{steps}"));
        write_crate(&dir, &repo, steps);
        check(&dir, &scratch_target);
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                touch(&dir.join("src/lib.rs"));
                check(&dir, &scratch_target)
            })
            .collect();
        let each: Vec<String> = times
            .iter()
            .map(|t| format!("{:.2}", t.as_secs_f64()))
            .collect();
        times.sort();
        let median = times[RUNS / 2].as_secs_f64();
        println!(
            "| {steps} | {median:.2} s | {:.2} s | {:.2} ms | {} s |",
            times[0].as_secs_f64(),
            median * 1000.0 / steps as f64,
            each.join(", ")
        );
    }
}
