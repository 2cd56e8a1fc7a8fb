//! A nightly ETL as a `workflow!`: `extract` fans out to `clean` and `audit`, which fan in to
//! `load`. `extract` is flaky and succeeds on its third attempt; `audit` always fails, but it
//! is optional (`on_error = continue`), so `load` receives `None` for it and the run completes.
//!
//! Run it with `cargo run --example etl`.

use std::time::Duration;

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Rows(Vec<i64>);

#[derive(Debug, Serialize, Deserialize)]
struct Audit {
    negative: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Loaded {
    rows: usize,
    audited: bool,
}

/// Reads the day's rows from a source that is busy twice before it answers.
async fn extract(ctx: &StepContext, day: &u32) -> Result<Rows, StepError> {
    tokio::time::sleep(Duration::from_millis(40)).await;
    if ctx.attempt() < 3 {
        return Err(StepError::new(format!(
            "source busy (attempt {})",
            ctx.attempt()
        )));
    }
    Ok(Rows((0..i64::from(*day)).map(|i| i * 7 % 11 - 3).collect()))
}

fn has_rows(rows: &Rows) -> bool {
    !rows.0.is_empty()
}

/// Drops the negative rows.
async fn clean(_: &StepContext, rows: &Rows) -> Result<Rows, StepError> {
    tokio::time::sleep(Duration::from_millis(60)).await;
    Ok(Rows(rows.0.iter().copied().filter(|r| *r >= 0).collect()))
}

/// Asks an audit service that is down today.
async fn audit(_: &StepContext, _rows: &Rows) -> Result<Audit, StepError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Err(StepError::permanent("audit service unreachable"))
}

/// Writes the clean rows, with the audit if there is one.
async fn load(
    _: &StepContext,
    rows: Option<&Rows>,
    audit: Option<&Audit>,
) -> Result<Loaded, StepError> {
    tokio::time::sleep(Duration::from_millis(30)).await;
    Ok(Loaded {
        rows: rows.map_or(0, |r| r.0.len()),
        audited: audit.is_some(),
    })
}

sagaflow::workflow! {
    /// The nightly ETL.
    pub Etl(u32) -> Loaded {
        extract -> [clean, audit] -> load;
        extract: retry(max_attempts = 5, initial = 50ms, coefficient = 2.0), timeout = 2s;
        clean: when = has_rows;
        audit: on_error = continue;
        defaults: deadline = 30s;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::ephemeral();
    println!("{}", Etl::mermaid());
    let report = Etl::start(&engine, "etl-2026-11-21", 21)
        .await?
        .wait()
        .await?;
    println!("run {} of {}:", report.run_id, report.workflow);
    println!(
        "  {:<8} {:<10} {:>8} {:>9}  error",
        "step", "status", "attempts", "time"
    );
    for step in &report.steps {
        println!(
            "  {:<8} {:<10} {:>8} {:>9}  {}",
            step.name,
            format!("{:?}", step.status),
            step.attempts,
            step.duration
                .map_or_else(|| "-".to_owned(), |d| format!("{} ms", d.as_millis())),
            step.error
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
        );
    }
    println!(
        "loaded {} rows (audited: {})",
        report.output.rows, report.output.audited
    );
    Ok(())
}
