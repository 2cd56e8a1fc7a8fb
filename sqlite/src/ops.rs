//! The writes the writer group-commits, one type per kind, each with its own answer (see
//! `writer::Op`): creating a run, taking a run's lease, recording a change of a run, and a
//! machine's transition.
//!
//! A write is owned, so it can cross to the writer thread and be applied again on its own if
//! the group commit it was part of fails; what it changes is built on the caller's side
//! (an output is encoded there, so a value that does not serialize fails its caller before
//! anything reaches the writer).

use rusqlite::Connection;

use crate::events::Publishing;
use crate::lease::{self, Acquired};
use crate::machines::{self, Advanced, MachineStep};
use crate::rows::{self, ApplyError, ChangeRow, EventRow, Held, Logged};
use crate::writer::Op;
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::events::EventKind;
use sagaflow_core::runtime::store::{Admission, Admitted, Change, Created, NewRun, Queueing};

/// Create a run unless one has the id, leased to `owner` with token 1.
#[derive(Debug)]
pub(crate) struct CreateRun {
    run_id: String,
    workflow: String,
    graph_fingerprint: i64,
    input: String,
    /// The graph as JSON (`NewRun::graph`).
    graph: Option<String>,
    held: Held,
    /// The start of the step the run begins with, logged with a new run's creation
    /// (`NewRun::first_step`; never for a run put on a queue).
    first: Option<ChangeRow>,
    /// Whether that start goes in the creation's row (`SqliteOptions::compact_log`).
    compact: bool,
}

impl CreateRun {
    /// The creation of `run`, leased to `owner` for `lease_ms`, with its input encoded; a
    /// codec failure is [`StoreError::Input`]. With `compact`, the first step's start goes in
    /// the creation's row.
    pub(crate) fn new(
        run: &NewRun<'_>,
        owner: &str,
        lease_ms: i64,
        compact: bool,
    ) -> Result<Self, StoreError> {
        let mut op = CreateRun::held(
            run,
            Held::By {
                owner: owner.to_owned(),
                lease_ms,
            },
        )?;
        op.first = run
            .first_step
            .map(|step| rows::change_row(run.run_id, &Change::StepStarted { step, attempt: 1 }))
            .transpose()?;
        op.compact = compact;
        Ok(op)
    }

    /// The creation of `run` on the queue of `on`, held by nobody.
    pub(crate) fn queued(run: &NewRun<'_>, on: Queueing<'_>) -> Result<Self, StoreError> {
        CreateRun::held(
            run,
            Held::Queued {
                queue: on.queue.to_owned(),
                priority: on.priority,
                key: on.key.map(str::to_owned),
            },
        )
    }

    fn held(run: &NewRun<'_>, held: Held) -> Result<Self, StoreError> {
        let input = (run.input_codec.encode)(run.input).map_err(|message| StoreError::Input {
            run_id: run.run_id.clone(),
            message,
        })?;
        Ok(CreateRun {
            run_id: run.run_id.as_str().to_owned(),
            workflow: run.workflow.to_owned(),
            graph_fingerprint: run.graph_fingerprint.cast_signed(),
            input,
            graph: run.graph.map(str::to_owned),
            held,
            first: None,
            compact: false,
        })
    }
}

impl Op for CreateRun {
    /// What the creation found, with the `run_created` event if the run is new, and the
    /// event of its first step's start if it logged one.
    type Answer = (Created, Option<Logged>, Option<Logged>);

    fn apply(&self, conn: &Connection, _: &str) -> Result<Self::Answer, ApplyError> {
        // The first step's start in the creation's row, numbered one past it.
        let in_row = match &self.first {
            Some(ChangeRow::StepStarted { step, attempt: 1 }) if self.compact => Some(step),
            _ => None,
        };
        let (created, logged) = rows::create_run(
            conn,
            &self.run_id,
            &self.workflow,
            (self.graph_fingerprint, self.graph.as_deref()),
            &self.input,
            (&self.held, in_row.map(String::as_str)),
        )?;
        let begun = match (&self.first, logged) {
            (Some(_), Some(logged)) if in_row.is_some() => Some(Logged {
                seq: logged.seq.saturating_add(1),
                at: logged.at,
            }),
            (Some(first), Some(logged)) => {
                Some(rows::log_created(conn, &self.run_id, logged.at, first)?)
            }
            _ => None,
        };
        Ok((created, logged, begun))
    }

    fn publish(&self, &(_, logged, begun): &Self::Answer, to: &mut Publishing<'_>) {
        if let Some(logged) = logged {
            crate::events::logged(to, &self.run_id, logged, || {
                EventRow::of_run(EventKind::RunCreated)
            });
        }
        if let (Some(first), Some(logged)) = (&self.first, begun) {
            crate::events::logged(to, &self.run_id, logged, || rows::event_row(first));
        }
    }
}

