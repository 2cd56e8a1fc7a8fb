//! The retention capability: listing finished runs by age, and deleting runs with every row
//! they have (steps, events with their payloads, signals), so that a database's size levels
//! off under a policy.
//!
//! A store gives the two primitives of [`Retention`]; what a policy may delete, and in which
//! groups (a saga run with its compensation rounds), is decided once, in
//! [`crate::runtime::retention`], for every store.
//!
//! Positions survive deletion: [`EventLog::events`](super::EventLog::events) and
//! [`SignalStore::signals_after`](super::SignalStore::signals_after) read "after position
//! `p`", so a store must never hand out a position again once the rows holding the newest ones
//! are deleted (the conformance suite deletes the newest run's rows and checks that the next
//! event and signal are numbered above them).

use std::time::Duration;

use crate::runtime::error::StoreError;
use crate::runtime::id::RunId;

use super::StoredRunStatus;

/// What marks a saga's compensation round in its run id: round `n` of run `R` is `R~undo{n}`
/// (`sagaflow_saga::naming` builds its ids from this).
pub const ROUND_MARK: &str = "~undo";

/// What ends the workflow name of a saga's compensation rounds: the rounds of saga `S` are runs
/// of workflow `S~compensate` (`sagaflow_saga::naming` builds its names from this).
pub const ROUND_WORKFLOW_SUFFIX: &str = "~compensate";

/// The run id of compensation round `round` (from 1) of run `run_id`.
pub fn round_id(run_id: &RunId, round: u32) -> RunId {
    RunId::from(format!("{run_id}{ROUND_MARK}{round}"))
}

/// The run a round's id belongs to and the round's number, if `run_id` is a round's id.
pub fn split_round_id(run_id: &RunId) -> Option<(RunId, u32)> {
    let (run, number) = run_id.as_str().rsplit_once(ROUND_MARK)?;
    let number = number.parse::<u32>().ok()?;
    Some((RunId::from(run.to_owned()), number))
}

/// Whether the run `run_id` of `workflow` is a saga's compensation round.
pub fn is_round(workflow: &str, run_id: &RunId) -> bool {
    workflow.ends_with(ROUND_WORKFLOW_SUFFIX) && split_round_id(run_id).is_some()
}

/// Which finished runs [`Retention::finished_runs`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedQuery {
    /// The statuses listed: a subset of completed, failed and cancelled (any other is
    /// ignored: a running or parked run is never listed).
    pub statuses: Vec<StoredRunStatus>,
    /// Only runs that finished longer ago than this, by the store's clock (the server's, for
    /// a database server); `None`: however recently.
    pub older_than: Option<Duration>,
    /// The newest `keep` runs of `statuses` (by the time they finished, then id) are never
    /// listed; 0 keeps none.
    pub keep: u64,
    /// Only runs after this one in the listing's order (oldest finished first, then by id):
    /// where the last page ended.
    pub after: Option<FinishedCursor>,
    /// At most this many.
    pub limit: usize,
}

/// A place in the listing of finished runs: a run's finish time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedCursor {
    /// When the run finished, unix milliseconds.
    pub finished_at: i64,
    /// The run.
    pub run_id: RunId,
}

/// A finished run, as [`Retention::finished_runs`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRun {
    /// The run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow: String,
    /// How it ended: completed, failed or cancelled.
    pub status: StoredRunStatus,
    /// When it finished, unix milliseconds by the store's clock.
    pub finished_at: i64,
}

impl FinishedRun {
    /// Where a listing that ended with this run goes on.
    pub fn cursor(&self) -> FinishedCursor {
        FinishedCursor {
            finished_at: self.finished_at,
            run_id: self.run_id.clone(),
        }
    }
}

/// What [`Retention::delete_runs`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Runs.
    pub runs: u64,
    /// Events of those runs (step outputs, in a store that keeps them on events, with them).
    pub events: u64,
    /// Signals delivered to those runs.
    pub signals: u64,
}

impl std::ops::AddAssign for Deleted {
    fn add_assign(&mut self, other: Deleted) {
        self.runs += other.runs;
        self.events += other.events;
        self.signals += other.signals;
    }
}

/// Deleting finished runs: the capability a retention policy works through
/// ([`crate::runtime::retention`]). A store that keeps no finished runs (the in-memory
/// store) lists none and deletes none.
#[async_trait::async_trait]
pub trait Retention: Send + Sync + 'static {
    /// Finished runs as `query` asks, oldest finished first (then by id), at most
    /// `query.limit`. Never a running or parked run.
    async fn finished_runs(&self, query: &FinishedQuery) -> Result<Vec<FinishedRun>, StoreError>;

    /// Deletes the runs `run_ids` that have finished, with their steps, events and signals,
    /// in one transaction: all of them or none. A run not finished (running, parked) or not
    /// there is left alone. The positions of events and signals still to come stay above
    /// every position handed out before (see the [module docs](self)).
    async fn delete_runs(&self, run_ids: &[RunId]) -> Result<Deleted, StoreError>;

    /// The workflow names of the runs stored, each once: the retention policy learns from
    /// them which workflows are sagas (those that have compensation rounds). A store that
    /// keeps no finished runs lists none.
    async fn workflows(&self) -> Result<Vec<String>, StoreError>;

    /// Makes the room of the rows deleted so far reusable, once a policy has deleted many
    /// (the engine's policy calls it every
    /// [`RECLAIM_AFTER_RUNS`](crate::runtime::retention::RECLAIM_AFTER_RUNS) runs deleted, and
    /// `sagaflow prune` after it deleted some): PostgreSQL vacuums the tables runs are deleted
    /// from (a plain `VACUUM`, which stops no checkpoint), so that they stop growing whatever
    /// the server's autovacuum keeps up with; a store whose freed room is reused by itself
    /// (SQLite's freed pages) or that keeps no finished runs has nothing to do.
    async fn reclaim(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_id_names_its_run_and_number() {
        let round = round_id(&RunId::from("deploy-7"), 3);
        assert_eq!(round.as_str(), "deploy-7~undo3");
        assert_eq!(split_round_id(&round), Some((RunId::from("deploy-7"), 3)));
        assert!(is_round("Deploy~compensate", &round));
        assert!(!is_round("Deploy", &round));
        assert!(!is_round("Deploy~compensate", &RunId::from("deploy-7")));
        assert_eq!(split_round_id(&RunId::from("a~undoX")), None);
    }
}
