//! Resident memory of one engine over many runs, one after another: does it grow with the runs
//! the engine has finished? `cargo bench --bench memory` (Linux: reads `/proc/self/statm`).
//!
//! Two engines, each in a process of its own (this binary runs itself again for each, so one
//! engine's allocations do not colour the other's figures): `Engine::ephemeral()`, and
//! `Engine::open_with` on a file with `synchronous = NORMAL` (FULL would only make the run
//! longer: what the engine holds is the same). Every run is a one-step workflow with a fresh
//! id; the resident set size is printed after 1,000, 100,000 and 1,000,000 runs
//! (`SAGAFLOW_MEMORY_RUNS` sets the last).

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark that cannot unwrap has failed

use std::process::Command;
use std::time::Instant;

use sagaflow::prelude::*;
use sagaflow::{SqliteOptions, Synchronous};

async fn one(_: &StepContext, x: &u64) -> Result<u64, StepError> {
    Ok(x + 1)
}

workflow! {
    One(u64) -> u64 {
        one;
    }
}

/// Resident memory in MB, from `/proc/self/statm` (pages × the page size, 4 KiB here).
fn resident_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

fn measure(kind: &str, runs: u64) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = match kind {
            "ephemeral" => Engine::ephemeral(),
            _ => Engine::open_with(
                dir.path().join("memory.db"),
                SqliteOptions::default().synchronous(Synchronous::Normal),
            )
            .unwrap(),
        };
        let kind = kind.to_owned();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let checkpoints = [1_000, 100_000, runs];
            let base = resident_mb();
            println!("{kind:>9}: {:>9} runs  {base:>7.1} MB resident", 0);
            for i in 0..runs {
                let report = One::start(&engine, format!("run-{i}"), i)
                    .await
                    .unwrap()
                    .wait()
                    .await
                    .unwrap();
                assert_eq!(*report.output, i + 1);
                if checkpoints.contains(&(i + 1)) {
                    println!(
                        "{kind:>9}: {:>9} runs  {:>7.1} MB resident  {:>6} runs held  {:>6.1} s",
                        i + 1,
                        resident_mb(),
                        engine.runs_in_memory(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
        task.await.unwrap();
    });
}

fn main() {
    let runs: u64 = std::env::var("SAGAFLOW_MEMORY_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    if let Ok(kind) = std::env::var("SAGAFLOW_MEMORY_KIND") {
        measure(&kind, runs);
        return;
    }
    // `cargo bench` passes `--bench`; each engine runs in a child process of its own.
    for kind in ["ephemeral", "sqlite"] {
        let status = Command::new(std::env::current_exe().unwrap())
            .env("SAGAFLOW_MEMORY_KIND", kind)
            .env("SAGAFLOW_MEMORY_RUNS", runs.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "{kind}: {status}");
    }
}