/// Take the lease on a run for `owner` (see `lease::acquire`).
#[derive(Debug)]
pub(crate) struct Acquire {
    pub(crate) run_id: String,
    pub(crate) owner: String,
    pub(crate) lease_ms: i64,
    pub(crate) max_recoveries: u32,
}

impl Op for Acquire {
    /// What taking the lease found, with the `run_parked` event if it parked the run.
    type Answer = (Acquired, Option<Logged>);

    fn apply(&self, conn: &Connection, _: &str) -> Result<Self::Answer, ApplyError> {
        let (acquired, parked_at) = lease::acquire(
            conn,
            &self.run_id,
            &self.owner,
            self.lease_ms,
            self.max_recoveries,
        )?;
        let logged = parked_at
            .map(|at| rows::log_event(conn, &self.run_id, at, EventKind::RunParked))
            .transpose()?;
        Ok((acquired, logged))
    }

    fn publish(&self, (_, logged): &Self::Answer, to: &mut Publishing<'_>) {
        if let Some(logged) = *logged {
            crate::events::logged(to, &self.run_id, logged, || {
                EventRow::of_run(EventKind::RunParked)
            });
        }
    }
}

/// Reserve a run of a queue for `owner` if every bound of `bounds` leaves room for it (see
/// `QueueStore::admit`): counted and taken in one write transaction, which every process on
/// the file takes in turn. The run's start time is set the first time.
#[derive(Debug)]
pub(crate) struct Admit {
    pub(crate) run_id: String,
    pub(crate) queue: String,
    pub(crate) owner: String,
    pub(crate) lease_ms: i64,
    pub(crate) bounds: Admission,
}

/// A count as SQLite takes it.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Op for Admit {
    /// Whether the run is reserved, or which bound refused it.
    type Answer = Admitted;

    fn apply(&self, conn: &Connection, _: &str) -> Result<Self::Answer, ApplyError> {
        let now = crate::clock::now_ms();
        if let Some(limit) = self.bounds.overall {
            let held: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM runs WHERE queue = ?1 AND status = 'running' \
                     AND owner IS NOT NULL AND lease_expires > ?2",
                )?
                .query_row(rusqlite::params![self.queue, now], |row| row.get(0))?;
            if held >= count(limit) {
                return Ok(Admitted::QueueFull);
            }
        }
        if let Some(limit) = self.bounds.per_key {
            let held: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM runs r JOIN runs me ON me.run_id = ?1 \
                     WHERE r.queue = ?2 AND r.queue_key = me.queue_key AND r.run_id <> ?1 \
                     AND r.status = 'running' AND r.owner IS NOT NULL AND r.lease_expires > ?3",
                )?
                .query_row(rusqlite::params![self.run_id, self.queue, now], |row| {
                    row.get(0)
                })?;
            if held >= count(limit) {
                return Ok(Admitted::KeyFull);
            }
        }
        if let Some((starts, per)) = self.bounds.rate {
            let per_ms = i64::try_from(per.as_millis()).unwrap_or(i64::MAX);
            let started: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM runs WHERE queue = ?1 AND started_at > ?2 - ?3 \
                     AND run_id <> ?4",
                )?
                .query_row(
                    rusqlite::params![self.queue, now, per_ms, self.run_id],
                    |row| row.get(0),
                )?;
            let first: bool = conn
                .prepare_cached("SELECT started_at IS NULL FROM runs WHERE run_id = ?1")?
                .query_row([&self.run_id], |row| row.get(0))
                .unwrap_or(false);
            if first && started >= count(starts) {
                return Ok(Admitted::QueueFull);
            }
        }
        let taken = conn
            .prepare_cached(
                "UPDATE runs SET owner = ?2, lease_expires = ?3 + ?4, \
                 lease_token = lease_token + 1, started_at = COALESCE(started_at, ?3) \
                 WHERE run_id = ?1 AND queue = ?5 AND status = 'running' AND parked = 0 \
                 AND (owner IS NULL OR owner = ?2 OR lease_expires IS NULL \
                      OR lease_expires <= ?3)",
            )?
            .execute(rusqlite::params![
                self.run_id,
                self.owner,
                now,
                self.lease_ms,
                self.queue
            ])?;
        Ok(if taken == 1 {
            Admitted::Reserved
        } else {
            Admitted::Taken
        })
    }

    fn publish(&self, _: &Self::Answer, _: &mut Publishing<'_>) {}
}

