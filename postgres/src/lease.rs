//! Leases with fencing tokens, as the SQLite store keeps them (see its `lease` module), with
//! the server's clock: a run's row names its owner, the fencing token every take-up bumps,
//! and when the lease ends unless renewed. The store remembers the token it holds for each
//! run it runs; every write carries it (see `writer`). A task renews the live leases every
//! third of the lease, in one statement; a lease found taken over is lost, and the next write
//! of its run is fenced.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::Client;

use crate::PgStore;
use crate::error::{pg_error, pool_error};
use crate::session::Session;
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::{FreeRun, KnownGraph, Lease, LeaseStore};

/// The leases a store holds: `sagaflow-core`'s bookkeeping, which every store with leases
/// shares; the SQL that renews and gives them up is here.
pub(crate) type Leases = sagaflow_core::runtime::store::HeldLeases;

/// The token a write of `run_id` carries: -1 (which no row has) if this store holds none.
pub(crate) fn token(leases: &Leases, run_id: &RunId) -> i64 {
    write_token(leases.token(run_id))
}

/// The token a write carries for the lease's `token`: -1 (which no row has) for none.
pub(crate) fn write_token(token: Option<u64>) -> i64 {
    token.map_or(-1, |token| i64::try_from(token).unwrap_or(i64::MAX))
}

/// The live leases as the renewal's two arrays.
fn live(leases: &Leases) -> (Vec<String>, Vec<i64>) {
    leases
        .live()
        .into_iter()
        .map(|(run_id, token)| {
            (
                run_id.as_str().to_owned(),
                i64::try_from(token).unwrap_or(i64::MAX),
            )
        })
        .unzip()
}

/// Renews every live lease of `leases` in one statement, each fenced by its token; a lease
/// found taken over is marked lost.
pub(crate) async fn renew(
    leases: &Leases,
    pool: &Pool,
    session: &Session,
    label: &str,
) -> Result<(), StoreError> {
    let (runs, tokens) = live(leases);
    if runs.is_empty() {
        return Ok(());
    }
    let mut client = pool.get().await.map_err(|e| pool_error(label, &e))?;
    let sent = std::time::Instant::now();
    let renewed = set_expiry(
        &mut client,
        session,
        &runs,
        &tokens,
        Some(leases.lease_ms()),
    )
    .await
    .map_err(|e| pg_error(label, &e))?;
    for run in runs.iter().filter(|run| !renewed.contains(*run)) {
        tracing::warn!(run_id = %run, "the run's lease was taken over by another owner");
        leases.lost(&RunId::from(run.as_str()));
    }
    let renewed: Vec<RunId> = renewed
        .iter()
        .map(|run| RunId::from(run.as_str()))
        .collect();
    leases.renewed(&renewed, sent);
    Ok(())
}

/// Expires every lease of `leases` still held, so that another replica can take those runs
/// over at once: the store is closing. The runs let go are announced on the schema's channel
/// (`channel`), as a hand-over's are (see [`hand_over`]).
pub(crate) async fn give_up(
    leases: &Leases,
    client: &mut Client,
    session: &Session,
    channel: &str,
) -> Result<(), tokio_postgres::Error> {
    leases.pause(false);
    let (runs, tokens) = live(leases);
    if !runs.is_empty() {
        let expired = set_expiry(client, session, &runs, &tokens, None).await?;
        if !expired.is_empty() {
            let payload = format!("{}{}", crate::notices::FREED, expired.len());
            session
                .on(client)
                .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await?;
        }
    }
    Ok(())
}

