//! Retention: which finished runs a policy deletes, and deleting them in bounded batches, on
//! any store with the [`Retention`](crate::runtime::Retention) capability. `sagaflow prune` and an engine's automatic
//! policy ([`EngineBuilder::retention`](crate::runtime::EngineBuilder::retention)) both go
//! through here.
//!
//! # What a policy deletes
//!
//! A finished run (completed, failed or cancelled: never a running or parked one) of the
//! policy's statuses that finished longer ago than [`older_than`](RetentionPolicy::older_than)
//! and is not among the newest [`keep`](RetentionPolicy::keep) of those statuses, with its
//! steps, events (step outputs included) and signals. A saga's run goes together with its
//! compensation rounds (runs `RUN~undoN`, see [`round_id`]), in one transaction, and only once
//! its compensation needs none of them:
//!
//! - a completed run has no rounds (a saga that completed compensated nothing);
//! - a failed or cancelled run with rounds goes once its latest round completed (the saga was
//!   compensated, or abandoned by an operator); while a round runs, or the latest failed (the
//!   saga is stuck and waits for an operator), the run and its rounds stay;
//! - a failed or cancelled run with no round yet is kept if its workflow is a saga's, since the
//!   saga still has to compensate it (`recover` starts its first round after a crash): a
//!   workflow is a saga's if the policy names it ([`saga`](RetentionPolicy::saga); a saga
//!   registered on an engine, or started on it, is named on that engine's policy by itself) or
//!   if the store holds a compensation round of it. A saga that never compensated anything yet,
//!   whose first failure's round a crash kept from starting, is recognised only by name.
//! - a round is never deleted on its own: it goes with its run.
//!
//! # Batches
//!
//! Each batch deletes at most [`batch`](RetentionPolicy::batch) runs (with their rounds) in
//! one short transaction of its own, and a pass yields between batches, so checkpoints wait
//! for one batch at most; a pass of an engine's policy does at most
//! [`max_batches`](RetentionPolicy::max_batches) batches, the rest waiting for the next pass.

use std::collections::HashSet;
use std::time::Duration;

use crate::runtime::error::StoreError;
use crate::runtime::id::RunId;
use crate::runtime::store::retention::{
    FinishedCursor, FinishedQuery, FinishedRun, ROUND_WORKFLOW_SUFFIX, is_round,
};
use crate::runtime::store::{Deleted, Store, StoredRunStatus};

pub use crate::runtime::store::retention::round_id;

/// How many runs one batch deletes by default, in one transaction.
pub const DEFAULT_PRUNE_BATCH: usize = 500;

/// How many batches a pass of an engine's policy does at most by default.
pub const DEFAULT_PRUNE_MAX_BATCHES: usize = 20;

/// How often an engine's policy runs a pass by default.
pub const DEFAULT_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Which finished runs to delete, and how fast. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    older_than: Option<Duration>,
    keep: u64,
    statuses: Vec<StoredRunStatus>,
    sagas: Vec<String>,
    batch: usize,
    max_batches: usize,
    every: Duration,
    reclaim_after: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy::new()
    }
}

impl RetentionPolicy {
    /// Every finished run (completed, failed, cancelled), however recent, saga rules apart:
    /// bound it with [`older_than`](Self::older_than) and [`keep`](Self::keep).
    pub fn new() -> Self {
        RetentionPolicy {
            older_than: None,
            keep: 0,
            statuses: vec![
                StoredRunStatus::Completed,
                StoredRunStatus::Failed,
                StoredRunStatus::Cancelled,
            ],
            sagas: Vec::new(),
            batch: DEFAULT_PRUNE_BATCH,
            max_batches: DEFAULT_PRUNE_MAX_BATCHES,
            every: DEFAULT_PRUNE_EVERY,
            reclaim_after: RECLAIM_AFTER_RUNS,
        }
    }

    /// Only runs that finished longer ago than `age`, by the store's clock.
    pub fn older_than(mut self, age: Duration) -> Self {
        self.older_than = Some(age);
        self
    }

    /// Never the newest `runs` finished runs of the policy's statuses.
    pub fn keep(mut self, runs: u64) -> Self {
        self.keep = runs;
        self
    }