/// Reserve for `owner` up to `limit` runs waiting on `queue` (see `QueueStore::claim`): listed
/// and taken in one write transaction, which every process on the file takes in turn, so two
/// claims never take the same run.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) queue: String,
    pub(crate) known: Vec<sagaflow_core::runtime::KnownGraph>,
    pub(crate) owner: String,
    pub(crate) lease_ms: i64,
    pub(crate) limit: usize,
}

impl Op for Claim {
    /// The runs reserved, in the queue's order.
    type Answer = Vec<sagaflow_core::runtime::store::FreeRun>;

    fn apply(&self, conn: &Connection, _: &str) -> Result<Self::Answer, ApplyError> {
        let listed = lease::list_queued(
            conn,
            std::slice::from_ref(&self.queue),
            &self.known,
            self.limit,
        )?;
        let now = crate::clock::now_ms();
        let mut claimed = Vec::with_capacity(listed.len());
        for run in listed {
            let taken = conn
                .prepare_cached(
                    "UPDATE runs SET owner = ?2, lease_expires = ?3 + ?4, \
                     lease_token = lease_token + 1, started_at = COALESCE(started_at, ?3) \
                     WHERE run_id = ?1",
                )?
                .execute(rusqlite::params![
                    run.run_id.as_str(),
                    self.owner,
                    now,
                    self.lease_ms
                ])?;
            if taken == 1 {
                claimed.push(run);
            }
        }
        Ok(claimed)
    }

    fn publish(&self, _: &Self::Answer, _: &mut Publishing<'_>) {}
}

/// Record a change of a run, fenced by `token` (`None`: this store holds no lease on it, so
/// the write is refused), renewing the lease by `lease_ms`.
#[derive(Debug)]
pub(crate) struct Record {
    run_id: String,
    change: ChangeRow,
    /// A second change applied with the first, in the same savepoint: both or neither (a
    /// step's completion and the next step's start share one commit).
    then: Option<ChangeRow>,
    token: Option<u64>,
    lease_ms: i64,
    /// Whether a next start may share the first change's row (`SqliteOptions::compact_log`).
    compact: bool,
}

impl Record {
    /// The record of `change` (and `then` with it), fenced by `token` and renewing the lease
    /// by `lease_ms`; an output that does not encode is [`StoreError::Codec`] naming the run
    /// and the step. With `compact`, `then`'s start may go in `change`'s row.
    pub(crate) fn new(
        run_id: &RunId,
        (change, then): (&Change<'_>, Option<&Change<'_>>),
        token: Option<u64>,
        lease_ms: i64,
        compact: bool,
    ) -> Result<Self, StoreError> {
        Ok(Record {
            run_id: run_id.as_str().to_owned(),
            change: rows::change_row(run_id, change)?,
            then: then
                .map(|then| rows::change_row(run_id, then))
                .transpose()?,
            token,
            lease_ms,
            compact,
        })
    }
}

impl Op for Record {
    /// The event of the change, and of the second change if there is one.
    type Answer = (Logged, Option<Logged>);

    fn apply(&self, conn: &Connection, label: &str) -> Result<Self::Answer, ApplyError> {
        let fence = (self.token, self.lease_ms);
        match &self.then {
            Some(then) => {
                let pair = (&self.change, then);
                let (first, then) =
                    rows::record_pair(conn, label, &self.run_id, pair, (fence, self.compact))?;
                Ok((first, Some(then)))
            }
            None => Ok((
                rows::record(conn, label, &self.run_id, &self.change, fence)?,
                None,
            )),
        }
    }

    fn publish(&self, &(first, then): &Self::Answer, to: &mut Publishing<'_>) {
        crate::events::logged(to, &self.run_id, first, || rows::event_row(&self.change));
        if let (Some(change), Some(logged)) = (&self.then, then) {
            crate::events::logged(to, &self.run_id, logged, || rows::event_row(change));
        }
    }
}

/// A transition of a persisted machine, applied only if it is at `step.expected_version`.
#[derive(Debug)]
pub(crate) struct AdvanceMachine {
    pub(crate) machine_id: String,
    pub(crate) step: MachineStep,
}

impl Op for AdvanceMachine {
    /// What the transition did.
    type Answer = Advanced;

    fn apply(&self, conn: &Connection, label: &str) -> Result<Advanced, ApplyError> {
        machines::advance(conn, label, &self.machine_id, &self.step).map_err(ApplyError::Refused)
    }

    /// A machine's transitions have a log of their own (`machine_transitions`), not events of
    /// the runs' log.
    fn publish(&self, _: &Advanced, _: &mut Publishing<'_>) {}
}
