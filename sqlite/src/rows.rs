//! Mapping between the store's types and the rows of the schema.
//!
//! The caller's side turns a borrowed [`Change`] into an owned [`ChangeRow`] (encoding the
//! output there, so a value that does not serialize fails its caller before anything reaches
//! the writer); the writes of `ops` apply them with [`create_run`] and [`record`] inside the
//! writer's transaction. Reads map rows back into [`StoredRun`] and [`UnfinishedRun`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::now_ms;
use crate::error::sqlite_error;
use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::events::EventKind;
use sagaflow_core::runtime::report::StepStatus;
use sagaflow_core::runtime::store::{
    Change, Created, StoredRun, StoredRunStatus, StoredStep, UnfinishedRun,
};

/// Where and when a write's event went into the `events` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Logged {
    /// The event's `seq`.
    pub(crate) seq: u64,
    /// Its `at`, unix milliseconds.
    pub(crate) at: i64,
}

/// A [`Change`], owned, with the output already encoded.
#[derive(Debug, Clone)]
pub(crate) enum ChangeRow {
    StepStarted {
        step: String,
        attempt: u32,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        error: String,
        permanent: bool,
        delay_ms: u64,
    },
    StepCompleted {
        step: String,
        attempt: u32,
        output: String,
    },
    StepFailed {
        step: String,
        attempts: u32,
        error: String,
        permanent: bool,
    },
    StepSkipped {
        step: String,
    },
    RunCompleted,
    RunFailed {
        error: String,
    },
    RunCancelled,
}

/// A change as the rows it writes, its output encoded.
pub(crate) fn change_row(run_id: &RunId, change: &Change<'_>) -> Result<ChangeRow, StoreError> {
    let change = match *change {
        Change::StepStarted { step, attempt } => ChangeRow::StepStarted {
            step: step.to_owned(),
            attempt,
        },
        Change::StepRetrying {
            step,
            attempt,
            error,
            delay,
        } => ChangeRow::StepRetrying {
            step: step.to_owned(),
            attempt,
            error: error.message().to_owned(),
            permanent: error.is_permanent(),
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        },
        Change::StepCompleted {
            step,
            attempt,
            output,
            codec,
        } => ChangeRow::StepCompleted {
            step: step.to_owned(),
            attempt,
            output: (codec.encode)(output).map_err(|message| StoreError::Codec {
                run_id: run_id.clone(),
                step: step.to_owned(),
                message: format!("the output cannot be encoded: {message}"),
            })?,
        },
        Change::StepFailed {
            step,
            attempts,
            error,
        } => ChangeRow::StepFailed {
            step: step.to_owned(),
            attempts,
            error: error.message().to_owned(),
            permanent: error.is_permanent(),
        },
        Change::StepSkipped { step } => ChangeRow::StepSkipped {
            step: step.to_owned(),
        },
        Change::RunCompleted => ChangeRow::RunCompleted,
        Change::RunFailed { error } => ChangeRow::RunFailed {
            error: error.to_string(),
        },
        Change::RunCancelled => ChangeRow::RunCancelled,
    };
    Ok(change)
}

/// Why applying a write failed.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// The write cannot apply to this database.
    Refused(StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(error: rusqlite::Error) -> Self {
        ApplyError::Sqlite(error)
    }
}

/// An event numbered above the newest and above the floor a deletion of the newest left (see
/// `retention`): `seq` never goes back. The newest row's number counts one more when it logs
/// a next start too (`next_step`, schema version 13), which holds the number past its own.
/// A step's completion carries its output (`steps` is a view of the events since schema 11).
const INSERT_EVENT: &str = "INSERT INTO events (seq, run_id, at, kind, step, attempt, detail, \
     output, next_step) VALUES (max(coalesce((SELECT seq + (next_step IS NOT NULL) FROM events \
                     ORDER BY seq DESC LIMIT 1), 0), \
                 coalesce((SELECT floor FROM positions WHERE name = 'events'), 0)) + 1, \
             ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Creates a run unless one has the id, leased to `owner` with token 1: what it found, and