/// Hands `runs` (with the tokens this store held) over at once: their leases expire now and
/// their tokens are bumped (a renewal already under way is fenced), where the run still has
/// that token; the take-up that follows is not counted as a recovery (the count is lowered by
/// one, which the take-up adds back). One statement, which locks the rows in `run_id` order
/// as every statement that locks several runs' rows does (schema 7), so that none of them
/// waits for another in a circle.
///
/// The runs handed over are announced on the schema's channel (`channel`, see `notices`) with
/// the commit, counted (`freed:<n>`), so that every replica listening takes its share of
/// them at once.
pub(crate) async fn hand_over(
    client: &mut Client,
    session: &Session,
    channel: &str,
    runs: &[String],
    tokens: &[i64],
) -> Result<(), tokio_postgres::Error> {
    session
        .on(client)
        .execute(
            "WITH l AS MATERIALIZED (SELECT r.run_id FROM runs r \
                 JOIN unnest($1::text[], $2::bigint[]) AS u(run_id, token) ON r.run_id = u.run_id \
                 WHERE r.lease_token = u.token AND NOT r.parked \
                 ORDER BY r.run_id FOR UPDATE OF r), \
             handed AS (UPDATE runs r SET lease_expires = now_ms() - 1, \
                 lease_token = r.lease_token + 1, recoveries = GREATEST(r.recoveries - 1, 0) \
                 FROM l WHERE r.run_id = l.run_id RETURNING 1) \
             SELECT pg_notify($3, $4 || n) FROM (SELECT count(*) AS n FROM handed) c \
             WHERE c.n > 0",
            &[&runs, &tokens, &channel, &crate::notices::FREED],
        )
        .await?;
    Ok(())
}

/// `known` as the listing statements take it: the workflows, and beside each its graph's
/// fingerprint as the schema keeps it (or none, for every graph).
pub(crate) fn known_arrays(known: &[KnownGraph]) -> (Vec<&str>, Vec<Option<i64>>) {
    known
        .iter()
        .map(|k| (k.workflow.as_str(), k.fingerprint.map(u64::cast_signed)))
        .unzip()
}

pub(crate) fn free_run(row: &tokio_postgres::Row) -> FreeRun {
    FreeRun {
        run_id: RunId::from(row.get::<_, String>(0)),
        workflow: row.get(1),
        graph_fingerprint: row.get::<_, i64>(2).cast_unsigned(),
    }
}

/// At most `limit` runs waiting on `queues` that no live lease holds, of the graphs in
/// `known`: highest priority first, then oldest (see `QueueStore::queued_runs`).
pub(crate) async fn queued_runs(
    client: &Client,
    session: &Session,
    queues: &[String],
    known: &[KnownGraph],
    limit: usize,
) -> Result<Vec<FreeRun>, tokio_postgres::Error> {
    let (workflows, graphs) = known_arrays(known);
    let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = session
        .on(client)
        .query(QUEUED_SQL, &[&workflows, &graphs, &limit, &queues])
        .await?;
    Ok(rows.iter().map(free_run).collect())
}

/// The runs waiting on the queues $4 that no live lease holds, of the workflows and graphs
/// $1 and $2 (see [`known_arrays`]): at most $3, highest priority first, then oldest.
pub(crate) const QUEUED_SQL: &str = "SELECT r.run_id, r.workflow, r.graph_fingerprint FROM runs r \
     WHERE r.status = 'running' AND NOT r.parked AND r.queue = ANY($4) \
     AND (r.lease_expires IS NULL OR r.lease_expires <= now_ms()) \
     AND EXISTS (SELECT 1 FROM unnest($1::text[], $2::bigint[]) AS k(workflow, graph) \
         WHERE k.workflow = r.workflow \
         AND (k.graph IS NULL OR k.graph = r.graph_fingerprint)) \
     ORDER BY r.priority DESC, r.created_at, r.created_seq LIMIT $3";

