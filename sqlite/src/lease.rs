//! Leases with fencing tokens: which process runs a run, and the refusal of a stale owner.
//!
//! Every store has an owner id. A run's row names the owner holding its lease, when that
//! lease ends unless renewed (`lease_expires`, unix ms) and a fencing token (`lease_token`)
//! that every acquisition bumps. The store remembers the token it holds for each run it runs;
//! every write of a run carries it and is applied only where the row still has it (see
//! `rows::record`), so an owner that lost its lease (paused past its expiry while another
//! process took the run over) has its next write refused with [`StoreError::Fenced`], and
//! nothing of it is kept.
//!
//! The writer thread renews the leases this store holds every third of the lease duration,
//! in one transaction, each renewal fenced by its token; a write of a run renews its lease
//! too once more than half of it is spent (renewing it on every write cost every checkpoint a
//! write of the run's row). A lease that could not be renewed is lost: it is not renewed
//! again, and the next write is fenced. When the store is dropped, its leases are given up
//! (expired at once), so another process need not wait for them.
//!
//! Taking a run up is a write like any other, group-committed by the writer; it counts a
//! recovery, and a run taken up more than the store's maximum is parked (a flag beside its
//! status, see the schema's version 3) with an error naming the count and a `run_parked`
//! event, and is neither listed as unfinished nor taken up again.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::clock::now_ms;
use crate::error::sqlite_error;
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::{FreeRun, KnownGraph, Lease, LeaseStore};

/// The default lease duration.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The default number of times a run may be taken up before it is parked (as DBOS).
pub(crate) const DEFAULT_MAX_RECOVERIES: u32 = 100;

/// The leases a store holds: `sagaflow-core`'s bookkeeping, which every store with leases
/// shares; the SQL that renews and gives them up is below.
pub(crate) type Leases = sagaflow_core::runtime::store::HeldLeases;

/// On the writer's connection: renews every live lease of `leases`, in one transaction, each
/// fenced by its token; a lease found taken over is marked lost.
pub(crate) fn renew(leases: &Leases, conn: &Connection, label: &str) {
    let live = leases.live();
    if live.is_empty() {
        return;
    }
    let sent = std::time::Instant::now();
    match renew_all(
        conn,
        label,
        &live,
        now_ms().saturating_add(leases.lease_ms()),
    ) {
        Ok(lost) => {
            for run_id in &lost {
                tracing::warn!(run_id = %run_id, "the run's lease was taken over by another owner");
                leases.lost(run_id);
            }
            let renewed = live.iter().map(|(run_id, _)| run_id);
            leases.renewed(renewed.filter(|run_id| !lost.contains(run_id)), sent);
        }
        // Not renewed this time; the next tick tries again, well before the expiry.
        Err(error) => tracing::warn!(%error, "the leases could not be renewed"),
    }
}

/// On the writer's connection, as the store closes: expires every lease of `leases` still
/// held, so that another process can take those runs over at once.
pub(crate) fn give_up(leases: &Leases, conn: &Connection, label: &str) {
    leases.pause(false);
    let live = leases.live();
    if live.is_empty() {
        return;
    }
    if let Err(error) = renew_all(conn, label, &live, 0) {
        tracing::warn!(%error, "the leases could not be given up; they will expire");
    }
}

/// On the writer's connection: hands the runs of `held` (each with the token this store held)
/// over at once: their leases expire now and their tokens are bumped (a renewal already under
/// way is fenced), where the run still has that token; the take-up that follows is not counted
/// as a recovery (the count is lowered by one, which the take-up adds back).
pub(crate) fn hand_over(
    conn: &Connection,
    label: &str,
    held: &[(RunId, u64)],
) -> Result<(), StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite)?;
    let result = (|| {
        let mut stmt = conn
            .prepare_cached(
                "UPDATE runs SET lease_expires = 0, lease_token = lease_token + 1, \
                 recoveries = max(recoveries - 1, 0) \
                 WHERE run_id = ?1 AND lease_token = ?2 AND parked = 0",
            )
            .map_err(sqlite)?;
        for (run_id, token) in held {
            let token = i64::try_from(*token).unwrap_or(i64::MAX);
            stmt.execute(params![run_id.as_str(), token])
                .map_err(sqlite)?;
        }
        Ok(())
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(sqlite)?;
    result
}

/// `known` as the listing statements take it: `[[workflow, fingerprint or null], ...]`, the
/// fingerprint as the schema keeps it.
fn known_json(known: &[KnownGraph]) -> String {
    serde_json::Value::Array(
        known
            .iter()
            .map(|k| serde_json::json!([k.workflow, k.fingerprint.map(u64::cast_signed)]))
            .collect(),
    )
    .to_string()
}

/// At most `limit` runs still running, not parked, whose lease has expired or was given up,
/// of the workflows and graphs of `known`, oldest first.
pub(crate) fn free_runs(
    conn: &Connection,
    label: &str,
    known: &[KnownGraph],
    limit: usize,
) -> Result<Vec<FreeRun>, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    let known = known_json(known);
    let mut stmt = conn
        .prepare_cached(
            "SELECT run_id, workflow, graph_fingerprint FROM runs \
             WHERE status = 'running' AND parked = 0 AND queue IS NULL \
             AND (lease_expires IS NULL OR lease_expires <= ?1) \
             AND EXISTS (SELECT 1 FROM json_each(?2) k \
                 WHERE k.value ->> 0 = runs.workflow \
                 AND (k.value ->> 1 IS NULL OR k.value ->> 1 = runs.graph_fingerprint)) \
             ORDER BY created_at, rowid LIMIT ?3",
        )
        .map_err(sqlite)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![now_ms(), known, limit], |row| {
            Ok(FreeRun {
                run_id: RunId::from(row.get::<_, String>(0)?),
                workflow: row.get(1)?,
                graph_fingerprint: row.get::<_, i64>(2)?.cast_unsigned(),
            })
        })
        .map_err(sqlite)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite)
}

