//! Reads, each one statement (one snapshot) on a connection of the pool: runs and their
//! steps, the runs to recover, the event log, and signals.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::pg_error;
use crate::session::{Link, Session};
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::events::{Event, EventKind};
use sagaflow_core::runtime::report::StepStatus;
use sagaflow_core::runtime::store::{
    DeliveredSignal, StoredRun, StoredRunStatus, StoredStep, UnfinishedRun,
};

/// [`load_run`]'s statement.
const LOAD_RUN_SQL: &str = "SELECT r.workflow, r.graph_fingerprint, r.input, r.status, r.error, r.parked, \
     r.created_at, s.name, s.status, s.attempts, s.output, s.error, s.started_at \
     FROM runs r LEFT JOIN steps s ON s.run_id = r.run_id \
     WHERE r.run_id = $1 ORDER BY s.first_seq";

/// A run and its steps in the order they first started, read in one statement so that they
/// are one snapshot even while another replica writes.
pub(crate) async fn load_run(
    client: &deadpool_postgres::Object,
    session: &Session,
    label: &str,
    run_id: &str,
) -> Result<Option<StoredRun>, StoreError> {
    // Prepared once per connection: every take-up reads its run so.
    let rows = session
        .query_cached(client, LOAD_RUN_SQL, &[&run_id])
        .await
        .map_err(|e| pg_error(label, &e))?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let status: String = first.get(3);
    let parked: bool = first.get(5);
    let status = match status.as_str() {
        "running" if parked => StoredRunStatus::Parked,
        "running" => StoredRunStatus::Running,
        "completed" => StoredRunStatus::Completed,
        "failed" => StoredRunStatus::Failed,
        "cancelled" => StoredRunStatus::Cancelled,
        other => return Err(bad_value(label, run_id, None, other)),
    };
    let fingerprint: i64 = first.get(1);
    let mut run = StoredRun {
        workflow: first.get(0),
        graph_fingerprint: fingerprint.cast_unsigned(),
        input: first.get(2),
        status,
        error: first.get(4),
        created_at: wall_time(first.get(6)),
        steps: Vec::new(),
    };
    for row in &rows {
        let Some(name) = row.get::<_, Option<String>>(7) else {
            continue;
        };
        let status: String = row.get(8);
        let status = match status.as_str() {
            "running" => StepStatus::Running,
            "completed" => StepStatus::Completed,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped,
            other => return Err(bad_value(label, run_id, Some(&name), other)),
        };
        let attempts: i32 = row.get(9);
        run.steps.push(StoredStep {
            name,
            status,
            attempts: u32::try_from(attempts).unwrap_or(0),
            output: row.get(10),
            error: row.get(11),
            started_at: row.get::<_, Option<i64>>(12).and_then(wall_time),
        });
    }
    Ok(Some(run))
}

