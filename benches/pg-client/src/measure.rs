//! The cells of the measurement (one contender doing one shape for a fixed time), the rounds
//! that alternate them, and the medians and ratios that come out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, LocalBoxFuture};

use crate::Result;
use crate::group::{self, BatchWriter};
use crate::schema::{CHECKPOINTS, INSERTS, SEQ_RUN};

/// What a cell writes per operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// BEGIN; upsert; update; COMMIT.
    Checkpoint,
    /// One INSERT, autocommit.
    Insert,
}

/// One operation of a contender on the run row it is given.
pub(crate) type Op = Arc<dyn Fn(Arc<str>) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// Wraps a contender's method as an [`Op`].
macro_rules! op {
    ($contender:expr, $method:ident) => {{
        let contender = ::std::sync::Arc::clone(&$contender);
        let op: $crate::measure::Op = ::std::sync::Arc::new(move |run: ::std::sync::Arc<str>| {
            let contender = ::std::sync::Arc::clone(&contender);
            ::std::boxed::Box::pin(async move { contender.$method(&run).await })
        });
        op
    }};
}
pub(crate) use op;

/// Operations done in a time, and for a group commit the transactions they took.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    pub(crate) batches: Option<u64>,
}

impl Sample {
    pub(crate) fn micros_per_op(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

pub(crate) trait Cell {
    fn label(&self) -> &str;
    fn shape(&self) -> Shape;
    fn run(&mut self, length: Duration) -> LocalBoxFuture<'_, Result<Sample>>;
}

/// One caller, one operation after the other.
pub(crate) struct Sequential {
    pub(crate) label: String,
    pub(crate) shape: Shape,
    pub(crate) op: Op,
}

impl Cell for Sequential {
    fn label(&self) -> &str {
        &self.label
    }
    fn shape(&self) -> Shape {
        self.shape
    }
    fn run(&mut self, length: Duration) -> LocalBoxFuture<'_, Result<Sample>> {
        Box::pin(async move {
            let run: Arc<str> = Arc::from(SEQ_RUN);
            let start = Instant::now();
            let mut ops = 0;
            while start.elapsed() < length {
                (self.op)(Arc::clone(&run)).await?;
                ops += 1;
            }
            Ok(Sample {
                ops,
                elapsed: start.elapsed(),
                batches: None,
            })
        })
    }
}

/// `tasks` tasks, each doing the operation on its own run row again and again.
pub(crate) struct Concurrent {
    pub(crate) label: String,
    pub(crate) shape: Shape,
    pub(crate) op: Op,
    pub(crate) tasks: usize,
}

impl Cell for Concurrent {
    fn label(&self) -> &str {
        &self.label
    }
    fn shape(&self) -> Shape {
        self.shape
    }
    fn run(&mut self, length: Duration) -> LocalBoxFuture<'_, Result<Sample>> {
        Box::pin(async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..self.tasks)
                .map(|i| {
                    let op = Arc::clone(&self.op);
                    tokio::spawn(async move {
                        let run: Arc<str> = Arc::from(format!("c{i}"));
                        let mut ops = 0_u64;
                        while start.elapsed() < length {
                            op(Arc::clone(&run)).await?;
                            ops += 1;
                        }
                        Result::Ok(ops)
                    })
                })
                .collect();
            let mut ops = 0;
            for task in tasks {
                ops += task.await??;
            }
            Ok(Sample {
                ops,
                elapsed: start.elapsed(),
                batches: None,
            })
        })
    }
}

/// 100 tasks handing their checkpoints to one group-commit writer.
pub(crate) struct Group<W> {
    pub(crate) label: String,
    pub(crate) writer: W,
    pub(crate) tasks: usize,
}

impl<W: BatchWriter> Cell for Group<W> {
    fn label(&self) -> &str {
        &self.label
    }
    fn shape(&self) -> Shape {
        Shape::Checkpoint
    }
    fn run(&mut self, length: Duration) -> LocalBoxFuture<'_, Result<Sample>> {
        Box::pin(async move {
            let run = group::run(&mut self.writer, self.tasks, length).await?;
            Ok(Sample {
                ops: run.commits,
                elapsed: run.elapsed,
                batches: Some(run.batches),
            })
        })
    }
}

