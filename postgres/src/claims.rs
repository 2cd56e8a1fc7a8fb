//! Claims of a queue's runs that take them up in the same statement (see
//! `QueueStore::claim`): one round trip reserves a batch of runs for this store's owner, takes
//! each one's lease (counted as a take-up, as `acquire` counts it), and reads back what a
//! take-up would load of a run that never started (its input; it has no step yet). The
//! take-up that follows (`acquire`, then `load_run`) is answered from the claim, with no
//! statement of its own: an enqueued run costs its serving engine one round trip more than a
//! run started in process, the claim's.
//!
//! What the claim read is kept only until that take-up: `acquire` answers from it once,
//! within the lease's safe part; `load_run` answers from it once, only after `acquire` did
//! (a `load_run` by anyone else, earlier, reads the table), and only for a run with no step:
//! a run that had started (on a replica that died, say) is read from the tables as every
//! take-up reads it. An answer not asked for within [`KEPT`] is dropped, so that runs claimed
//! and never taken up (an engine that began to drain meanwhile) do not pile up; their leases
//! run out and another engine takes them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::PgStore;
use crate::error::pg_error;
use crate::lease::{Leases, QUEUED_SQL, free_run, known_arrays};
use crate::session::{Param, Session};
use crate::writer::{CreateRow, Write};
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::replicas::live_within_ms;
use sagaflow_core::runtime::store::{
    Admission, Admitted, AdmittedFirst, Created, FreeRun, KnownGraph, Lease, NewRun, StoredRun,
    StoredRunStatus,
};

/// How long what a claim read waits for the take-up that follows it.
const KEPT: Duration = Duration::from_secs(10);

/// A run a claim took up, until its take-up asks for it.
#[derive(Debug)]
struct Claimed {
    lease: Lease,
    /// When the claim was sent: the lease holds for a lease from then.
    sent: Instant,
    /// The run as `load_run` would read it, if it has no step yet.
    run: Option<StoredRun>,
    /// Whether `acquire` was answered from the claim (then `load_run` may be).
    acquired: bool,
}

/// What the claims of a store took up and its take-ups have yet to ask for, and how many
/// take-ups were answered so.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    claimed: Mutex<HashMap<RunId, Claimed>>,
    answered: AtomicU64,
}

impl Claims {
    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, Claimed>> {
        // Every critical section is an insert, a remove or a field write.
        self.claimed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many take-ups (`acquire`) were answered from a claim so far.
    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// The lease the claim took of `run_id`, once, if it surely still holds; the store's
    /// leases hold it from now on, as if `acquire` had taken it.
    pub(crate) fn acquire(&self, run_id: &RunId, leases: &Leases) -> Option<Lease> {
        let mut claims = self.lock();
        let claimed = claims.get_mut(run_id)?;
        let safe = Duration::from_millis(leases.lease_ms().unsigned_abs()).mul_f64(0.9);
        if claimed.acquired || claimed.sent.elapsed() >= safe {
            claims.remove(run_id);
            return None;
        }
        claimed.acquired = true;
        self.answered.fetch_add(1, Ordering::Relaxed);
        leases.hold_since(run_id, claimed.lease.token, claimed.sent);
        let lease = claimed.lease;
        if claimed.run.is_none() {
            claims.remove(run_id);
        }
        Some(lease)
    }

    /// The run as the claim read it, once, if `acquire` was answered from the claim and the
    /// run had no step.
    pub(crate) fn load(&self, run_id: &RunId) -> Option<StoredRun> {
        let mut claims = self.lock();
        if !claims.get(run_id)?.acquired {
            return None;
        }
        claims.remove(run_id).and_then(|claimed| claimed.run)
    }

    /// Forgets whatever a claim read of `run_id` (its take-up failed, or the lease is let
    /// go); the lease the claim took, if no take-up was answered from it (so that it can be
    /// given up: the store's leases do not hold it yet).
    pub(crate) fn forget(&self, run_id: &RunId) -> Option<Lease> {
        let claimed = self.lock().remove(run_id)?;
        (!claimed.acquired).then_some(claimed.lease)
    }

    /// How many claimed runs wait for their take-up.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn keep(&self, claimed: Vec<(RunId, Claimed)>) {
        let mut claims = self.lock();
        claims.retain(|_, c| c.sent.elapsed() < KEPT);
        claims.extend(claimed);
    }
}