/// the `run_created` event if the run is new.
/// Who holds a run being created: its owner under a lease, or nobody yet (on a queue).
#[derive(Debug)]
pub(crate) enum Held {
    /// Leased to `owner` for `lease_ms`.
    By { owner: String, lease_ms: i64 },
    /// Waiting on `queue` at `priority`, with a concurrency key or none.
    Queued {
        queue: String,
        priority: i32,
        key: Option<String>,
    },
}

pub(crate) fn create_run(
    conn: &Connection,
    run_id: &str,
    workflow: &str,
    (graph_fingerprint, graph): (i64, Option<&str>),
    input: &str,
    (held, first_step): (&Held, Option<&str>),
) -> Result<(Created, Option<Logged>), ApplyError> {
    let at = now_ms();
    if let Some(graph) = graph {
        // Stored once for its workflow and fingerprint (schema 12), not in the run's row.
        conn.prepare_cached(
            "INSERT INTO graphs (workflow, fingerprint, graph) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![workflow, graph_fingerprint, graph])?;
    }
    let inserted = match held {
        Held::By { owner, lease_ms } => conn
            .prepare_cached(
                "INSERT INTO runs (run_id, workflow, graph_fingerprint, input, status, error, \
                 version, created_at, updated_at, owner, lease_token, lease_expires) \
                 VALUES (?1, ?2, ?3, ?4, 'running', NULL, 1, ?5, ?5, ?6, 1, ?7) \
                 ON CONFLICT (run_id) DO NOTHING",
            )?
            .execute(params![
                run_id,
                workflow,
                graph_fingerprint,
                input,
                at,
                owner,
                at.saturating_add(*lease_ms),
            ])?,
        // No owner, no lease: it waits for an engine serving the queue.
        Held::Queued {
            queue,
            priority,
            key,
        } => conn
            .prepare_cached(
                "INSERT INTO runs (run_id, workflow, graph_fingerprint, input, status, error, \
                 version, created_at, updated_at, owner, lease_token, lease_expires, \
                 queue, priority, queue_key) \
                 VALUES (?1, ?2, ?3, ?4, 'running', NULL, 1, ?5, ?5, NULL, 0, NULL, ?6, ?7, ?8) \
                 ON CONFLICT (run_id) DO NOTHING",
            )?
            .execute(params![
                run_id,
                workflow,
                graph_fingerprint,
                input,
                at,
                queue,
                priority,
                key
            ])?,
    };
    if inserted == 0 {
        let workflow: String = conn
            .prepare_cached("SELECT workflow FROM runs WHERE run_id = ?1")?
            .query_row([run_id], |row| row.get(0))?;
        return Ok((Created::Existing { workflow }, None));
    }
    conn.prepare_cached(INSERT_EVENT)?.execute(params![
        run_id,
        at,
        EventKind::RunCreated.as_str(),
        None::<&str>,
        None::<i64>,
        None::<&str>,
        None::<&str>,
        first_step
    ])?;
    Ok((Created::New, Some(logged(conn, at))))
}

/// Adds an event of the run as a whole (no step, no detail) to the log.
pub(crate) fn log_event(
    conn: &Connection,
    run_id: &str,
    at: i64,
    kind: EventKind,
) -> rusqlite::Result<Logged> {
    conn.prepare_cached(INSERT_EVENT)?.execute(params![
        run_id,
        at,
        kind.as_str(),
        None::<&str>,
        None::<i64>,
        None::<&str>,
        None::<&str>,
        None::<&str>
    ])?;
    Ok(logged(conn, at))
}

/// The event just inserted on `conn`, at `at`.
fn logged(conn: &Connection, at: i64) -> Logged {
    Logged {
        // `seq` is the rowid, numbered from 1 by `INSERT_EVENT`.
        seq: conn.last_insert_rowid().cast_unsigned(),
        at,
    }
}

/// An event as the `events` table holds it.
pub(crate) struct EventRow<'a> {
    pub(crate) kind: EventKind,
    pub(crate) step: Option<&'a str>,
    pub(crate) attempt: Option<u32>,
    pub(crate) detail: Option<String>,
}

impl EventRow<'_> {
    /// An event of the run as a whole, as [`log_event`] writes it.
    pub(crate) fn of_run(kind: EventKind) -> EventRow<'static> {
        EventRow {
            kind,
            step: None,
            attempt: None,
            detail: None,
        }
    }
}