    /// Only runs that ended with one of `statuses`; running and parked are ignored (a run that
    /// has not finished is never deleted). Default: completed, failed, cancelled.
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StoredRunStatus>) -> Self {
        self.statuses = statuses
            .into_iter()
            .filter(|s| {
                matches!(
                    s,
                    StoredRunStatus::Completed
                        | StoredRunStatus::Failed
                        | StoredRunStatus::Cancelled
                )
            })
            .collect();
        self
    }

    /// Names `workflow` as a saga's: its failed and cancelled runs stay until compensated.
    pub fn saga(mut self, workflow: impl Into<String>) -> Self {
        let workflow = workflow.into();
        if !self.sagas.contains(&workflow) {
            self.sagas.push(workflow);
        }
        self
    }

    /// At most `runs` runs (with their rounds) deleted per transaction (default
    /// [`DEFAULT_PRUNE_BATCH`]; at least 1).
    pub fn batch(mut self, runs: usize) -> Self {
        self.batch = runs.max(1);
        self
    }

    /// At most `batches` batches per pass of an engine's policy (default
    /// [`DEFAULT_PRUNE_MAX_BATCHES`]; at least 1).
    pub fn max_batches(mut self, batches: usize) -> Self {
        self.max_batches = batches.max(1);
        self
    }

    /// How often an engine's policy runs a pass (default [`DEFAULT_PRUNE_EVERY`]; at least
    /// 1 ms).
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(1));
        self
    }

    /// How many runs an engine's policy deletes between two reclaims of their room
    /// ([`Retention::reclaim`](crate::runtime::Retention::reclaim); default
    /// [`RECLAIM_AFTER_RUNS`]; at least 1).
    pub fn reclaim_after(mut self, runs: u64) -> Self {
        self.reclaim_after = runs.max(1);
        self
    }

    /// The runs deleted between two reclaims.
    pub fn reclaim_every(&self) -> u64 {
        self.reclaim_after
    }

    /// Runs per batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Batches per pass.
    pub fn batches_per_pass(&self) -> usize {
        self.max_batches
    }

    /// The time between passes.
    pub fn period(&self) -> Duration {
        self.every
    }

    /// The statuses deleted.
    pub fn selected_statuses(&self) -> &[StoredRunStatus] {
        &self.statuses
    }

    fn selects_stopped(&self) -> bool {
        self.statuses
            .iter()
            .any(|s| matches!(s, StoredRunStatus::Failed | StoredRunStatus::Cancelled))
    }
}

/// A run a policy deletes, with its compensation rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prunable {
    /// The run.
    pub run: FinishedRun,
    /// Its compensation rounds, oldest first (none for a run that is no saga's, or that
    /// completed).
    pub rounds: Vec<RunId>,
}

/// By default an engine's policy has the store reclaim the room of deleted rows
/// ([`Retention::reclaim`](crate::runtime::Retention::reclaim): a `VACUUM` on PostgreSQL)
/// every this many runs it deleted ([`RetentionPolicy::reclaim_after`]).
pub const RECLAIM_AFTER_RUNS: u64 = 10_000;

/// What a pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Rows deleted: runs (rounds included), events, signals.
    pub deleted: Deleted,
    /// Batches (transactions) it took.
    pub batches: u64,
    /// Whether the policy has more to delete than the pass did (it stopped at its bound).
    pub more: bool,
}

/// The workflows whose failed and cancelled runs without a round stay: the policy's sagas,
/// and every workflow the store holds compensation rounds of. Asked of the store only if the
/// policy deletes failed or cancelled runs.
async fn sagas(store: &dyn Store, policy: &RetentionPolicy) -> Result<HashSet<String>, StoreError> {
    let mut sagas: HashSet<String> = policy.sagas.iter().cloned().collect();
    if policy.selects_stopped() {
        for workflow in store.workflows().await? {
            if let Some(saga) = workflow.strip_suffix(ROUND_WORKFLOW_SUFFIX) {
                sagas.insert(saga.to_owned());
            }
        }
    }
    Ok(sagas)
}