/// What a claim (or an admission) read back of a run it took up.
struct TakenUp<'a> {
    workflow: &'a str,
    fingerprint: u64,
    created_at: i64,
    token: i64,
    recoveries: i32,
    /// The input of a run with no step yet; `None` for one that had started.
    input: Option<String>,
    error: Option<String>,
}

impl TakenUp<'_> {
    fn claimed(self, sent: Instant) -> Claimed {
        let stored = self.input.map(|input| StoredRun {
            workflow: self.workflow.to_owned(),
            graph_fingerprint: self.fingerprint,
            input,
            status: StoredRunStatus::Running,
            error: self.error,
            created_at: u64::try_from(self.created_at)
                .ok()
                .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))),
            steps: Vec::new(),
        });
        Claimed {
            lease: Lease {
                token: self.token.cast_unsigned(),
                recoveries: u32::try_from(self.recoveries).unwrap_or(0),
            },
            sent,
            run: stored,
            acquired: false,
        }
    }
}

/// A claim's one statement (see [`claim`]), over the runs `$which` picks, in the order
/// `$order`: `$4` is the queue (or, for runs of no queue, unused but typed). `$8` are runs
/// left out: those this store keeps a lease for that ran out here (see
/// `Leases::not_surely_held`), which may still be running here.
macro_rules! claim_sql {
    ($which:literal, $order:literal, $limit:literal, $started:literal) => {
        concat!(
            "WITH c AS (SELECT r.run_id, r.recoveries < $7 AS counted, \
                     NOT EXISTS (SELECT 1 FROM events e \
                         WHERE e.run_id = r.run_id AND e.step IS NOT NULL) AS unstarted \
                 FROM runs r \
                 WHERE r.status = 'running' AND NOT r.parked AND ",
            $which,
            " AND (r.lease_expires IS NULL OR r.lease_expires <= now_ms()) \
                 AND r.run_id <> ALL($8::text[]) \
                 AND EXISTS (SELECT 1 FROM unnest($1::text[], $2::bigint[]) AS k(workflow, graph) \
                     WHERE k.workflow = r.workflow \
                     AND (k.graph IS NULL OR k.graph = r.graph_fingerprint)) \
                 ORDER BY ",
            $order,
            " LIMIT ",
            $limit,
            " FOR UPDATE SKIP LOCKED) \
             UPDATE runs SET owner = $5, lease_expires = now_ms() + $6, \
                 lease_token = runs.lease_token + 1, \
                 recoveries = runs.recoveries + CASE WHEN c.counted THEN 1 ELSE 0 END",
            $started,
            " FROM c WHERE runs.run_id = c.run_id \
             RETURNING runs.run_id, runs.workflow, runs.graph_fingerprint, runs.priority, \
                 runs.created_at, runs.created_seq, runs.lease_token, runs.recoveries, \
                 c.counted, CASE WHEN c.unstarted THEN runs.input END, runs.error"
        )
    };
}

/// The claim of a queue's runs ($4): highest priority first, then oldest; each one's start
/// time set the first time.
const CLAIM_SQL: &str = claim_sql!(
    "r.queue = $4",
    "r.priority DESC, r.created_at, r.created_seq",
    "$3",
    ", started_at = COALESCE(runs.started_at, now_ms())"
);

/// The claim of the runs of no queue free to take over (`$4` unused): oldest first.
const CLAIM_FREE_SQL: &str = claim_sql!(
    "r.queue IS NULL AND $4::text IS NULL",
    "r.created_at, r.created_seq",
    "$3",
    ""
);