/// Records `change` of `run_id`, fenced by `token` (`None`: this store holds no lease on the
/// run, so the change is refused), renewing the lease by `lease_ms`: the event it logged.
pub(crate) fn record(
    conn: &Connection,
    label: &str,
    run_id: &str,
    change: &ChangeRow,
    lease: (Option<u64>, i64),
) -> Result<Logged, ApplyError> {
    let at = now_ms();
    write_run(conn, label, run_id, change, lease, false, at)?;
    let mut insert = conn.prepare_cached(INSERT_EVENT)?;
    log_change(conn, &mut insert, run_id, at, (change, None))
}

/// Logs `change` of `run_id`, a run this very transaction created, leased to this store:
/// nothing to fence, nothing of the run's row to write. The start of the step a run begins
/// with (`NewRun::first_step`), in the creation's commit.
pub(crate) fn log_created(
    conn: &Connection,
    run_id: &str,
    at: i64,
    change: &ChangeRow,
) -> Result<Logged, ApplyError> {
    let mut insert = conn.prepare_cached(INSERT_EVENT)?;
    log_change(conn, &mut insert, run_id, at, (change, None))
}

/// Records `first` and `then` of `run_id` (a step's completion and the next step's start, or
/// the run's end), fenced once, the event statement looked up once for both. (One
/// `INSERT … SELECT` of both rows was tried: it reads `events` while inserting into it, which
/// SQLite answers with a temporary table; 100 concurrent runs lost a third of their rate.)
/// With `compact` (`SqliteOptions::compact_log`), a first attempt's start that follows a
/// change of a step goes in `first`'s row (see [`next_step`]), numbered one past it.
pub(crate) fn record_pair(
    conn: &Connection,
    label: &str,
    run_id: &str,
    (first, then): (&ChangeRow, &ChangeRow),
    (lease, compact): ((Option<u64>, i64), bool),
) -> Result<(Logged, Logged), ApplyError> {
    let at = now_ms();
    write_run(conn, label, run_id, first, lease, false, at)?;
    // The first change read the fence in this very transaction.
    write_run(conn, label, run_id, then, lease, true, at)?;
    let mut insert = conn.prepare_cached(INSERT_EVENT)?;
    if compact && let Some(next) = next_step(first, then) {
        let first = log_change(conn, &mut insert, run_id, at, (first, Some(next)))?;
        let then = Logged {
            seq: first.seq.saturating_add(1),
            at,
        };
        return Ok((first, then));
    }
    let first = log_change(conn, &mut insert, run_id, at, (first, None))?;
    Ok((
        first,
        log_change(conn, &mut insert, run_id, at, (then, None))?,
    ))
}

/// The step whose start `then` is, if the row of `first` may log it too (`next_step`, schema
/// version 13): a first attempt's start after a change of a step. Every reader reads such a
/// start as `step_started`, attempt 1, at the row's time, with no detail, which is all a
/// first attempt's start holds.
pub(crate) fn next_step<'a>(first: &ChangeRow, then: &'a ChangeRow) -> Option<&'a str> {
    let of_step = !matches!(
        first,
        ChangeRow::RunCompleted | ChangeRow::RunFailed { .. } | ChangeRow::RunCancelled
    );
    match then {
        ChangeRow::StepStarted { step, attempt: 1 } if of_step => Some(step),
        _ => None,
    }
}

/// Appends the event of `change` with `insert` (the prepared [`INSERT_EVENT`]), and the start
/// of `next` in the same row if given (see [`next_step`]). The event is a step's only record,
/// a completion's carrying its output: `steps` reads them (see `schema`'s version 11).
fn log_change(
    conn: &Connection,
    insert: &mut rusqlite::CachedStatement<'_>,
    run_id: &str,
    at: i64,
    (change, next): (&ChangeRow, Option<&str>),
) -> Result<Logged, ApplyError> {
    let event = event_row(change);
    let output = match change {
        ChangeRow::StepCompleted { output, .. } => Some(output.as_str()),
        _ => None,
    };
    insert.execute(params![
        run_id,
        at,
        event.kind.as_str(),
        event.step,
        event.attempt,
        event.detail,
        output,
        next
    ])?;
    Ok(logged(conn, at))
}