/// Sets the lease of each of `runs` whose token is still `tokens`' to expire `lease_ms` from
/// now by the server's clock (`None`: now). Returns the runs it found still held. One
/// statement, which locks the rows in `run_id` order (see `hand_over`).
async fn set_expiry(
    client: &mut Client,
    session: &Session,
    runs: &[String],
    tokens: &[i64],
    lease_ms: Option<i64>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = session
        .on(client)
        .query(
            "WITH l AS MATERIALIZED (SELECT r.run_id FROM runs r \
                 JOIN unnest($1::text[], $2::bigint[]) AS u(run_id, token) ON r.run_id = u.run_id \
                 WHERE r.lease_token = u.token AND NOT r.parked \
                 ORDER BY r.run_id FOR NO KEY UPDATE OF r) \
             UPDATE runs r SET lease_expires = now_ms() + COALESCE($3::bigint, -1) \
             FROM l WHERE r.run_id = l.run_id RETURNING r.run_id",
            &[&runs, &tokens, &lease_ms],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// What taking a run's lease found.
pub(crate) enum Acquired {
    /// The lease is this owner's now.
    Granted(Lease),
    /// No such run, or it has ended.
    Nothing,
    /// Another owner holds a live lease, until (unix ms by the server's clock) `until_ms`,
    /// which is `left_ms` from now.
    Leased {
        owner: String,
        until_ms: i64,
        left_ms: i64,
    },
    /// The run is parked after this many recoveries; `Some((seq, at))` of the `run_parked`
    /// event if this take-up parked it.
    Parked {
        recoveries: u32,
        logged: Option<(u64, i64)>,
    },
}

impl Acquired {
    /// The outcome for the store's caller.
    pub(crate) fn into_result(self, run_id: &RunId) -> Result<Option<Lease>, StoreError> {
        match self {
            Acquired::Granted(lease) => Ok(Some(lease)),
            Acquired::Nothing => Ok(None),
            Acquired::Leased {
                owner,
                until_ms,
                left_ms,
            } => Err(StoreError::Leased {
                run_id: run_id.clone(),
                owner,
                until_ms,
                expires_in: Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)),
            }),
            Acquired::Parked { recoveries, .. } => Err(StoreError::Parked {
                run_id: run_id.clone(),
                recoveries,
            }),
        }
    }
}

/// The usual take-up, and the usual refusal, in one statement (see [`acquire`]): the lease
/// if the run runs, is not parked, its lease is free (none, this owner's, or run out) and
/// this take-up does not pass the maximum ($4); and the row as it was locked, which tells
/// another owner's live lease.
const ACQUIRE_SQL: &str = "WITH l AS (SELECT run_id, status, parked, owner, lease_expires FROM runs \
         WHERE run_id = $1 FOR UPDATE), \
     u AS (UPDATE runs SET owner = $2, lease_token = lease_token + 1, \
         lease_expires = now_ms() + $3, recoveries = recoveries + 1, \
         started_at = CASE WHEN queue IS NOT NULL THEN COALESCE(started_at, now_ms()) END \
         FROM l WHERE runs.run_id = l.run_id AND runs.status = 'running' AND NOT runs.parked \
         AND runs.recoveries < $4 \
         AND (runs.owner IS NULL OR runs.owner = $2 OR runs.lease_expires IS NULL \
             OR runs.lease_expires <= now_ms()) \
         RETURNING runs.lease_token, runs.recoveries) \
     SELECT u.lease_token, u.recoveries, l.status, l.parked, l.owner, l.lease_expires, now_ms() \
     FROM l LEFT JOIN u ON true";