/// The claim of the runs of no queue free to take over, as [`CLAIM_FREE_SQL`], after a
/// notice that other processes handed `$9` runs over: at most this owner's share of them,
/// `$9` divided by the live replicas (heard from within `$10` ms) that run one of the
/// workflows `$1` (as their heartbeat's `graphs` say) and hold none of the runs free now (they
/// handed them over, or died), rounded up. Every replica that heard the notice asks at once;
/// each takes its share, and `SKIP LOCKED` gives them different runs. The replicas'
/// heartbeats are in `replicas` (schema version 3), their `graphs` JSON as
/// `Graph::json_of` writes it.
const CLAIM_FREE_SHARE_SQL: &str = claim_sql!(
    "r.queue IS NULL AND $4::text IS NULL",
    "r.created_at, r.created_seq",
    "least($3, ceil($9::bigint::numeric / greatest(1, (\
         SELECT count(*) FROM replicas p WHERE p.heartbeat_at > now_ms() - $10 \
         AND EXISTS (SELECT 1 FROM jsonb_array_elements(p.graphs::jsonb) AS g(e) \
             WHERE g.e ->> 'workflow' = ANY($1::text[])) \
         AND NOT EXISTS (SELECT 1 FROM runs f WHERE f.owner = p.owner \
             AND f.status = 'running' AND NOT f.parked \
             AND (f.lease_expires IS NULL OR f.lease_expires <= now_ms())))))::bigint)",
    ""
);

/// Which runs a claim takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which<'a> {
    /// The runs waiting on this queue.
    Queue(&'a str),
    /// The runs of no queue free to take over.
    Free,
    /// This owner's share of that many runs of no queue that other processes handed over.
    FreeShare(usize),
}

/// Reserves for this store's owner up to `limit` runs waiting on `queue`, of the graphs in
/// `known`, highest priority first, then oldest (see `QueueStore::claim`), and takes them up:
/// one statement, whose `FOR UPDATE SKIP LOCKED` passes over the rows another claim holds, so
/// that replicas claiming at once take different runs. Each gets a lease and its start time,
/// and its take-up is counted as `acquire` counts it; a run already taken up as often as the
/// store allows is only reserved (the take-up that follows parks it). What a take-up needs
/// is kept in `claims` for it.
///
/// With no queue (`None`), the runs of no queue that are free to take over (their lease ran
/// out or was given up: see `LeaseStore::free_runs`), oldest first, claimed the same way:
/// replicas looking for a dead one's runs at once take different runs, each batch in one
/// round trip, where each would try every run listed, a round trip each, and find half of
/// them taken by another a moment before.
pub(crate) async fn claim(
    client: &deadpool_postgres::Object,
    session: &Session,
    claims: &Claims,
    leases: &Leases,
    which: Which<'_>,
    known: &[KnownGraph],
    limit: usize,
) -> Result<Vec<FreeRun>, tokio_postgres::Error> {
    let (workflows, graphs) = known_arrays(known);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let below = i32::try_from(leases.max_recoveries()).unwrap_or(i32::MAX);
    let sent = Instant::now();
    let not_held = leases.not_surely_held();
    let left_out: Vec<&str> = not_held.iter().map(RunId::as_str).collect();
    let owner = leases.owner();
    let lease_ms = leases.lease_ms();
    let queue = match which {
        Which::Queue(queue) => Some(queue),
        Which::Free | Which::FreeShare(_) => None,
    };
    let params: [&dyn Param; 8] = [
        &workflows, &graphs, &limit, &queue, &owner, &lease_ms, &below, &left_out,
    ];
    let rows = match which {
        Which::Queue(_) => session.query_cached(client, CLAIM_SQL, &params).await?,
        Which::Free => {
            session
                .query_cached(client, CLAIM_FREE_SQL, &params)
                .await?
        }
        Which::FreeShare(freed) => {
            let freed = i64::try_from(freed).unwrap_or(i64::MAX);
            let live_ms = live_within_ms();
            let mut shared: Vec<&dyn Param> = params.to_vec();
            shared.extend([&freed as &dyn Param, &live_ms]);
            session
                .query_cached(client, CLAIM_FREE_SHARE_SQL, &shared)
                .await?
        }
    };
    let mut claimed: Vec<(i32, i64, i64, FreeRun)> = Vec::with_capacity(rows.len());
    let mut taken = Vec::with_capacity(rows.len());
    for row in &rows {
        let run = free_run(row);
        let (token, recoveries, counted): (i64, i32, bool) = (row.get(6), row.get(7), row.get(8));
        if counted {
            let columns = TakenUp {
                workflow: &run.workflow,
                fingerprint: run.graph_fingerprint,
                created_at: row.get(4),
                token,
                recoveries,
                input: row.get(9),
                error: row.get(10),
            };
            taken.push((run.run_id.clone(), columns.claimed(sent)));
        }
        claimed.push((row.get(3), row.get(4), row.get(5), run));
    }
    claims.keep(taken);
    // In the listing's order (an `UPDATE` returns its rows in no order of its own).
    claimed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    Ok(claimed.into_iter().map(|(_, _, _, run)| run).collect())
}