/// What a change writes of the run's row, if anything, fenced by `token` (`None`: this store
/// holds no lease on the run, so the change is refused): a step's change reads the fence and
/// renews a lease more than half spent; the run's end writes its status. `fenced`: the fence
/// was read in this transaction already (by the first change of a pair). Nothing is changed
/// when the change is refused.
fn write_run(
    conn: &Connection,
    label: &str,
    run_id: &str,
    change: &ChangeRow,
    (token, lease_ms): (Option<u64>, i64),
    fenced: bool,
    at: i64,
) -> Result<(), ApplyError> {
    let (run_status, run_error) = match change {
        ChangeRow::RunCompleted => (Some("completed"), None),
        ChangeRow::RunFailed { error } => (Some("failed"), Some(error.as_str())),
        ChangeRow::RunCancelled => (Some("cancelled"), None),
        _ => (None, None),
    };
    // Fenced: applied only while the run's token is this store's (no token matches -1), and
    // not to a parked run.
    let fence = token.map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX));
    let refused = |exists: bool| {
        ApplyError::Refused(if exists {
            StoreError::Fenced {
                run_id: RunId::from(run_id),
                token: token.unwrap_or(0),
            }
        } else {
            StoreError::Backend(format!(
                "database `{label}`: no run `{run_id}` to record a change of"
            ))
        })
    };
    if run_status.is_none() && !fenced {
        // A step's change reads the fence and leaves the run's row alone unless its lease is
        // more than half spent, when the write renews it (as the heartbeats do): one page
        // fewer to write on most checkpoints. So `updated_at` is the time of the last renewal
        // or of the run's end. (The second change of a pair skips this: the first read the
        // fence in the same transaction.)
        let found = conn
            .prepare_cached(
                "SELECT lease_token, parked, lease_expires FROM runs WHERE run_id = ?1",
            )?
            .query_row([run_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                ))
            })
            .optional()?;
        let Some((held, parked, expires)) = found else {
            return Err(refused(false));
        };
        if held != fence || parked != 0 {
            return Err(refused(true));
        }
        if expires.is_none_or(|expires| expires.saturating_sub(at) < lease_ms / 2) {
            conn.prepare_cached(
                "UPDATE runs SET version = version + 1, updated_at = ?2, lease_expires = ?3 \
                 WHERE run_id = ?1",
            )?
            .execute(params![run_id, at, at.saturating_add(lease_ms)])?;
        }
    } else if run_status.is_some() {
        // The run's end: its status, and the lease let go.
        let updated = conn
            .prepare_cached(
                "UPDATE runs SET version = version + 1, updated_at = ?2, status = ?3, \
                 error = COALESCE(?4, error), lease_expires = NULL \
                 WHERE run_id = ?1 AND lease_token = ?5 AND parked = 0",
            )?
            .execute(params![run_id, at, run_status, run_error, fence])?;
        if updated == 0 {
            let exists = conn
                .prepare_cached("SELECT 1 FROM runs WHERE run_id = ?1")?
                .query_row([run_id], |_| Ok(()))
                .optional()?
                .is_some();
            return Err(refused(exists));
        }
    }
    Ok(())
}

/// The event row of a change, as [`record`] writes it (a completion's output goes in its own
/// column).
pub(crate) fn event_row(change: &ChangeRow) -> EventRow<'_> {
    match change {
        ChangeRow::StepStarted { step, attempt } => {
            event(EventKind::StepStarted, Some(step), Some(*attempt), None)
        }
        ChangeRow::StepRetrying {
            step,
            attempt,
            error,
            permanent,
            delay_ms,
        } => event(
            EventKind::StepRetrying,
            Some(step),
            Some(*attempt),
            Some(serde_json::json!({
                "error": error, "permanent": permanent, "delay_ms": delay_ms
            })),
        ),
        ChangeRow::StepCompleted { step, attempt, .. } => {
            event(EventKind::StepCompleted, Some(step), Some(*attempt), None)
        }
        ChangeRow::StepFailed {
            step,
            attempts,
            error,
            permanent,
        } => event(
            EventKind::StepFailed,
            Some(step),
            Some(*attempts),
            Some(serde_json::json!({ "error": error, "permanent": permanent })),
        ),
        ChangeRow::StepSkipped { step } => event(EventKind::StepSkipped, Some(step), None, None),
        ChangeRow::RunCompleted => event(EventKind::RunCompleted, None, None, None),
        ChangeRow::RunFailed { error } => event(
            EventKind::RunFailed,
            None,
            None,
            Some(serde_json::json!({ "error": error })),
        ),
        ChangeRow::RunCancelled => event(EventKind::RunCancelled, None, None, None),
    }
}