/// Takes the lease on `run_id` for `owner`, counting a recovery, in a transaction of its own
/// on `client`: refused while another owner's lease is live; parks the run when this take-up
/// would pass `max_recoveries`, logging `run_parked`. It locks the run's row alone, so it
/// never waits in a circle with a statement that locks several (see `hand_over`).
pub(crate) async fn acquire(
    client: &mut deadpool_postgres::Object,
    session: &Session,
    run_id: &str,
    owner: &str,
    lease_ms: i64,
    max_recoveries: u32,
) -> Result<Acquired, tokio_postgres::Error> {
    // The usual take-up, and the usual refusal, in one autocommitted statement: the run
    // runs, is not parked, its lease is free (none, this owner's, or run out), and this
    // take-up does not pass the maximum; or else another owner's live lease, which the
    // statement reads off the row it locked (when the replicas left find a dead one's runs,
    // most of their tries find a run another of them took a moment before, and each of those
    // was a transaction of four round trips). It locks the run's row alone, and waits for
    // nothing while it holds it. Anything else (ended, parked, or parked now, which logs the
    // parking) goes the long way below, which finds out which.
    let below = i32::try_from(max_recoveries).unwrap_or(i32::MAX);
    // Prepared once per connection (its planning cost the server more than running it).
    let fast = session
        .query_cached(client, ACQUIRE_SQL, &[&run_id, &owner, &lease_ms, &below])
        .await?;
    let Some(row) = fast.first() else {
        return Ok(Acquired::Nothing);
    };
    if let (Some(token), Some(recoveries)) =
        (row.get::<_, Option<i64>>(0), row.get::<_, Option<i32>>(1))
    {
        return Ok(Acquired::Granted(Lease {
            token: token.cast_unsigned(),
            recoveries: u32::try_from(recoveries).unwrap_or(0),
        }));
    }
    let (status, parked, holder, expires, now): (String, bool, Option<String>, Option<i64>, i64) =
        (row.get(2), row.get(3), row.get(4), row.get(5), row.get(6));
    if status == "running"
        && !parked
        && let (Some(holder), Some(until_ms)) = (holder, expires)
        && holder != owner
        && until_ms > now
    {
        return Ok(Acquired::Leased {
            owner: holder,
            until_ms,
            left_ms: until_ms - now,
        });
    }
    let tx = session.transaction(client).await?;
    let row = tx
        .query_opt(
            "SELECT status, parked, owner, lease_expires, recoveries, now_ms() FROM runs \
             WHERE run_id = $1 FOR UPDATE",
            &[&run_id],
        )
        .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Ok(Acquired::Nothing);
    };
    let (status, parked, holder, expires, recoveries, now): (
        String,
        bool,
        Option<String>,
        Option<i64>,
        i32,
        i64,
    ) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    );
    let recoveries = u32::try_from(recoveries).unwrap_or(0);
    if parked {
        tx.commit().await?;
        return Ok(Acquired::Parked {
            recoveries,
            logged: None,
        });
    }
    if status != "running" {
        tx.commit().await?;
        return Ok(Acquired::Nothing);
    }
    if let (Some(holder), Some(until_ms)) = (holder, expires)
        && holder != owner
        && until_ms > now
    {
        tx.commit().await?;
        return Ok(Acquired::Leased {
            owner: holder,
            until_ms,
            left_ms: until_ms - now,
        });
    }
    let recoveries = recoveries.saturating_add(1);
    let count = i32::try_from(recoveries).unwrap_or(i32::MAX);
    if recoveries > max_recoveries {
        let error = format!(
            "parked after {recoveries} recoveries (more than the maximum of {max_recoveries}): the run kept crashing its process, so it is no longer retried"
        );
        let logged = tx
            .query_one(
                "WITH park AS (
                     UPDATE runs SET parked = true, recoveries = $2, error = $3, owner = NULL,
                         lease_expires = NULL, lease_token = lease_token + 1,
                         version = version + 1, updated_at = now_ms()
                     WHERE run_id = $1 RETURNING updated_at
                 )
                 INSERT INTO events (run_id, at, kind) SELECT $1, updated_at, 'run_parked'
                 FROM park RETURNING seq, at",
                &[&run_id, &count, &error],
            )
            .await?;
        tx.commit().await?;
        tracing::warn!(
            run_id,
            recoveries,
            "run parked: it kept crashing its process"
        );
        let seq: i64 = logged.get(0);
        return Ok(Acquired::Parked {
            recoveries,
            logged: Some((seq.cast_unsigned(), logged.get(1))),
        });
    }
    let token: i64 = tx
        .query_one(
            "UPDATE runs SET owner = $2, lease_token = lease_token + 1, \
             lease_expires = now_ms() + $3, recoveries = $4, \
             started_at = CASE WHEN queue IS NOT NULL THEN COALESCE(started_at, now_ms()) END \
             WHERE run_id = $1 RETURNING lease_token",
            &[&run_id, &owner, &lease_ms, &count],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(Acquired::Granted(Lease {
        token: token.cast_unsigned(),
        recoveries,
    }))
}