/// The first key of a queue's advisory lock (`SFQ` and a version).
const QUEUE_LOCK: i32 = 0x5346_5101;

/// An admission's statement, run under the queue's lock (see [`admit`]): whether the queue
/// ($1) has room for the run ($2; none: the first run waiting on the queue, of the workflows
/// and graphs $10 and $11, as the listing orders them) under its bounds over all (at most $3
/// held, $5 started in the last $6 ms) and the run's key has room under its own ($4), and if
/// both, the run taken up for the owner $7 (lease $8 ms; the take-up counted below $9
/// recoveries), as a claim takes a run up. One row: the two answers, what a claim reads back
/// (or nulls), and the run it was about (none if no run waits).
const ADMIT_SQL: &str = "
WITH pick AS MATERIALIZED (
    SELECT $2::text AS run_id WHERE $2::text IS NOT NULL
    UNION ALL
    (SELECT r.run_id FROM runs r
        WHERE $2::text IS NULL AND r.status = 'running' AND NOT r.parked AND r.queue = $1::text
            AND (r.lease_expires IS NULL OR r.lease_expires <= now_ms())
            AND EXISTS (SELECT 1 FROM unnest($10::text[], $11::bigint[]) AS k(workflow, graph)
                WHERE k.workflow = r.workflow
                    AND (k.graph IS NULL OR k.graph = r.graph_fingerprint))
        ORDER BY r.priority DESC, r.created_at, r.created_seq LIMIT 1)
),
me AS MATERIALIZED (
    SELECT r.run_id, r.queue_key, r.started_at IS NULL AS first FROM runs r, pick
    WHERE r.run_id = pick.run_id
),
room AS (
    SELECT ($3::bigint IS NULL OR (SELECT count(*) FROM runs WHERE queue = $1::text
                AND status = 'running' AND owner IS NOT NULL
                AND lease_expires > now_ms()) < $3::bigint)
            AND ($5::bigint IS NULL OR NOT COALESCE((SELECT first FROM me), true)
                OR (SELECT count(*) FROM runs WHERE queue = $1::text
                    AND started_at > now_ms() - $6::bigint
                    AND run_id IS DISTINCT FROM (SELECT run_id FROM me)) < $5::bigint)
            AS queue_room,
        ($4::bigint IS NULL OR (SELECT count(*) FROM runs r, me
                WHERE r.queue = $1::text AND r.queue_key = me.queue_key AND r.run_id <> me.run_id
                AND r.status = 'running' AND r.owner IS NOT NULL
                AND r.lease_expires > now_ms()) < $4::bigint) AS key_room
),
c AS (
    SELECT r.run_id, r.recoveries < $9::integer AS counted,
        NOT EXISTS (SELECT 1 FROM events e
            WHERE e.run_id = r.run_id AND e.step IS NOT NULL) AS unstarted
    FROM runs r, room, me WHERE r.run_id = me.run_id AND room.queue_room AND room.key_room
    FOR UPDATE OF r
),
up AS (
    UPDATE runs SET owner = $7::text, lease_expires = now_ms() + $8::bigint,
        lease_token = runs.lease_token + 1,
        recoveries = runs.recoveries + CASE WHEN c.counted THEN 1 ELSE 0 END,
        started_at = COALESCE(runs.started_at, now_ms())
    FROM c
    WHERE runs.run_id = c.run_id AND runs.queue = $1::text AND runs.status = 'running'
        AND NOT runs.parked
        AND (runs.owner IS NULL OR runs.owner = $7::text OR runs.lease_expires IS NULL
             OR runs.lease_expires <= now_ms())
    RETURNING runs.workflow, runs.graph_fingerprint, runs.created_at, runs.lease_token,
        runs.recoveries, c.counted, CASE WHEN c.unstarted THEN runs.input END, runs.error
)
SELECT room.queue_room, room.key_room, up.*, (SELECT run_id FROM me) FROM room LEFT JOIN up ON true";