fn event<'a>(
    kind: EventKind,
    step: Option<&'a str>,
    attempt: Option<u32>,
    detail: Option<serde_json::Value>,
) -> EventRow<'a> {
    EventRow {
        kind,
        step,
        attempt,
        detail: detail.map(|d| d.to_string()),
    }
}

/// Reads a run and its steps, in the order they first started.
pub(crate) fn load_run(
    conn: &Connection,
    label: &str,
    run_id: &str,
) -> Result<Option<StoredRun>, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    let run = conn
        .prepare_cached(
            "SELECT workflow, graph_fingerprint, input, status, error, parked, created_at \
             FROM runs WHERE run_id = ?1",
        )
        .map_err(sqlite)?
        .query_row([run_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })
        .optional()
        .map_err(sqlite)?;
    let Some((workflow, fingerprint, input, status, error, parked, created_at)) = run else {
        return Ok(None);
    };
    let status = match status.as_str() {
        "running" if parked != 0 => StoredRunStatus::Parked,
        "running" => StoredRunStatus::Running,
        "completed" => StoredRunStatus::Completed,
        "failed" => StoredRunStatus::Failed,
        "cancelled" => StoredRunStatus::Cancelled,
        other => return Err(bad_value(label, run_id, None, other)),
    };
    let steps = steps_of(conn, label, run_id)?;
    Ok(Some(StoredRun {
        workflow,
        graph_fingerprint: fingerprint.cast_unsigned(),
        input,
        status,
        error,
        created_at: wall_time(created_at),
        steps,
    }))
}