/// Leases in the `runs` table, timed by the server's clock and renewed while a run lives here.
#[async_trait::async_trait]
impl LeaseStore for PgStore {
    async fn acquire(&self, run_id: &RunId) -> Result<Lease, StoreError> {
        let leases = &self.inner.leases;
        if !self.inner.owner.holds() {
            return Err(StoreError::Backend(format!(
                "database `{}`: run `{run_id}` is not taken up: this store's owner id `{}` is not held (its connection was lost) until it is claimed again",
                self.inner.label,
                leases.owner()
            )));
        }
        // A run this store's claim took up a moment ago: its lease is this owner's already.
        if let Some(lease) = self.inner.claims.acquire(run_id, leases) {
            return Ok(lease);
        }
        let mut client = self.client().await?;
        let acquired = acquire(
            &mut client,
            &self.inner.session,
            run_id.as_str(),
            leases.owner(),
            leases.lease_ms(),
            leases.max_recoveries(),
        )
        .await
        .map_err(|e| pg_error(&self.inner.label, &e))?;
        if let Acquired::Parked {
            logged: Some((seq, _)),
            ..
        } = &acquired
        {
            self.inner.tail.committed(&self.inner.publisher, [*seq]);
        }
        Ok(leases.acquired(run_id, acquired.into_result(run_id)?))
    }

    fn release(&self, run_id: &RunId) {
        self.inner.claims.forget(run_id);
        self.inner.leases.forget(run_id);
    }

    async fn give_up(&self, run_ids: &[RunId]) -> Result<(), StoreError> {
        let leases = &self.inner.leases;
        // Forgotten first, so that no later renewal extends them again (one under way is
        // fenced by the token the hand-over bumps).
        let (runs, tokens): (Vec<String>, Vec<i64>) = run_ids
            .iter()
            .filter_map(|run_id| {
                let held = token(leases, run_id);
                // A run a claim leased here and nothing took up (the engine began to drain):
                // given up with the claim's token.
                let claimed = self.inner.claims.forget(run_id);
                leases.forget(run_id);
                let token = match claimed {
                    Some(lease) if held < 0 => lease.token.cast_signed(),
                    _ => held,
                };
                (token >= 0).then(|| (run_id.as_str().to_owned(), token))
            })
            .unzip();
        if runs.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        hand_over(
            &mut client,
            &self.inner.session,
            &self.inner.channel,
            &runs,
            &tokens,
        )
        .await
        .map_err(|e| pg_error(&self.inner.label, &e))
    }

    async fn free_runs(
        &self,
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        // Claimed (see `claims::claim`): leased to this store's owner in the listing's
        // statement, different runs for replicas listing at once; the take-ups that follow
        // are answered from the claim.
        self.claim_runs(crate::claims::Which::Free, known, limit)
            .await
    }

    /// Claimed as [`free_runs`](Self::free_runs) claims, at most this store's share of the
    /// `freed` runs: `freed` divided by the replicas heard from within
    /// [`live_within_ms`](sagaflow_core::runtime::store::replicas::live_within_ms) that run
    /// one of the workflows `known` names and hold none of the free runs (they handed them
    /// over, or died), rounded up (see `claims`).
    async fn free_runs_shared(
        &self,
        known: &[KnownGraph],
        limit: usize,
        freed: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        self.claim_runs(crate::claims::Which::FreeShare(freed), known, limit)
            .await
    }

    /// Notices of hand-overs from the store's `LISTEN` connection (see `notices`); none
    /// behind a pooler in transaction mode, where the engines poll.
    fn freed_notices(&self) -> Option<sagaflow_core::runtime::store::SignalNotices> {
        self.inner
            .notices
            .as_ref()
            .map(|notices| notices.freed.clone())
    }

    fn holds(&self, run_id: &RunId) -> bool {
        self.inner.leases.holds(run_id)
    }

    async fn heartbeat(
        &self,
        known: &[KnownGraph],
        queues: &[sagaflow_core::runtime::store::replicas::ServedQueue],
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let owner = self.inner.leases.owner();
        crate::replicas::heartbeat(&client, &self.inner.session, owner, known, queues)
            .await
            .map_err(|e| pg_error(&self.inner.label, &e))
    }
}