/// Where an admission happens: the store's pool connection, its session, its claims and
/// leases, and its schema (which names the queue's lock).
pub(crate) struct Admitting<'a> {
    pub(crate) client: &'a deadpool_postgres::Object,
    pub(crate) session: &'a Session,
    pub(crate) claims: &'a Claims,
    pub(crate) leases: &'a Leases,
    pub(crate) schema: &'a str,
}

/// Reserves `run_id` of `queue` for this store's owner if every bound of `bounds` leaves room
/// for it (see `QueueStore::admit`), and takes it up as [`claim`] does (what a take-up needs
/// kept in `claims`): under the queue's advisory lock (per transaction), so that two
/// processes never count at once. The lock is taken before any row, and nothing else is
/// waited for while a row is held; the counts are read after the lock, by a statement of
/// their own (its snapshot taken once the lock is held). `BEGIN`, the lock, that statement
/// and `COMMIT` are written together: one round trip. The run's start time (`started_at`,
/// the server's clock) is set the first time; the rate bound counts the runs started in its
/// window, this one aside.
pub(crate) async fn admit(
    at: &Admitting<'_>,
    run_id: &RunId,
    queue: &str,
    bounds: &Admission,
) -> Result<Admitted, tokio_postgres::Error> {
    let (first, _) = admission(at, queue, bounds, Some(run_id), &[], None).await?;
    Ok(first.map_or(Admitted::Taken, |(_, admitted)| admitted))
}

/// The first run waiting on `queue` admitted as [`admit`] admits a run, and the next `limit`
/// listed after it (see `QueueStore::admit_first`), in the same transaction and round trip:
/// `BEGIN`, the lock, the admission, the listing, `COMMIT`. A run admitted has its lease, so
/// the listing after it leaves it out; one refused is taken out of the list.
pub(crate) async fn admit_first(
    at: &Admitting<'_>,
    queue: &str,
    known: &[KnownGraph],
    limit: usize,
    bounds: &Admission,
) -> Result<AdmittedFirst, tokio_postgres::Error> {
    let (first, rest) = admission(at, queue, bounds, None, known, Some(limit)).await?;
    Ok(AdmittedFirst { first, rest })
}

/// An admission (of `run_id`, or of the first run waiting), and the listing after it if
/// `list` says how many.
async fn admission(
    at: &Admitting<'_>,
    queue: &str,
    bounds: &Admission,
    run_id: Option<&RunId>,
    known: &[KnownGraph],
    list: Option<usize>,
) -> Result<(Option<(FreeRun, Admitted)>, Vec<FreeRun>), tokio_postgres::Error> {
    let mut name = Vec::with_capacity(at.schema.len() + 1 + queue.len());
    name.extend_from_slice(at.schema.as_bytes());
    name.push(0);
    name.extend_from_slice(queue.as_bytes());
    let key = (sagaflow_graph::fnv::hash(&name) as u32).cast_signed();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let overall = bounds.overall.map(count);
    let per_key = bounds.per_key.map(count);
    let starts = bounds.rate.map(|(n, _)| count(n));
    let per_ms = bounds
        .rate
        .map(|(_, per)| i64::try_from(per.as_millis()).unwrap_or(i64::MAX));
    let leases = at.leases;
    let below = i32::try_from(leases.max_recoveries()).unwrap_or(i32::MAX);
    let (owner, lease_ms) = (leases.owner(), leases.lease_ms());
    let (workflows, graphs) = known_arrays(known);
    let run = run_id.map(RunId::as_str);
    let params: [&dyn Param; 11] = [
        &queue, &run, &overall, &per_key, &starts, &per_ms, &owner, &lease_ms, &below, &workflows,
        &graphs,
    ];
    let lock = "SELECT pg_advisory_xact_lock($1, $2)";
    let locked: [&dyn Param; 2] = [&QUEUE_LOCK, &key];
    let sent = Instant::now();
    let (rows, listed) = match list {
        None => (
            at.session
                .pipelined(at.client, lock, &locked, ADMIT_SQL, &params)
                .await?,
            Vec::new(),
        ),
        Some(limit) => {
            let queues = vec![queue];
            let limit = count(limit);
            let listing: [&dyn Param; 4] = [&workflows, &graphs, &limit, &queues];
            at.session
                .pipelined_then(
                    at.client,
                    lock,
                    &locked,
                    (ADMIT_SQL, &params),
                    (QUEUED_SQL, &listing),
                )
                .await?
        }
    };
    let mut rest: Vec<FreeRun> = listed.iter().map(free_run).collect();
    let Some(row) = rows.first() else {
        return Ok((None, rest));
    };
    let Some(picked) = row.get::<_, Option<String>>(10).map(RunId::from) else {
        return Ok((None, rest));
    };
    // The run refused is still listed (it has no lease): it is the first, not one of the rest.
    let refused = rest
        .iter()
        .position(|r| r.run_id == picked)
        .map(|at| rest.remove(at));
    let (queue_room, key_room): (bool, bool) = (row.get(0), row.get(1));
    let workflow = row.get::<_, Option<String>>(2);
    let admitted = match (queue_room, key_room, &workflow) {
        (false, _, _) => Admitted::QueueFull,
        (true, false, _) => Admitted::KeyFull,
        (true, true, None) => Admitted::Taken,
        (true, true, Some(_)) => Admitted::Reserved,
    };
    let fingerprint = row.get::<_, Option<i64>>(3).unwrap_or(0).cast_unsigned();
    let first = match (workflow, refused) {
        (Some(workflow), _) => {
            if row.get::<_, Option<bool>>(7) == Some(true) {
                let taken = TakenUp {
                    workflow: &workflow,
                    fingerprint,
                    created_at: row.get::<_, Option<i64>>(4).unwrap_or(-1),
                    token: row.get::<_, Option<i64>>(5).unwrap_or(0),
                    recoveries: row.get::<_, Option<i32>>(6).unwrap_or(0),
                    input: row.get(8),
                    error: row.get(9),
                };
                at.claims.keep(vec![(picked.clone(), taken.claimed(sent))]);
            }
            FreeRun {
                run_id: picked,
                workflow,
                graph_fingerprint: fingerprint,
            }
        }
        (None, Some(refused)) => refused,
        // Refused and not listed (no listing asked for, or it went meanwhile): its id alone.
        (None, None) => FreeRun {
            run_id: picked,
            workflow: String::new(),
            graph_fingerprint: 0,
        },
    };
    Ok((Some((first, admitted)), rest))
}

