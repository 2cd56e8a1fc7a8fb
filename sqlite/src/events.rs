//! The `events` table as a log: the writer publishes each committed event to the engines'
//! sinks, and [`read`] replays it from a position.
//!
//! Events are published from the writer thread after the commit and before the writers are
//! acknowledged, in the order the batch applied them, which is `seq` order: within one
//! process the live feed is the log itself, gapless. Building an event costs a few small
//! allocations, so when no sink has a subscriber the writer only advances the sinks' position.

use std::sync::Arc;

use rusqlite::{Connection, params};

use crate::error::sqlite_error;
use crate::rows::{EventRow, Logged};
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::events::{Event, EventKind};

pub(crate) use sagaflow_core::runtime::events::{Publisher, Publishing};

/// Publishes the event a write of `run_id` logged at `logged`; `row` says what it is, and is
/// called only if a sink listens.
pub(crate) fn logged<'r>(
    to: &mut Publishing<'_>,
    run_id: &str,
    logged: Logged,
    row: impl FnOnce() -> EventRow<'r>,
) {
    to.publish(logged.seq, || {
        let row = row();
        Event {
            seq: logged.seq,
            run_id: RunId::from(run_id),
            at_ms: logged.at,
            kind: row.kind,
            step: row.step.map(Arc::from),
            attempt: row.attempt,
            detail: row.detail,
        }
    });
}

/// The last `seq` in the log, 0 for an empty one: see [`head`].
pub(crate) const HEAD_SQL: &str = "SELECT coalesce((SELECT seq + (next_step IS NOT NULL) \
     FROM events ORDER BY seq DESC LIMIT 1), 0)";

/// The last `seq` in the log (0 for an empty one): one past the newest row's when that row
/// logs a next start too (`next_step`, schema version 13).
pub(crate) fn head(conn: &Connection, label: &str) -> Result<u64, StoreError> {
    conn.query_row(HEAD_SQL, [], |row| row.get::<_, i64>(0))
        .map(i64::cast_unsigned)
        .map_err(|e| sqlite_error(label, &e))
}

/// Up to `limit` events after `after`, of `run_id` or of every run, in `seq` order.
///
/// A row that logs the next step's start too (`next_step`, schema version 13) is read as the
/// two events it stands for, the start numbered one past the row; so the row at `after` is
/// read too, for a start past `after` that a page before may have left out.
pub(crate) fn read(
    conn: &Connection,
    label: &str,
    run_id: Option<&str>,
    after: u64,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    // `seq` is a positive i64: nothing lies past a position beyond it.
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    // The row at `after` besides the `limit` past it.
    let rows_wanted = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    // Two statements rather than `?2 IS NULL OR run_id = ?2`, so each has its index: the
    // primary key for the whole log, `events_by_run` for one run.
    let sql = match run_id {
        None => {
            "SELECT seq, run_id, at, kind, step, attempt, detail, next_step FROM events \
             WHERE seq >= ?1 AND ?2 IS NULL ORDER BY seq LIMIT ?3"
        }
        Some(_) => {
            "SELECT seq, run_id, at, kind, step, attempt, detail, next_step FROM events \
             WHERE run_id = ?2 AND seq >= ?1 ORDER BY seq LIMIT ?3"
        }
    };
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite)?;
    let rows = stmt
        .query_map(params![after, run_id, rows_wanted], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<u32>>(5)?,
                row.get::<_, Option<String>>(6)?,
                row.get::<_, Option<String>>(7)?,
            ))
        })
        .map_err(sqlite)?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, run_id, at_ms, kind, step, attempt, detail, next_step) = row.map_err(sqlite)?;
        let Some(kind) = EventKind::parse(&kind) else {
            return Err(StoreError::Backend(format!(
                "database `{label}`: event {seq} of run `{run_id}` has a kind this sagaflow does not know: `{kind}`"
            )));
        };
        let run_id = RunId::from(run_id);
        if seq > after {
            events.push(Event {
                seq: seq.cast_unsigned(),
                run_id: run_id.clone(),
                at_ms,
                kind,
                step: step.map(Arc::from),
                attempt,
                detail,
            });
        }
        if let Some(next) = next_step {
            let seq = seq.cast_unsigned();
            events.push(Event::started_in_row(seq, run_id, at_ms, Arc::from(next)));
        }
    }
    events.truncate(limit);
    Ok(events)
}