/// At most `limit` runs waiting on `queues` that no live lease holds, of the graphs in
/// `known`: highest priority first, then oldest (see `QueueStore::queued_runs`).
pub(crate) fn queued_runs(
    conn: &Connection,
    label: &str,
    queues: &[String],
    known: &[KnownGraph],
    limit: usize,
) -> Result<Vec<FreeRun>, StoreError> {
    list_queued(conn, queues, known, limit).map_err(|e| sqlite_error(label, &e))
}

/// [`queued_runs`], with SQLite's error as it is (for a write that lists them first).
pub(crate) fn list_queued(
    conn: &Connection,
    queues: &[String],
    known: &[KnownGraph],
    limit: usize,
) -> rusqlite::Result<Vec<FreeRun>> {
    let known = known_json(known);
    let queues = serde_json::Value::from(queues.to_vec()).to_string();
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, workflow, graph_fingerprint FROM runs \
         WHERE status = 'running' AND parked = 0 \
         AND queue IN (SELECT value FROM json_each(?3)) \
         AND (lease_expires IS NULL OR lease_expires <= ?1) \
         AND EXISTS (SELECT 1 FROM json_each(?2) k \
             WHERE k.value ->> 0 = runs.workflow \
             AND (k.value ->> 1 IS NULL OR k.value ->> 1 = runs.graph_fingerprint)) \
         ORDER BY priority DESC, created_at, rowid LIMIT ?4",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![now_ms(), known, queues, limit], |row| {
        Ok(FreeRun {
            run_id: RunId::from(row.get::<_, String>(0)?),
            workflow: row.get(1)?,
            graph_fingerprint: row.get::<_, i64>(2)?.cast_unsigned(),
        })
    })?;
    rows.collect()
}

/// A fresh owner id: the process id and a random part, so that two stores never share one.
pub(crate) fn random_owner() -> String {
    format!("pid{}-{:016x}", std::process::id(), fastrand::u64(..))
}

/// Sets `lease_expires = until` on each of `leases` whose token is still the run's, in one
/// transaction. Returns the runs whose lease was found taken over.
fn renew_all(
    conn: &Connection,
    label: &str,
    leases: &[(RunId, u64)],
    until: i64,
) -> Result<Vec<RunId>, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite)?;
    let result = (|| {
        let mut stmt = conn
            .prepare_cached(
                "UPDATE runs SET lease_expires = ?3 WHERE run_id = ?1 AND lease_token = ?2 \
                 AND parked = 0",
            )
            .map_err(sqlite)?;
        let mut lost = Vec::new();
        for (run_id, token) in leases {
            let token = i64::try_from(*token).unwrap_or(i64::MAX);
            if stmt
                .execute(params![run_id.as_str(), token, until])
                .map_err(sqlite)?
                == 0
            {
                lost.push(run_id.clone());
            }
        }
        Ok(lost)
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(sqlite)?;
    result
}

/// What taking a run's lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lease is this owner's now.
    Granted(Lease),
    /// No such run, or it has ended: nothing to lease (the caller's load tells which).
    Nothing,
    /// Another owner holds a live lease.
    Leased { owner: String, until_ms: i64 },
    /// The run is parked (now, or since earlier) after this many recoveries.
    Parked { recoveries: u32 },
}

impl Acquired {
    /// The outcome for the store's caller.
    pub(crate) fn into_result(self, run_id: &RunId) -> Result<Option<Lease>, StoreError> {
        match self {
            Acquired::Granted(lease) => Ok(Some(lease)),
            Acquired::Nothing => Ok(None),
            Acquired::Leased { owner, until_ms } => Err(StoreError::Leased {
                run_id: run_id.clone(),
                owner,
                until_ms,
                expires_in: Duration::from_millis(
                    u64::try_from(until_ms.saturating_sub(now_ms())).unwrap_or(0),
                ),
            }),
            Acquired::Parked { recoveries } => Err(StoreError::Parked {
                run_id: run_id.clone(),
                recoveries,
            }),
        }
    }
}