/// A time as the schema keeps it (unix ms); a negative one is no time at all.
fn wall_time(ms: i64) -> Option<SystemTime> {
    let ms = u64::try_from(ms).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

fn bad_value(label: &str, run_id: &str, step: Option<&str>, value: &str) -> StoreError {
    let step = step.map(|s| format!(", step `{s}`")).unwrap_or_default();
    StoreError::Backend(format!(
        "database `{label}`: run `{run_id}`{step} has a status this sagaflow does not know: `{value}`"
    ))
}

/// The runs still running and not parked, oldest first.
pub(crate) async fn unfinished_runs(
    client: &Link<'_>,
    label: &str,
) -> Result<Vec<UnfinishedRun>, StoreError> {
    let rows = client
        .query(
            "SELECT run_id, workflow FROM runs WHERE status = 'running' AND NOT parked \
             ORDER BY created_at, created_seq",
            &[],
        )
        .await
        .map_err(|e| pg_error(label, &e))?;
    Ok(rows
        .iter()
        .map(|row| UnfinishedRun {
            run_id: RunId::from(row.get::<_, String>(0)),
            workflow: row.get(1),
        })
        .collect())
}

/// The runs of `workflow` that ended failed or cancelled, oldest first.
pub(crate) async fn stopped_runs(
    client: &Link<'_>,
    label: &str,
    workflow: &str,
) -> Result<Vec<RunId>, StoreError> {
    let rows = client
        .query(
            "SELECT run_id FROM runs WHERE workflow = $1 AND status IN ('failed', 'cancelled') \
             ORDER BY created_at, created_seq",
            &[&workflow],
        )
        .await
        .map_err(|e| pg_error(label, &e))?;
    Ok(rows
        .iter()
        .map(|row| RunId::from(row.get::<_, String>(0)))
        .collect())
}

/// The last `seq` of the log that no transaction can still write below (0 for an empty
/// log): see schema version 7.
/// A row that logs the next step's start too (schema version 10) ends one past its `seq`.
pub(crate) async fn head(client: &Link<'_>, label: &str) -> Result<u64, StoreError> {
    client
        .query_opt(
            "SELECT seq + CASE WHEN next_step IS NULL THEN 0 ELSE 1 END FROM events \
             WHERE seq < readable_below() ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map(|row| row.map_or(0, |row| row.get::<_, i64>(0).cast_unsigned()))
        .map_err(|e| pg_error(label, &e))
}

/// A page of the log, as [`events`] reads it in one statement.
pub(crate) struct Page {
    /// The events, in `seq` order.
    pub(crate) events: Vec<Event>,
    /// Every event below it that is not in `events` lies past the page (or was deleted).
    pub(crate) horizon: u64,
    /// The highest position committed when the statement began (0 if none): every event up to
    /// it is final once `horizon` passes it.
    pub(crate) latest: u64,
}

/// Up to `limit` events after `after`, of `run_id` or of every run, in `seq` order: only
/// those below the horizon (`readable_below`, schema version 7), below which no transaction
/// still running can add one, so that a reader that goes on from the last `seq` it read
/// misses nothing.
///
/// A row that logs the next step's start too (`next_step`, schema version 10) is read as the
/// two events it stands for, the start numbered one past the row; so the row at `after` is
/// read too, for a start past `after` that a page before may have left out.
pub(crate) async fn events(
    client: &Link<'_>,
    label: &str,
    run_id: Option<&str>,
    after: u64,
    limit: usize,
) -> Result<Page, StoreError> {
    // `seq` is a positive bigint: nothing lies past a position beyond it.
    let Ok(after) = i64::try_from(after) else {
        return Ok(Page {
            events: Vec::new(),
            horizon: u64::MAX,
            latest: 0,
        });
    };
    let rows_wanted = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    // One row at least: the horizon, beside each event (or beside none).
    let rows = match run_id {
        None => {
            client
                .query(
                    "WITH h AS MATERIALIZED (SELECT readable_below() AS h, \
                         (SELECT COALESCE(max(seq), 0) FROM events) AS latest) \
                     SELECT h.h, e.seq, e.run_id, e.at, e.kind, e.step, e.attempt, e.detail, \
                         e.next_step, h.latest \
                     FROM h LEFT JOIN LATERAL (SELECT * FROM events \
                         WHERE seq >= $1 AND seq < h.h ORDER BY seq LIMIT $2) e ON true",
                    &[&after, &rows_wanted],
                )
                .await
        }
        Some(run_id) => {
            client
                .query(
                    "WITH h AS MATERIALIZED (SELECT readable_below() AS h, \
                         (SELECT COALESCE(max(seq), 0) FROM events) AS latest) \
                     SELECT h.h, e.seq, e.run_id, e.at, e.kind, e.step, e.attempt, e.detail, \
                         e.next_step, h.latest \
                     FROM h LEFT JOIN LATERAL (SELECT * FROM events \
                         WHERE run_id = $3 AND seq >= $1 AND seq < h.h ORDER BY seq LIMIT $2) e \
                     ON true",
                    &[&after, &rows_wanted, &run_id],
                )
                .await
        }
    }
    .map_err(|e| pg_error(label, &e))?;
    let (horizon, latest) = rows.first().map_or((0, 0), |row| {
        (
            row.get::<_, i64>(0).cast_unsigned(),
            row.get::<_, i64>(9).cast_unsigned(),
        )
    });
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(seq) = row.get::<_, Option<i64>>(1) else {
            continue;
        };
        let (run_id, kind): (String, String) = (row.get(2), row.get(4));
        let Some(kind) = EventKind::parse(&kind) else {
            return Err(StoreError::Backend(format!(
                "database `{label}`: event {seq} of run `{run_id}` has a kind this sagaflow does not know: `{kind}`"
            )));
        };
        let seq = seq.cast_unsigned();
        let run_id = RunId::from(run_id);
        let at_ms = row.get(3);
        let next_step = row.get::<_, Option<String>>(8);
        if seq > after.cast_unsigned() {
            events.push(Event {
                seq,
                run_id: run_id.clone(),
                at_ms,
                kind,
                step: row.get::<_, Option<String>>(5).map(Arc::from),
                attempt: row
                    .get::<_, Option<i32>>(6)
                    .and_then(|a| u32::try_from(a).ok()),
                detail: row.get(7),
            });
        }
        if let Some(next) = next_step {
            events.push(Event::started_in_row(seq, run_id, at_ms, Arc::from(next)));
        }
    }
    events.truncate(limit);
    Ok(Page {
        events,
        horizon,
        latest,
    })
}

/// Keeps the signal unless one of that name was delivered to the run already, numbered under
/// the log lock; returns whether this call delivered it. A run that does not exist is an
/// error naming it.
pub(crate) async fn deliver_signal(
    client: &mut tokio_postgres::Client,
    session: &Session,
    label: &str,
    locks: crate::schema::Locks,
    channel: &str,
    (run_id, name, payload): (&str, &str, &str),
) -> Result<bool, StoreError> {
    let pg = |e: tokio_postgres::Error| pg_error(label, &e);
    let tx = session.transaction(client).await.map_err(pg)?;
    let (k1, k2) = locks.log;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&k1, &k2])
        .await
        .map_err(pg)?;
    let row = tx
        .query_one(
            "WITH run AS (SELECT run_id FROM runs WHERE run_id = $1 FOR KEY SHARE),
             ins AS (
                 INSERT INTO signals (run_id, name, payload, at)
                 SELECT run_id, $2, $3, now_ms() FROM run
                 ON CONFLICT (run_id, name) DO NOTHING RETURNING 1
             )
             SELECT EXISTS (SELECT 1 FROM run), EXISTS (SELECT 1 FROM ins)",
            &[&run_id, &name, &payload],
        )
        .await
        .map_err(pg)?;
    let (exists, delivered): (bool, bool) = (row.get(0), row.get(1));
    if !exists {
        return Err(StoreError::Backend(format!(
            "database `{label}`: no run `{run_id}` to signal `{name}` to"
        )));
    }
    if delivered {
        // Sent at the commit: every replica listening hears of the delivery at once.
        tx.execute("SELECT pg_notify($1, '')", &[&channel])
            .await
            .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(delivered)
}

