//! Retention on SQLite: finished runs listed by the time they finished (the `runs_finished`
//! index), and deleted with their rows in short transactions on the writer's connection,
//! between two group commits.
//!
//! Positions: an event's `seq` and a signal's position are rowids, which SQLite numbers from
//! the largest in the table plus one, so deleting the newest rows would hand their numbers out
//! again. A deletion that removes the newest event or signal keeps the number it had in
//! `positions` (the table's *floor*), and every insert numbers its row above both the largest
//! rowid and the floor (see `rows::INSERT_EVENT` and `signals::deliver`).
//!
//! Freed pages go to SQLite's freelist and are used again by later writes: the file stops
//! growing once pruning keeps up, but does not shrink (`VACUUM` would, holding the write lock
//! for the whole copy; sagaflow does not run it).

use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::clock::now_ms;
use crate::error::sqlite_error;
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::StoredRunStatus;
use sagaflow_core::runtime::store::retention::{Deleted, FinishedQuery, FinishedRun, Retention};

/// The statuses `query` lists, as stored, in a JSON array for `json_each`.
fn statuses(query: &FinishedQuery) -> String {
    let names: Vec<&str> = query
        .statuses
        .iter()
        .filter(|s| {
            matches!(
                s,
                StoredRunStatus::Completed | StoredRunStatus::Failed | StoredRunStatus::Cancelled
            )
        })
        .map(|s| s.as_str())
        .collect();
    serde_json::Value::from(names).to_string()
}

/// See [`Retention::finished_runs`].
fn finished_runs(
    conn: &Connection,
    label: &str,
    query: &FinishedQuery,
) -> Result<Vec<FinishedRun>, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    let statuses = statuses(query);
    // The newest `keep` stay: the list ends below the `keep`-th newest.
    let (end_at, end_id) = if query.keep == 0 {
        (i64::MAX, String::new())
    } else {
        let boundary: Option<(i64, String)> = conn
            .prepare_cached(
                "SELECT updated_at, run_id FROM runs \
                 WHERE status <> 'running' AND status IN (SELECT value FROM json_each(?1)) \
                 ORDER BY updated_at DESC, run_id DESC LIMIT 1 OFFSET ?2",
            )
            .map_err(sqlite)?
            .query_row(
                params![statuses, i64::try_from(query.keep - 1).unwrap_or(i64::MAX)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sqlite)?;
        match boundary {
            Some(boundary) => boundary,
            None => return Ok(Vec::new()),
        }
    };
    let before = query.older_than.map_or(i64::MAX, |age| {
        now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
    });
    let (after_at, after_id) = query.after.as_ref().map_or((i64::MIN, String::new()), |c| {
        (c.finished_at, c.run_id.as_str().to_owned())
    });
    let mut stmt = conn
        .prepare_cached(
            "SELECT run_id, workflow, status, updated_at FROM runs \
             WHERE status <> 'running' AND status IN (SELECT value FROM json_each(?1)) \
                 AND updated_at < ?2 AND (updated_at, run_id) < (?3, ?4) \
                 AND (updated_at, run_id) > (?5, ?6) \
             ORDER BY updated_at, run_id LIMIT ?7",
        )
        .map_err(sqlite)?;
    let rows = stmt
        .query_map(
            params![
                statuses,
                before,
                end_at,
                end_id,
                after_at,
                after_id,
                i64::try_from(query.limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )
        .map_err(sqlite)?;
    let mut runs = Vec::new();
    for row in rows {
        let (run_id, workflow, status, finished_at) = row.map_err(sqlite)?;
        let status = StoredRunStatus::parse(&status).ok_or_else(|| {
            StoreError::Backend(format!(
                "database `{label}`: run `{run_id}` has a status this sagaflow does not know: `{status}`"
            ))
        })?;
        runs.push(FinishedRun {
            run_id: RunId::from(run_id),
            workflow,
            status,
            finished_at,
        });
    }
    Ok(runs)
}

/// The largest rowid of `table` (`signals`; the log has [`head`]), 0 for none.
fn newest(conn: &Connection, table: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(&format!("SELECT coalesce(max(rowid), 0) FROM {table}"))?
        .query_row([], |r| r.get(0))
}

/// The last event's `seq`, 0 for none: one past the newest row's when that row logs a next
/// start too (see `events::head`).
fn head(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(crate::events::HEAD_SQL)?
        .query_row([], |r| r.get(0))
}

/// See [`Retention::delete_runs`]: one `BEGIN IMMEDIATE` transaction.
fn delete_runs(conn: &Connection, label: &str, run_ids: &[RunId]) -> Result<Deleted, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite)?;
    let result = (|| {
        let (events_before, signals_before) = (head(conn)?, newest(conn, "signals")?);
        let mut deleted = Deleted::default();
        let mut finished =
            conn.prepare_cached("SELECT 1 FROM runs WHERE run_id = ?1 AND status <> 'running'")?;
        // A row that logs a next start too (schema version 13) is two events.
        let mut events = conn.prepare_cached(
            "DELETE FROM events WHERE run_id = ?1 RETURNING 1 + (next_step IS NOT NULL)",
        )?;
        let mut signals = conn.prepare_cached("DELETE FROM signals WHERE run_id = ?1")?;
        // Steps go with their run (`ON DELETE CASCADE`).
        let mut runs = conn.prepare_cached("DELETE FROM runs WHERE run_id = ?1")?;
        for run_id in run_ids {
            let id = run_id.as_str();
            if finished.query_row([id], |_| Ok(())).optional()?.is_none() {
                continue;
            }
            for n in events.query_map([id], |row| row.get::<_, i64>(0))? {
                deleted.events += n?.unsigned_abs();
            }
            deleted.signals += signals.execute([id])? as u64;
            deleted.runs += runs.execute([id])? as u64;
        }
        let mut floor = conn.prepare_cached(
            "INSERT INTO positions (name, floor) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET floor = max(floor, excluded.floor)",
        )?;
        if head(conn)? < events_before {
            floor.execute(params!["events", events_before])?;
        }
        if newest(conn, "signals")? < signals_before {
            floor.execute(params!["signals", signals_before])?;
        }
        Ok(deleted)
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end);
    let deleted = result.map_err(sqlite)?;
    ended.map_err(sqlite)?;
    Ok(deleted)
}

/// Every workflow name stored, once.
fn workflows(conn: &Connection, label: &str) -> Result<Vec<String>, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT workflow FROM runs")
        .map_err(sqlite)?;
    let rows = stmt.query_map([], |r| r.get(0)).map_err(sqlite)?;
    rows.collect::<Result<_, _>>().map_err(sqlite)
}

/// Finished runs listed on the read connection; deletions on the writer's, each batch a
/// transaction of its own between two group commits.
#[async_trait::async_trait]
impl Retention for SqliteStore {
    async fn finished_runs(&self, query: &FinishedQuery) -> Result<Vec<FinishedRun>, StoreError> {
        let query = query.clone();
        self.read(move |conn, label| finished_runs(conn, label, &query))
            .await
    }

    async fn delete_runs(&self, run_ids: &[RunId]) -> Result<Deleted, StoreError> {
        if run_ids.is_empty() {
            return Ok(Deleted::default());
        }
        let run_ids = run_ids.to_vec();
        self.exclusive(move |conn, label| delete_runs(conn, label, &run_ids))
            .await
    }

    async fn workflows(&self) -> Result<Vec<String>, StoreError> {
        self.read(workflows).await
    }

    /// Nothing: SQLite puts the pages a deletion frees on its freelist, and later commits
    /// use them again; the file stops growing by itself (see benches/README.md, "Retention").
    async fn reclaim(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
