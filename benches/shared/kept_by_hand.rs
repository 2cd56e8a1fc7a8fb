//! The tokio baseline's chain plus, written by hand, what a sagaflow run on
//! `Engine::ephemeral()` keeps and gives back:
//!
//! - The run's id, checked and entered in a table before the steps run. A second start of
//!   that id gets the first run's outcome.
//! - Each step's duration, read from one clock read a step (the previous step's end is the
//!   next one's start, as the engine carries it).
//! - A report of the steps (name and duration) and the output.
//! - The last [`KEEP`] finished runs, each kept with its report and output, the oldest dropped
//!   beyond that.
//!
//! This is the cost of what a run promises, done the plain way, one `Mutex` around a
//! `HashMap` and a `VecDeque` (foldhash, as the engine's table). The `engine` bench sets
//! sagaflow beside it as well as beside the bare chain: the bare chain promises none of it.
//! The chain runs either as the bare baseline's, a task a step (`tokio_kept`), or with its
//! steps awaited in the caller's task (`tokio_kept_inline`): the promises alone, without the
//! spawns.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Finished runs kept, as `Engine::ephemeral()` keeps by default.
pub(crate) const KEEP: usize = 10_000;

/// One step as the report gives it.
#[derive(Clone, Debug)]
pub(crate) struct StepEnd {
    pub(crate) name: Arc<str>,
    pub(crate) duration: Duration,
}

/// A finished run: its output and its steps.
#[derive(Clone, Debug)]
pub(crate) struct Finished {
    pub(crate) output: Arc<u64>,
    pub(crate) steps: Arc<[StepEnd]>,
}

enum Run {
    Running,
    Finished(Finished),
}

#[derive(Default)]
struct Table {
    runs: HashMap<Arc<str>, Run, foldhash::quality::RandomState>,
    finished: VecDeque<Arc<str>>,
}

/// The runs of one "engine": the table of ids, the finished runs kept.
#[derive(Default)]
pub(crate) struct Runs {
    table: Mutex<Table>,
}

/// The chain's step names, `s0` to `s(n-1)`.
pub(crate) fn names(n: usize) -> Vec<Arc<str>> {
    (0..n).map(|i| Arc::from(format!("s{i}"))).collect()
}

/// Runs the chain of `names.len()` steps, `x + 1` each, under `id` (a task a step, or, when
/// `inline`, in the caller's task); or, if `id` is in the table, gives back what its run left
/// (`None` while that run goes on).
pub(crate) async fn run(
    runs: &Runs,
    names: &[Arc<str>],
    id: Arc<str>,
    inline: bool,
) -> Option<Finished> {
    {
        let mut table = runs.table.lock().expect("not poisoned");
        match table.runs.entry(Arc::clone(&id)) {
            Entry::Occupied(run) => {
                return match run.get() {
                    Run::Finished(finished) => Some(finished.clone()),
                    Run::Running => None,
                };
            }
            Entry::Vacant(slot) => {
                slot.insert(Run::Running);
            }
        }
    }
    let (output, ends) = if inline {
        chain_inline(names.len()).await
    } else {
        chain_spawned(names.len()).await
    };
    finish(runs, names, id, output, &ends)
}

/// The chain's steps awaited one after the other in the caller's task, as a sequential
/// `async fn` runs them: its output and the steps' ends, the start first.
async fn chain_inline(n: usize) -> (u64, Vec<Instant>) {
    let mut ends = Vec::with_capacity(n + 1);
    ends.push(Instant::now());
    let mut x = 0;
    for _ in 0..n {
        x = step(x).await.expect("the steps succeed");
        ends.push(Instant::now());
    }
    (x, ends)
}

/// A step as an `async fn`, called inline.
async fn step(x: u64) -> Result<u64, sagaflow::StepError> {
    super::inc(x)
}

/// The chain with a task per step, as the bare baseline runs it: its output and the steps'
/// ends, the start first.
async fn chain_spawned(n: usize) -> (u64, Vec<Instant>) {
    // Each task passes its output and the steps' ends so far to the next.
    let began = Instant::now();
    let mut ends = Vec::with_capacity(n + 1);
    ends.push(began);
    let mut last = tokio::spawn(async move {
        let x = super::inc(0)?;
        ends.push(Instant::now());
        Ok::<_, sagaflow::StepError>((x, ends))
    });
    for _ in 1..n {
        let upstream = last;
        last = tokio::spawn(async move {
            let (x, mut ends) = upstream.await.expect("joined")?;
            let x = super::inc(x)?;
            ends.push(Instant::now());
            Ok((x, ends))
        });
    }
    last.await.expect("joined").expect("the steps succeed")
}

/// Reports the run `id` finished with `output`, its steps ended at `ends` (after the start),
/// and keeps it, dropping the oldest beyond [`KEEP`].
fn finish(
    runs: &Runs,
    names: &[Arc<str>],
    id: Arc<str>,
    output: u64,
    ends: &[Instant],
) -> Option<Finished> {
    let steps: Arc<[StepEnd]> = names
        .iter()
        .zip(ends.windows(2))
        .map(|(name, ends)| StepEnd {
            name: Arc::clone(name),
            duration: ends[1].saturating_duration_since(ends[0]),
        })
        .collect();
    let finished = Finished {
        output: Arc::new(output),
        steps,
    };
    let mut table = runs.table.lock().expect("not poisoned");
    if let Some(run) = table.runs.get_mut(&id) {
        *run = Run::Finished(finished.clone());
    }
    table.finished.push_back(id);
    while table.finished.len() > KEEP {
        if let Some(oldest) = table.finished.pop_front() {
            table.runs.remove(&oldest);
        }
    }
    Some(finished)
}