/// The steps of `run_id` in the order they first started, each as its changes left it: what
/// the `steps` view gives (see `schema`'s version 11), folded here from the run's events in
/// one pass of `events_by_run`. The view groups and sorts the events, three times as long for
/// a run of 10,000 steps (benches/README.md, `reload_10000`); the inspector reads the view,
/// and the conformance check `a_step_s_standing_is_what_its_changes_left` holds both to
/// the same standing.
fn steps_of(conn: &Connection, label: &str, run_id: &str) -> Result<Vec<StoredStep>, StoreError> {
    /// A step as its events so far left it.
    struct Standing {
        step: StoredStep,
        last: EventKind,
        error: Option<String>,
    }
    /// The standing of `name` in `standings` (indexed by `index`), made if new.
    fn standing<'s>(
        standings: &'s mut Vec<Standing>,
        index: &mut std::collections::HashMap<String, usize>,
        name: &str,
        kind: EventKind,
    ) -> &'s mut Standing {
        let i = if let Some(&i) = index.get(name) {
            i
        } else {
            index.insert(name.to_owned(), standings.len());
            standings.push(Standing {
                step: StoredStep {
                    name: name.to_owned(),
                    status: StepStatus::Running,
                    attempts: 0,
                    output: None,
                    error: None,
                    started_at: None,
                },
                last: kind,
                error: None,
            });
            standings.len() - 1
        };
        &mut standings[i]
    }
    /// Takes the earlier of `at` and the step's first time (a skip has none of its own).
    fn started(standing: &mut Standing, at: i64) {
        let at = wall_time(at);
        if standing
            .step
            .started_at
            .is_none_or(|first| at.is_some_and(|at| at < first))
        {
            standing.step.started_at = at;
        }
    }
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    // A row may log the next step's start too (`next_step`, schema version 13): after its
    // own event, as the log numbers it; a creation's row may log the first step's.
    let mut stmt = conn
        .prepare_cached(
            "SELECT step, kind, attempt, output, detail, at, next_step FROM events \
             WHERE run_id = ?1 AND (step IS NOT NULL OR next_step IS NOT NULL) ORDER BY seq",
        )
        .map_err(sqlite)?;
    let mut rows = stmt.query([run_id]).map_err(sqlite)?;
    let mut standings: Vec<Standing> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let at: i64 = row.get(5).map_err(sqlite)?;
        let kind = match row.get_ref(1).map_err(sqlite)?.as_str().unwrap_or_default() {
            "step_started" => Some(EventKind::StepStarted),
            "step_retrying" => Some(EventKind::StepRetrying),
            "step_completed" => Some(EventKind::StepCompleted),
            "step_failed" => Some(EventKind::StepFailed),
            "step_skipped" => Some(EventKind::StepSkipped),
            // Not a change of a step's standing (the view leaves such events out too).
            _ => None,
        };
        let name = row.get_ref(0).map_err(sqlite)?.as_str().ok();
        if let (Some(kind), Some(name)) = (kind, name) {
            let standing = standing(&mut standings, &mut index, name, kind);
            standing.last = kind;
            standing.step.attempts = row.get::<_, Option<u32>>(2).map_err(sqlite)?.unwrap_or(0);
            standing.step.output = if kind == EventKind::StepCompleted {
                row.get(3).map_err(sqlite)?
            } else {
                None
            };
            if kind != EventKind::StepSkipped {
                started(standing, at);
            }
            if matches!(kind, EventKind::StepRetrying | EventKind::StepFailed) {
                let detail: Option<String> = row.get(4).map_err(sqlite)?;
                standing.error = detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                    .and_then(|d| d.get("error")?.as_str().map(str::to_owned));
            }
        }
        if let Some(next) = row
            .get_ref(6)
            .map_err(sqlite)?
            .as_str_or_null()
            .ok()
            .flatten()
        {
            let standing = standing(&mut standings, &mut index, next, EventKind::StepStarted);
            standing.last = EventKind::StepStarted;
            standing.step.attempts = 1;
            standing.step.output = None;
            started(standing, at);
        }
    }
    Ok(standings
        .into_iter()
        .map(
            |Standing {
                 mut step,
                 last,
                 error,
             }| {
                step.status = match last {
                    EventKind::StepCompleted => StepStatus::Completed,
                    EventKind::StepFailed => StepStatus::Failed,
                    EventKind::StepSkipped => StepStatus::Skipped,
                    _ => StepStatus::Running,
                };
                if last == EventKind::StepCompleted {
                    step.error = None;
                } else {
                    step.output = None;
                    step.error = error;
                }
                step
            },
        )
        .collect())
}

/// A time as the schema keeps it, milliseconds since the Unix epoch (`now_ms`); a negative one
/// is no time at all.
fn wall_time(ms: i64) -> Option<SystemTime> {
    let ms = u64::try_from(ms).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// The runs still `running` and not parked, oldest first.
pub(crate) fn unfinished_runs(
    conn: &Connection,
    label: &str,
) -> Result<Vec<UnfinishedRun>, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT run_id, workflow FROM runs WHERE status = 'running' AND parked = 0 \
             ORDER BY created_at, rowid",
        )
        .map_err(sqlite)?;
    let rows = stmt
        .query_map([], |row| {
            Ok(UnfinishedRun {
                run_id: RunId::from(row.get::<_, String>(0)?),
                workflow: row.get(1)?,
            })
        })
        .map_err(sqlite)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite)
}

/// The runs of `workflow` that ended `failed` or `cancelled`, oldest first.
pub(crate) fn stopped_runs(
    conn: &Connection,
    label: &str,
    workflow: &str,
) -> Result<Vec<RunId>, StoreError> {
    let sqlite = |e: rusqlite::Error| sqlite_error(label, &e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT run_id FROM runs WHERE workflow = ?1 AND status IN ('failed', 'cancelled') \
             ORDER BY created_at, rowid",
        )
        .map_err(sqlite)?;
    let rows = stmt
        .query_map([workflow], |row| Ok(RunId::from(row.get::<_, String>(0)?)))
        .map_err(sqlite)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite)
}

fn bad_value(label: &str, run_id: &str, step: Option<&str>, value: &str) -> StoreError {
    let step = step.map(|s| format!(", step `{s}`")).unwrap_or_default();
    StoreError::Backend(format!(
        "database `{label}`: run `{run_id}`{step} has a status this sagaflow does not know: `{value}`"
    ))
}
