//! `sagaflow stats`: success rates and duration percentiles, per workflow and per step.
//!
//! A run's duration is from its creation to its end (finished runs only); a step's, from its
//! first attempt's start to its end, retries included (finished steps only). Percentiles are
//! nearest-rank. A success rate is over what finished: completed / (completed + failed +
//! cancelled) for runs, completed / (completed + failed) for steps.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde_json::{Value, json};

use crate::commands::Out;
use crate::db::Db;
use crate::error::CliError;
use crate::render::{self, Paint, Table, cell};

/// The nearest-rank `p`th percentile of sorted `values`.
fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1)
        .unwrap_or(usize::MAX)
        .min(sorted.len() - 1);
    sorted.get(index).copied()
}

#[derive(Default)]
struct Tally {
    total: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    skipped: u64,
    running: u64,
    attempts: u64,
    durations: Vec<i64>,
}

impl Tally {
    fn rate(&self) -> Option<f64> {
        let finished = self.completed + self.failed + self.cancelled;
        (finished > 0).then(|| self.completed as f64 / finished as f64)
    }

    fn json(&mut self) -> Value {
        self.durations.sort_unstable();
        json!({
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "skipped": self.skipped,
            "running": self.running,
            "success_rate": self.rate(),
            "mean_attempts": (self.total > 0).then(|| self.attempts as f64 / self.total as f64),
            "p50_ms": percentile(&self.durations, 50),
            "p90_ms": percentile(&self.durations, 90),
            "p99_ms": percentile(&self.durations, 99),
            "max_ms": self.durations.last(),
        })
    }

    fn cells(&mut self) -> Vec<(String, Paint)> {
        self.durations.sort_unstable();
        let d = |p| {
            percentile(&self.durations, p)
                .map(render::duration)
                .unwrap_or_else(|| "-".to_owned())
        };
        let rate = self.rate();
        let paint = match rate {
            Some(r) if r >= 0.99 => Paint::Green,
            Some(r) if r < 0.9 => Paint::Red,
            Some(_) => Paint::Yellow,
            None => Paint::Plain,
        };
        vec![
            (
                rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
                paint,
            ),
            cell(d(50)),
            cell(d(90)),
            cell(d(99)),
            cell(
                self.durations
                    .last()
                    .map_or_else(|| "-".to_owned(), |m| render::duration(*m)),
            ),
        ]
    }
}

/// `sagaflow stats [--workflow W]`.
pub(crate) async fn stats(
    db: &Db,
    workflow: Option<&str>,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let runs = db.runs().await?;
    let mut by_workflow: BTreeMap<String, Tally> = BTreeMap::new();
    let mut workflow_of = HashMap::new();
    for run in &runs {
        if workflow.is_some_and(|wanted| wanted != run.workflow) {
            continue;
        }
        workflow_of.insert(run.run_id.as_str(), run.workflow.as_str());
        let tally = by_workflow.entry(run.workflow.clone()).or_default();
        tally.total += 1;
        match run.status.as_str() {
            "completed" => tally.completed += 1,
            "failed" => tally.failed += 1,
            "cancelled" => tally.cancelled += 1,
            _ => tally.running += 1,
        }
        if run.finished() {
            tally
                .durations
                .push((run.updated_at - run.created_at).max(0));
        }
    }
    // Steps in the order they were first seen (their declaration order, mostly).
    let mut by_step: Vec<((String, String), Tally)> = Vec::new();
    let mut step_index: HashMap<(String, String), usize> = HashMap::new();
    for (run_id, step) in db.all_steps().await? {
        let Some(workflow) = workflow_of.get(run_id.as_str()) else {
            continue;
        };
        if step.name.starts_with('~') {
            continue; // a saga round's bookkeeping step
        }
        let key = ((*workflow).to_owned(), step.name.clone());
        let index = *step_index.entry(key.clone()).or_insert_with(|| {
            by_step.push((key, Tally::default()));
            by_step.len() - 1
        });
        let Some((_, tally)) = by_step.get_mut(index) else {
            continue;
        };
        tally.total += 1;
        tally.attempts += u64::from(step.attempts);
        match step.status.as_str() {
            "completed" => tally.completed += 1,
            "failed" => tally.failed += 1,
            "skipped" => tally.skipped += 1,
            _ => tally.running += 1,
        }
        if let Some(d) = step.duration_ms() {
            tally.durations.push(d);
        }
    }
    // Grouped by workflow; a stable sort keeps each workflow's steps in first-seen order.
    by_step.sort_by(|a, b| a.0.0.cmp(&b.0.0));
    if out.json {
        let workflows: Vec<Value> = by_workflow
            .iter_mut()
            .map(|(name, t)| {
                let mut v = t.json();
                v["workflow"] = json!(name);
                v
            })
            .collect();
        let steps: Vec<Value> = by_step
            .iter_mut()
            .map(|((wf, step), t)| {
                let mut v = t.json();
                v["workflow"] = json!(wf);
                v["step"] = json!(step);
                v
            })
            .collect();
        return render::json(w, &json!({"workflows": workflows, "steps": steps}));
    }
    if by_workflow.is_empty() {
        match workflow {
            Some(name) => writeln!(w, "no runs of workflow `{name}`")?,
            None => writeln!(w, "no runs")?,
        }
        return Ok(());
    }
    let mut table = Table::new(vec![
        "WORKFLOW",
        "RUNS",
        "OK",
        "FAILED",
        "CANCELLED",
        "RUNNING",
        "SUCCESS",
        "P50",
        "P90",
        "P99",
        "MAX",
    ]);
    for (name, t) in &mut by_workflow {
        let mut row = vec![
            cell(name.clone()),
            cell(t.total.to_string()),
            cell(t.completed.to_string()),
            cell(t.failed.to_string()),
            cell(t.cancelled.to_string()),
            cell(t.running.to_string()),
        ];
        row.extend(t.cells());
        table.row(row);
    }
    table.print(w, out.colour)?;
    writeln!(w)?;
    let mut table = Table::new(vec![
        "WORKFLOW", "STEP", "RUNS", "OK", "FAILED", "SKIPPED", "ATTEMPTS", "SUCCESS", "P50", "P90",
        "P99", "MAX",
    ]);
    for ((wf, step), t) in &mut by_step {
        let mean = t.attempts as f64 / t.total.max(1) as f64;
        let mut row = vec![
            cell(wf.clone()),
            cell(step.clone()),
            cell(t.total.to_string()),
            cell(t.completed.to_string()),
            cell(t.failed.to_string()),
            cell(t.skipped.to_string()),
            cell(format!("{mean:.2}")),
        ];
        row.extend(t.cells());
        table.row(row);
    }
    table.print(w, out.colour)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&v, 99), Some(10));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