/// Queues in the `runs` table (schema version 6): a queued run is a run with a queue and no
/// owner, created by the writer as every run is.
#[async_trait::async_trait]
impl sagaflow_core::runtime::QueueStore for PgStore {
    async fn enqueue(
        &self,
        run: &NewRun<'_>,
        on: sagaflow_core::runtime::store::Queueing<'_>,
    ) -> Result<Created, StoreError> {
        let mut row = CreateRow::of(run, None, Some(on))?;
        // Wakes the engines serving the queue as the run commits, in its transaction; a
        // notice lost is made up for by their next poll. Behind a pooler nobody listens.
        if self.inner.notices.is_some() {
            row.notify = Some(self.inner.channel.clone());
        }
        self.write(|reply| Write::Create(row, reply)).await
    }

    async fn claim(
        &self,
        queue: &str,
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        self.claim_runs(Which::Queue(queue), known, limit).await
    }

    async fn admit(
        &self,
        run_id: &RunId,
        queue: &str,
        bounds: &sagaflow_core::runtime::store::Admission,
    ) -> Result<sagaflow_core::runtime::store::Admitted, StoreError> {
        let client = self.client().await?;
        admit(&self.admitting(&client), run_id, queue, bounds)
            .await
            .map_err(|e| pg_error(&self.inner.label, &e))
    }

    /// The admission and the listing in one transaction and one round trip (see
    /// `claims::admit_first`).
    async fn admit_first(
        &self,
        queue: &str,
        known: &[KnownGraph],
        limit: usize,
        bounds: &sagaflow_core::runtime::store::Admission,
    ) -> Result<sagaflow_core::runtime::store::AdmittedFirst, StoreError> {
        if known.is_empty() || limit == 0 {
            return Ok(sagaflow_core::runtime::store::AdmittedFirst {
                first: None,
                rest: Vec::new(),
            });
        }
        let client = self.client().await?;
        admit_first(&self.admitting(&client), queue, known, limit, bounds)
            .await
            .map_err(|e| pg_error(&self.inner.label, &e))
    }

    /// Notices of enqueues from the store's `LISTEN` connection; none behind a pooler in
    /// transaction mode, where the serving engines poll.
    fn queue_notices(&self) -> Option<sagaflow_core::runtime::store::SignalNotices> {
        self.inner
            .notices
            .as_ref()
            .map(|notices| notices.queues.clone())
    }