/// The payload of the signal, if it has been delivered.
pub(crate) async fn signal(
    client: &Link<'_>,
    label: &str,
    run_id: &str,
    name: &str,
) -> Result<Option<String>, StoreError> {
    client
        .query_opt(
            "SELECT payload FROM signals WHERE run_id = $1 AND name = $2",
            &[&run_id, &name],
        )
        .await
        .map(|row| row.map(|row| row.get(0)))
        .map_err(|e| pg_error(label, &e))
}

/// The position of the newest signal, 0 if there is none.
pub(crate) async fn signal_position(client: &Link<'_>, label: &str) -> Result<u64, StoreError> {
    client
        .query_one("SELECT COALESCE(max(position), 0) FROM signals", &[])
        .await
        .map(|row| row.get::<_, i64>(0).cast_unsigned())
        .map_err(|e| pg_error(label, &e))
}

/// At most `limit` signals after position `after`, oldest first.
pub(crate) async fn signals_after(
    client: &Link<'_>,
    label: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<DeliveredSignal>, StoreError> {
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT position, run_id, name FROM signals WHERE position > $1 \
             ORDER BY position LIMIT $2",
            &[&after, &limit],
        )
        .await
        .map_err(|e| pg_error(label, &e))?;
    Ok(rows
        .iter()
        .map(|row| DeliveredSignal {
            position: row.get::<_, i64>(0).cast_unsigned(),
            run_id: RunId::from(row.get::<_, String>(1)),
            name: row.get(2),
        })
        .collect())
}