/// The rounds of `run` if the policy may delete it with them (see the module docs), `None`
/// if it stays.
async fn settled(
    store: &dyn Store,
    run: &FinishedRun,
    sagas: &HashSet<String>,
) -> Result<Option<Vec<RunId>>, StoreError> {
    if run.status == StoredRunStatus::Completed {
        return Ok(Some(Vec::new()));
    }
    let mut rounds = Vec::new();
    let mut last = None;
    for number in 1.. {
        let id = round_id(&run.run_id, number);
        match store.load_run(&id).await? {
            Some(round) => {
                last = Some(round.status);
                rounds.push(id);
            }
            None => break,
        }
    }
    Ok(match last {
        None if sagas.contains(&run.workflow) => None,
        None => Some(rounds),
        Some(StoredRunStatus::Completed) => Some(rounds),
        Some(_) => None,
    })
}

/// One page of what the policy deletes: at most `want` runs after `after`, and where the
/// next page starts (`None` once the listing is through).
async fn page(
    store: &dyn Store,
    policy: &RetentionPolicy,
    sagas: &HashSet<String>,
    after: Option<FinishedCursor>,
    want: usize,
) -> Result<(Vec<Prunable>, Option<FinishedCursor>), StoreError> {
    let mut found = Vec::new();
    let mut after = after;
    // Runs that stay (rounds, sagas not compensated) are passed over; a page looks at a
    // bounded number of them before it hands back what it found.
    let mut looked = 0;
    while found.len() < want && looked < want.saturating_mul(4) {
        let query = FinishedQuery {
            statuses: policy.statuses.clone(),
            older_than: policy.older_than,
            keep: policy.keep,
            after: after.clone(),
            limit: want - found.len(),
        };
        let runs = store.finished_runs(&query).await?;
        let through = runs.len() < query.limit;
        for run in runs {
            looked += 1;
            after = Some(run.cursor());
            if is_round(&run.workflow, &run.run_id) {
                continue;
            }
            if let Some(rounds) = settled(store, &run, sagas).await? {
                found.push(Prunable { run, rounds });
            }
        }
        if through {
            return Ok((found, None));
        }
    }
    Ok((found, after))
}

/// Every run `policy` would delete now, oldest finished first, at most `limit`: what
/// `sagaflow prune --dry-run` prints.
pub async fn prunable(
    store: &dyn Store,
    policy: &RetentionPolicy,
    limit: usize,
) -> Result<Vec<Prunable>, StoreError> {
    let sagas = sagas(store, policy).await?;
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let want = policy.batch.min(limit - all.len());
        if want == 0 {
            return Ok(all);
        }
        let (found, next) = page(store, policy, &sagas, after, want).await?;
        all.extend(found);
        match next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

/// Deletes what `policy` selects, a batch of at most [`batch`](RetentionPolicy::batch) runs
/// per transaction, yielding between batches; at most `max_batches` batches (`None`: until
/// nothing is left).
pub async fn prune(
    store: &dyn Store,
    policy: &RetentionPolicy,
    max_batches: Option<usize>,
) -> Result<PruneReport, StoreError> {
    let sagas = sagas(store, policy).await?;
    let mut report = PruneReport::default();
    let mut after = None;
    loop {
        if max_batches.is_some_and(|max| report.batches >= max as u64) {
            report.more = true;
            return Ok(report);
        }
        let (found, next) = page(store, policy, &sagas, after, policy.batch).await?;
        if !found.is_empty() {
            let ids: Vec<RunId> = found
                .into_iter()
                .flat_map(|p| std::iter::once(p.run.run_id).chain(p.rounds))
                .collect();
            report.deleted += store.delete_runs(&ids).await?;
            report.batches += 1;
        }
        match next {
            Some(next) => after = Some(next),
            None => return Ok(report),
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_selects_finished_statuses_only() {
        let policy = RetentionPolicy::new().statuses([
            StoredRunStatus::Running,
            StoredRunStatus::Failed,
            StoredRunStatus::Parked,
        ]);
        assert_eq!(policy.selected_statuses(), &[StoredRunStatus::Failed]);
        assert!(policy.selects_stopped());
        let completed = RetentionPolicy::new().statuses([StoredRunStatus::Completed]);
        assert!(!completed.selects_stopped());
        assert_eq!(RetentionPolicy::new().batch(0).batch_size(), 1);
    }
}
