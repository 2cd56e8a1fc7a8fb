//! The engine's table of runs, split into shards by run id, so that the runs of one engine
//! share no lock: starting a run and its end each lock the one shard its id falls in, and
//! two runs contend only when their ids fall in the same shard at the same moment.
//!
//! An engine whose store does not keep finished runs keeps the last ones here, up to a count
//! and an age ([`Keep`]). The count is split between the shards, each dropping its own oldest
//! run beyond its share; a bound under `MIN_KEPT_PER_SHARD × 2` keeps a single shard, and so
//! the exact order of ends. The age is kept over the whole table: a run's end that finds the
//! oldest kept run anywhere past the age sweeps every shard.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use tokio::time::Instant;

use super::executor::Control;
use crate::runtime::definition::Name;
use crate::runtime::id::{IdMap, RunId};

mod done;

pub(crate) use done::Done;

/// Shards of an engine's table at most (a power of two).
const MAX_SHARDS: usize = 32;

/// Finished runs each shard keeps at least, when the engine keeps finished runs: a bound on
/// finished runs below twice this keeps one shard.
const MIN_KEPT_PER_SHARD: usize = 256;

/// How many finished runs, and for how long, an engine whose store does not keep them keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keep {
    pub(crate) runs: usize,
    pub(crate) age: Duration,
}

/// A run the engine knows: starting, running or finished. Its workflow's name is its
/// control's or, kept compactly, its definition's: not held here, which would make every kept
/// run's entry larger.
pub(crate) struct RunEntry {
    state: EntryState,
    /// Which of its shard's kept runs this is (0 until it is kept): a run kept later under
    /// the same id is another.
    stamp: u64,
}

/// How the table holds a run.
enum EntryState {
    /// By its control: while it runs, and once it has ended other than by completing (its
    /// error holds its report).
    Live(Arc<Control>),
    /// Completed, kept compactly: its control goes with its last handle.
    Done(Done),
}

impl RunEntry {
    /// A run about to start, under `control`.
    pub(crate) fn new(control: Arc<Control>) -> Self {
        RunEntry {
            state: EntryState::Live(control),
            stamp: 0,
        }
    }

    /// The run's workflow.
    pub(crate) fn workflow(&self) -> &Name {
        match &self.state {
            EntryState::Live(control) => &control.workflow,
            EntryState::Done(done) => done.workflow(),
        }
    }

    /// The run's control, if it has not ended.
    pub(crate) fn running(&self) -> Option<&Arc<Control>> {
        match &self.state {
            EntryState::Live(control) if control.outcome.get().is_none() => Some(control),
            _ => None,
        }
    }

    /// A control for a new handle on the run: its own, or, for a completed run kept
    /// compactly, one with its outcome (its report made again).
    pub(crate) fn control(&self) -> Arc<Control> {
        match &self.state {
            EntryState::Live(control) => Arc::clone(control),
            EntryState::Done(done) => done.control(),
        }
    }

    /// Whether this is the run `control` belongs to.
    fn is(&self, control: &Arc<Control>) -> bool {
        matches!(&self.state, EntryState::Live(own) if Arc::ptr_eq(own, control))
    }
}

/// A finished run a shard keeps, and since when.
struct Kept {
    run_id: RunId,
    /// When it ended, in nanoseconds since the table was made (see [`RunTable::nanos`]):
    /// its age is then a subtraction of integers.
    since: u64,
    /// The run's [`RunEntry::stamp`], to tell it from a later run under the same id.
    stamp: u64,
}

/// One shard: the runs whose ids fall in it, live and finished, and the finished ones it
/// keeps (by an engine whose store does not keep them), oldest first.
pub(crate) struct Shard {
    pub(crate) runs: IdMap<RunEntry>,
    finished: VecDeque<Kept>,
    /// This shard's share of the bound on finished runs.
    keep_runs: usize,
    /// The last stamp given to a kept run.
    stamps: u64,
}

impl Shard {
    /// Removes the run `run_id` if it is still the one `control` belongs to.
    pub(crate) fn remove(&mut self, run_id: &RunId, control: &Arc<Control>) -> bool {
        match self.runs.entry(run_id.clone()) {
            Entry::Occupied(entry) if entry.get().is(control) => {
                entry.remove();
                true
            }
            _ => false,
        }
    }

    /// Drops the oldest finished runs beyond the shard's share, and those older than `age`
    /// at `now` (both in nanoseconds since the table was made); puts the ids dropped in
    /// `dropped`.
    fn evict(&mut self, now: u64, age: u64, dropped: &mut Dropped) {
        while let Some(oldest) = self.finished.front() {
            let expired = now.saturating_sub(oldest.since) > age;
            if self.finished.len() <= self.keep_runs && !expired {
                break;
            }
            if let Some(oldest) = self.finished.pop_front()
                && let Entry::Occupied(entry) = self.runs.entry(oldest.run_id)
                && entry.get().stamp == oldest.stamp
            {
                let (run_id, _) = entry.remove_entry();
                dropped.push(run_id);
            }
        }
    }
}