/// Inside the writer's transaction: takes the lease on `run_id` for `owner`, counting a
/// recovery. Refused while another owner's lease is live; parks the run when this take-up
/// would pass `max_recoveries`, and then also returns when (`at`, unix ms), for the
/// `run_parked` event.
pub(crate) fn acquire(
    conn: &Connection,
    run_id: &str,
    owner: &str,
    lease_ms: i64,
    max_recoveries: u32,
) -> rusqlite::Result<(Acquired, Option<i64>)> {
    let row = conn
        .prepare_cached(
            "SELECT status, parked, owner, lease_expires, recoveries FROM runs \
             WHERE run_id = ?1",
        )?
        .query_row([run_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((status, parked, holder, expires, recoveries)) = row else {
        return Ok((Acquired::Nothing, None));
    };
    let recoveries = u32::try_from(recoveries).unwrap_or(u32::MAX);
    if parked != 0 {
        return Ok((Acquired::Parked { recoveries }, None));
    }
    if status != "running" {
        return Ok((Acquired::Nothing, None));
    }
    let now = now_ms();
    if let (Some(holder), Some(until_ms)) = (holder, expires)
        && holder != owner
        && until_ms > now
    {
        return Ok((
            Acquired::Leased {
                owner: holder,
                until_ms,
            },
            None,
        ));
    }
    let recoveries = recoveries.saturating_add(1);
    if recoveries > max_recoveries {
        let error = format!(
            "parked after {recoveries} recoveries (more than the maximum of {max_recoveries}): the run kept crashing its process, so it is no longer retried"
        );
        conn.prepare_cached(
            "UPDATE runs SET parked = 1, recoveries = ?2, error = ?3, owner = NULL, \
             lease_expires = NULL, lease_token = lease_token + 1, version = version + 1, \
             updated_at = ?4 WHERE run_id = ?1",
        )?
        .execute(params![run_id, recoveries, error, now])?;
        tracing::warn!(
            run_id,
            recoveries,
            "run parked: it kept crashing its process"
        );
        return Ok((Acquired::Parked { recoveries }, Some(now)));
    }
    let token: i64 = conn
        .prepare_cached(
            "UPDATE runs SET owner = ?2, lease_token = lease_token + 1, lease_expires = ?3, \
             recoveries = ?4, \
             started_at = CASE WHEN queue IS NOT NULL THEN COALESCE(started_at, ?5) END \
             WHERE run_id = ?1 RETURNING lease_token",
        )?
        .query_row(
            params![run_id, owner, now.saturating_add(lease_ms), recoveries, now],
            |row| row.get(0),
        )?;
    Ok((
        Acquired::Granted(Lease {
            token: token.cast_unsigned(),
            recoveries,
        }),
        None,
    ))
}

/// Leases in the `runs` table, renewed by the store while a run lives here (see `lease`).
#[async_trait::async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire(&self, run_id: &RunId) -> Result<Lease, StoreError> {
        let leases = &self.inner.leases;
        let op = crate::ops::Acquire {
            run_id: run_id.as_str().to_owned(),
            owner: leases.owner().to_owned(),
            lease_ms: leases.lease_ms(),
            max_recoveries: leases.max_recoveries(),
        };
        let (acquired, _) = self.write(op).await?;
        Ok(leases.acquired(run_id, acquired.into_result(run_id)?))
    }

    fn release(&self, run_id: &RunId) {
        self.inner.leases.forget(run_id);
    }

    async fn give_up(&self, run_ids: &[RunId]) -> Result<(), StoreError> {
        let leases = &self.inner.leases;
        // Forgotten first, so that no renewal extends them again.
        let held: Vec<(RunId, u64)> = run_ids
            .iter()
            .filter_map(|run_id| {
                let token = leases.token(run_id)?;
                leases.forget(run_id);
                Some((run_id.clone(), token))
            })
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        self.exclusive(move |conn, label| hand_over(conn, label, &held))
            .await
    }

    async fn free_runs(
        &self,
        known: &[KnownGraph],
        limit: usize,
    ) -> Result<Vec<FreeRun>, StoreError> {
        if known.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let known = known.to_vec();
        self.read(move |conn, label| free_runs(conn, label, &known, limit))
            .await
    }

    fn holds(&self, run_id: &RunId) -> bool {
        self.inner.leases.holds(run_id)
    }

    async fn heartbeat(
        &self,
        known: &[KnownGraph],
        queues: &[sagaflow_core::runtime::store::replicas::ServedQueue],
    ) -> Result<(), StoreError> {
        let (owner, known, queues) = (self.owner().to_owned(), known.to_vec(), queues.to_vec());
        self.exclusive(move |conn, label| {
            crate::replicas::heartbeat(conn, label, &owner, &known, &queues)
        })
        .await
    }
}