    async fn queued_runs(
        &self,
        queues: &[String],
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        if queues.is_empty() || known.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        crate::lease::queued_runs(&client, &self.inner.session, queues, known, limit)
            .await
            .map_err(|e| pg_error(&self.inner.label, &e))
    }
}

impl PgStore {
    /// Claims up to `limit` of the runs `which` names, of the graphs in `known` (see
    /// [`claim`]): a queue's, the free ones, or this store's share of runs handed over.
    pub(crate) async fn claim_runs(
        &self,
        which: Which<'_>,
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        if known.is_empty() || limit == 0 || matches!(which, Which::FreeShare(0)) {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        claim(
            &client,
            &self.inner.session,
            &self.inner.claims,
            &self.inner.leases,
            which,
            known,
            limit,
        )
        .await
        .map_err(|e| pg_error(&self.inner.label, &e))
    }

    /// Where this store's admissions happen, on `client`.
    fn admitting<'a>(&'a self, client: &'a deadpool_postgres::Object) -> Admitting<'a> {
        Admitting {
            client,
            session: &self.inner.session,
            claims: &self.inner.claims,
            leases: &self.inner.leases,
            schema: &self.inner.schema,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn claimed(run: Option<StoredRun>, sent: Instant) -> Claimed {
        Claimed {
            lease: Lease {
                token: 7,
                recoveries: 1,
            },
            sent,
            run,
            acquired: false,
        }
    }

    fn stored() -> StoredRun {
        StoredRun {
            workflow: "W".to_owned(),
            graph_fingerprint: 1,
            input: "0".to_owned(),
            status: StoredRunStatus::Running,
            error: None,
            created_at: None,
            steps: Vec::new(),
        }
    }

    #[test]
    fn a_claim_answers_one_take_up_then_reads_go_to_the_tables() {
        let leases = Leases::new("me".to_owned(), Duration::from_secs(30), 3);
        let claims = Claims::default();
        let run = RunId::from("r");
        claims.keep(vec![(run.clone(), claimed(Some(stored()), Instant::now()))]);
        // Nobody's load before the take-up's `acquire` is answered from the claim.
        assert!(claims.load(&run).is_none());
        let lease = claims.acquire(&run, &leases).expect("the claim's lease");
        assert_eq!((lease.token, lease.recoveries), (7, 1));
        assert_eq!(leases.token(&run), Some(7), "held as if acquired");
        assert!(claims.acquire(&run, &leases).is_none(), "answered once");
        // That second ask dropped the entry: the load that follows reads the tables.
        assert!(claims.load(&run).is_none());

        claims.keep(vec![(run.clone(), claimed(Some(stored()), Instant::now()))]);
        claims.acquire(&run, &leases).unwrap();
        assert_eq!(claims.load(&run), Some(stored()));
        assert!(claims.load(&run).is_none(), "answered once");
        assert_eq!(claims.len(), 0);
    }

    #[test]
    fn a_started_run_s_take_up_reads_the_tables_and_a_stale_claim_answers_nothing() {
        let leases = Leases::new("me".to_owned(), Duration::from_secs(30), 3);
        let claims = Claims::default();
        let started = RunId::from("started");
        claims.keep(vec![(started.clone(), claimed(None, Instant::now()))]);
        assert!(claims.acquire(&started, &leases).is_some());
        assert!(claims.load(&started).is_none());
        assert_eq!(claims.len(), 0);

        // Claimed most of a lease ago: the lease may be running out; taken again instead.
        let old = RunId::from("old");
        let Some(long_ago) = Instant::now().checked_sub(Duration::from_secs(28)) else {
            return;
        };
        claims.keep(vec![(old.clone(), claimed(Some(stored()), long_ago))]);
        assert!(claims.acquire(&old, &leases).is_none());
        assert_eq!(leases.token(&old), None);
        assert_eq!(claims.len(), 0);

        // Never asked for: dropped at a later claim.
        let Some(older) = Instant::now().checked_sub(KEPT) else {
            return;
        };
        claims.keep(vec![(old.clone(), claimed(None, older))]);
        claims.keep(Vec::new());
        assert_eq!(claims.len(), 0);
    }
}