/// Each cell once for `warmup` (not kept), then `rounds` rounds of every cell for `length`,
/// each round starting one cell further on, so that no contender always runs first or after
/// the same neighbour. Returns `samples[cell][round]`.
pub(crate) async fn rounds(
    cells: &mut [Box<dyn Cell>],
    rounds: usize,
    length: Duration,
    warmup: Duration,
) -> Result<Vec<Vec<Sample>>> {
    for cell in cells.iter_mut() {
        let sample = cell.run(warmup).await?;
        count(cell.shape(), sample.ops);
    }
    let mut samples = vec![Vec::with_capacity(rounds); cells.len()];
    for round in 0..rounds {
        for k in 0..cells.len() {
            let i = (round + k) % cells.len();
            let sample = cells[i].run(length).await?;
            count(cells[i].shape(), sample.ops);
            samples[i].push(sample);
        }
        eprintln!("  round {}/{rounds} done", round + 1);
    }
    Ok(samples)
}

fn count(shape: Shape, ops: u64) {
    match shape {
        Shape::Checkpoint => CHECKPOINTS.fetch_add(ops, Ordering::Relaxed),
        Shape::Insert => INSERTS.fetch_add(ops, Ordering::Relaxed),
    };
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The unit of a table: latency (lower is better) or throughput (higher is better).
#[derive(Clone, Copy)]
pub(crate) enum Unit {
    MicrosPerTx,
    TxPerSec,
}

impl Unit {
    fn of(self, sample: &Sample) -> f64 {
        match self {
            Unit::MicrosPerTx => sample.micros_per_op(),
            Unit::TxPerSec => sample.ops_per_sec(),
        }
    }
    fn header(self) -> &'static str {
        match self {
            Unit::MicrosPerTx => "µs per transaction, median (min–max)",
            Unit::TxPerSec => "transactions/s, median (min–max)",
        }
    }
}

fn fmt(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// A markdown table of `rows` (cell indices), with each row's ratio to the row `reference`:
/// the median over the rounds of the two cells' ratio within the same round. `extra` rows (a
/// label and one figure, e.g. pgbench's) are compared with the reference's median.
pub(crate) fn table(
    title: &str,
    unit: Unit,
    labels: &[String],
    samples: &[Vec<Sample>],
    rows: &[usize],
    reference: usize,
    extra: &[(String, f64)],
) -> String {
    let mut out = format!(
        "**{title}**\n\n| contender | {} | ratio to {} (same-round median) | transactions per commit |\n| --- | --- | --- | --- |\n",
        unit.header(),
        labels[reference]
    );
    let reference_values: Vec<f64> = samples[reference].iter().map(|s| unit.of(s)).collect();
    for &row in rows {
        let values: Vec<f64> = samples[row].iter().map(|s| unit.of(s)).collect();
        let ratios: Vec<f64> = values
            .iter()
            .zip(&reference_values)
            .map(|(v, r)| v / r)
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let per_commit = samples[row]
            .iter()
            .filter_map(|s| s.batches.map(|b| s.ops as f64 / b.max(1) as f64))
            .collect::<Vec<_>>();
        let per_commit = if per_commit.is_empty() {
            "1".to_owned()
        } else {
            format!("{:.1}", median(per_commit))
        };
        out += &format!(
            "| {} | **{}** ({}–{}) | {:.2}× | {per_commit} |\n",
            labels[row],
            fmt(median(values)),
            fmt(lo),
            fmt(hi),
            median(ratios),
        );
    }
    let reference_median = median(reference_values);
    for (label, value) in extra {
        out += &format!(
            "| {label} | **{}** (one run) | {:.2}× | 1 |\n",
            fmt(*value),
            value / reference_median
        );
    }
    out
}