/// The ids of runs a table dropped: one at most as a rule, so it costs no allocation then.
#[derive(Default)]
pub(crate) struct Dropped {
    first: Option<RunId>,
    more: Vec<RunId>,
}

impl Dropped {
    fn push(&mut self, run_id: RunId) {
        if self.first.is_none() {
            self.first = Some(run_id);
        } else {
            self.more.push(run_id);
        }
    }

    /// The ids dropped.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &RunId> {
        self.first.iter().chain(self.more.iter())
    }
}

/// The engine's runs: every live run, and the finished ones it keeps, in shards by run id.
pub(crate) struct RunTable {
    /// Each on a line of its own: a shard's lock and map are written by whichever core runs
    /// one of its runs, which would otherwise take its neighbours' lines from other cores.
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    /// `shards.len() - 1`.
    mask: usize,
    keep: Keep,
    /// Whether the store keeps finished runs: then a run is forgotten once it has ended.
    store_keeps_finished: bool,
    /// When the table was made: the origin of `oldest`.
    epoch: Instant,
    /// No kept run ended before this, in nanoseconds since `epoch` (a lower bound: a run's end
    /// may lower it; only a sweep of every shard raises it). `u64::MAX` while none is kept.
    oldest: AtomicU64,
}

impl RunTable {
    pub(crate) fn new(keep: Keep, store_keeps_finished: bool) -> Self {
        let shards = if store_keeps_finished {
            MAX_SHARDS
        } else {
            let wanted = (keep.runs / MIN_KEPT_PER_SHARD).clamp(1, MAX_SHARDS);
            1 << wanted.ilog2()
        };
        let shards: Box<[CachePadded<Mutex<Shard>>]> = (0..shards)
            .map(|i| {
                // The count split between the shards; the first ones take the remainder.
                let keep_runs = keep.runs / shards + usize::from(i < keep.runs % shards);
                CachePadded::new(Mutex::new(Shard {
                    runs: IdMap::default(),
                    finished: VecDeque::new(),
                    keep_runs,
                    stamps: 0,
                }))
            })
            .collect();
        Self {
            mask: shards.len() - 1,
            shards,
            keep,
            store_keeps_finished,
            epoch: Instant::now(),
            oldest: AtomicU64::new(u64::MAX),
        }
    }

    /// How many shards the table has.
    #[cfg(test)]
    pub(crate) fn shards(&self) -> usize {
        self.shards.len()
    }

    fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
        // Every write under a shard's lock is a single insert, remove or push, so a shard
        // behind a poisoned lock is still consistent.
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard `run_id` falls in, locked.
    pub(crate) fn shard(&self, run_id: &RunId) -> MutexGuard<'_, Shard> {
        let index = run_id.shard(self.mask);
        // `mask` is one less than the number of shards, so `index` is always in range.
        Self::lock(&self.shards[index])
    }

    /// Every shard, locked, in order (the only place that holds more than one).
    pub(crate) fn lock_all(&self) -> Vec<MutexGuard<'_, Shard>> {
        self.shards.iter().map(|shard| Self::lock(shard)).collect()
    }

    /// How many runs the table holds, live and finished.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).runs.len()).sum()
    }

    /// Whether the table holds the run `run_id`, live or finished.
    pub(crate) fn holds(&self, run_id: &RunId) -> bool {
        self.shard(run_id).runs.contains_key(run_id)
    }

    /// Removes the run `run_id` if it is still the one `control` belongs to.
    pub(crate) fn remove(&self, run_id: &RunId, control: &Arc<Control>) -> bool {
        self.shard(run_id).remove(run_id, control)
    }

    /// The run `run_id` has ended: the table forgets it if the store keeps it, or keeps it
    /// among the finished runs, dropping the oldest beyond the bound or the age. A run that
    /// completed is kept as `done` makes it (compactly), any other by its control. Returns
    /// the ids dropped, for the store to forget. `now` is when the run ended.
    pub(crate) fn ended(
        &self,
        run_id: &RunId,
        control: &Arc<Control>,
        now: Instant,
        done: impl FnOnce() -> Option<Done>,
    ) -> Dropped {
        let mut dropped = Dropped::default();
        if self.store_keeps_finished {
            self.remove(run_id, control);
            return dropped;
        }
        let since = self.nanos(now);
        let oldest = {
            let mut shard = self.shard(run_id);
            let stamp = shard.stamps + 1;
            let kept = match shard.runs.get_mut(run_id) {
                Some(entry) if entry.is(control) => {
                    entry.stamp = stamp;
                    if let Some(done) = done() {
                        entry.state = EntryState::Done(done);
                    }
                    true
                }
                _ => false,
            };
            if kept {
                shard.stamps = stamp;
                shard.finished.push_back(Kept {
                    run_id: run_id.clone(),
                    since,
                    stamp,
                });
            }
            shard.evict(since, self.age_nanos(), &mut dropped);
            // Under the shard's lock, so that a sweep sees either the run or this. A read as
            // a rule; a write only when no kept run is older.
            let oldest = self.oldest.load(Ordering::Relaxed);
            if oldest > since {
                self.oldest.fetch_min(since, Ordering::Relaxed);
            }
            oldest.min(since)
        };
        if since.saturating_sub(oldest) > self.age_nanos() {
            self.sweep(since, &mut dropped);
        }
        dropped
    }

    /// Drops every finished run older than the age, in every shard, and notes the oldest left.
    fn sweep(&self, now: u64, dropped: &mut Dropped) {
        // Ends from now on lower it again; the shards' oldest runs are added below.
        self.oldest.store(u64::MAX, Ordering::Relaxed);
        let mut oldest = u64::MAX;
        for shard in self.shards.iter() {
            let mut shard = Self::lock(shard);
            shard.evict(now, self.age_nanos(), dropped);
            if let Some(front) = shard.finished.front() {
                oldest = oldest.min(front.since);
            }
        }
        self.oldest.fetch_min(oldest, Ordering::Relaxed);
    }

    /// The age past which a finished run is dropped, in nanoseconds.
    fn age_nanos(&self) -> u64 {
        u64::try_from(self.keep.age.as_nanos()).unwrap_or(u64::MAX)
    }

    /// `at` in nanoseconds since the table was made.
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(runs: usize, age: Duration) -> RunTable {
        RunTable::new(Keep { runs, age }, false)
    }

    /// Starts and ends the run `id`; returns the ids the table dropped.
    fn run(table: &RunTable, id: &str) -> Vec<RunId> {
        let run_id = RunId::from(id);
        let control = Arc::new(Control::new(Name::from_static("W")));
        table
            .shard(&run_id)
            .runs
            .insert(run_id.clone(), RunEntry::new(Arc::clone(&control)));
        table
            .ended(&run_id, &control, Instant::now(), || None)
            .iter()
            .cloned()
            .collect()
    }

    #[test]
    fn no_two_shards_share_a_line_nor_does_the_engine_s_count_share_its_fields_line() {
        let table = table(10_000, Duration::from_secs(3_600));
        let lines: Vec<usize> = (0..table.shards())
            .map(|i| std::ptr::from_ref(&*table.shards[i]) as usize / 128)
            .collect();
        let mut distinct = lines.clone();
        distinct.dedup();
        assert_eq!(
            distinct, lines,
            "each shard's lock and map on lines of their own"
        );
        // The `Arc`s every run clones: their counts come before the data, which starts on
        // the next 128-byte line.
        assert!(std::mem::align_of::<crate::runtime::engine::Inner>() >= 128);
        assert!(std::mem::align_of::<crate::runtime::ErasedDefinition>() >= 128);
    }

    #[test]
    fn a_kept_run_s_entry_is_no_larger_than_its_state_and_stamp() {
        // Every kept run has a slot of the table's map (its id and this), and the map has up
        // to twice as many slots as runs: a word here is 16 bytes a kept run. The workflow's
        // name is the control's or the definition's, not a third copy here.
        assert_eq!(
            std::mem::size_of::<RunEntry>(),
            std::mem::size_of::<EntryState>() + std::mem::size_of::<u64>()
        );
        assert!(std::mem::size_of::<RunEntry>() <= 64);
    }

    #[test]
    fn a_small_bound_keeps_one_shard_and_the_exact_order() {
        let table = table(100, Duration::from_secs(3_600));
        assert_eq!(table.shards(), 1);
        for i in 0..100 {
            assert!(run(&table, &format!("r{i}")).is_empty());
        }
        // Each further end drops the oldest of all.
        for i in 100..150 {
            assert_eq!(
                run(&table, &format!("r{i}")),
                vec![RunId::from(format!("r{}", i - 100))]
            );
        }
        assert_eq!(table.len(), 100);
    }

    #[test]
    fn a_large_bound_is_split_between_the_shards_and_kept_over_all() {
        let table = table(10_000, Duration::from_secs(3_600));
        assert_eq!(table.shards(), MAX_SHARDS);
        let mut dropped = Vec::new();
        for i in 0..30_000 {
            dropped.extend(run(&table, &format!("run-{i}")));
            assert!(table.len() <= 10_000);
        }
        assert_eq!(table.len(), 10_000);
        assert_eq!(dropped.len(), 20_000);
        // Every shard drops its own oldest: none of the last runs is dropped, nor kept long
        // after its share of later runs has ended.
        let last: std::collections::HashSet<_> = (29_000..30_000)
            .map(|i| RunId::from(format!("run-{i}")))
            .collect();
        assert!(dropped.iter().all(|id| !last.contains(id)));
        let first: Vec<_> = (0..10_000)
            .map(|i| RunId::from(format!("run-{i}")))
            .collect();
        assert!(first.iter().all(|id| dropped.contains(id)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_past_the_age_is_dropped_whichever_shard_ends_a_run() {
        let table = table(10_000, Duration::from_secs(60));
        assert!(table.shards() > 1);
        let old = RunId::from("old");
        // A run that falls in another shard than `old`.
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|id| RunId::from(id.as_str()).shard(table.mask) != old.shard(table.mask))
            .expect("some id falls elsewhere");
        assert!(run(&table, "old").is_empty());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(run(&table, &other), vec![old]);
        assert_eq!(table.len(), 1);
    }
}
