//! Opening a database: the connection's pragmas, then the schema's migrations.
//!
//! Pragmas are per connection (or, for `journal_mode`, must run outside any transaction), so
//! they are set on every open before the migrations run. The schema is an append-only list of
//! migrations numbered by `PRAGMA user_version`: a released migration is never edited, a new
//! one is appended, and each runs in its own `BEGIN IMMEDIATE` transaction together with the
//! bump of `user_version`, so a crash mid-upgrade leaves the file at a whole version. A file
//! whose version is past the list was written by a newer sagaflow and is refused rather than
//! guessed at.

use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::{SqliteOptions, Synchronous};
use sagaflow_core::runtime::error::StoreError;

/// The migrations, oldest first; migration `i` takes the schema from version `i` to `i + 1`.
/// Append only: a migration that has shipped must never change.
/// Each with the oldest version whose code works on the schema it leaves: a migration that only
/// adds leaves that where it was; one that takes away or changes what older code relies on
/// raises it to its own version. Code meets a newer file at work: it goes on within that
/// window (expand-then-contract, so that a rolling upgrade works), and is refused beyond it.
/// The window is kept from version 7 on (`schema_compat`); versions before it each needed
/// their own code.
const MIGRATIONS: &[(&str, i64)] = &[
    (V1, 1),
    (V2, 2),
    (V3, 3),
    (V4, 4),
    (V5, 5),
    (V6, 6),
    // Only adds `replicas` and `schema_compat`.
    (V7, 6),
    // Numbers events and signals above `positions`' floors: code of version 7 would number
    // them from the largest row alone, and hand out again a number a deletion freed.
    (V8, 8),
    // Only adds the queue columns and their index.
    (V9, 8),
    // Only adds a run's concurrency key and start time, and their indexes.
    (V10, 8),
    // `steps` becomes a view: code of version 10 writes the table.
    (V11, 11),
    // Only adds `graphs`; `runs.graph` stays, null for the runs this version creates.
    (V12, 11),
    // Only adds `events.next_step` and reads it in `steps`; a store that writes it raises the
    // window to 13 (`compact_log`).
    (V13, 11),
];

/// The newest schema version this code knows (`PRAGMA user_version` of a current database).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1: runs, their steps, and the event log.
///
/// - `runs.version` is bumped by every checkpoint, so a later migration can fence writes on
///   `(run_id, version)`; the lease columns (owner, fencing token, expiry) come in a later
///   migration as `ALTER TABLE runs ADD COLUMN`, which STRICT tables allow.
/// - `graph_fingerprint` holds the graph's `u64` fingerprint as the `i64` of the same bits.
/// - `steps` keeps one row per started step (its rowid gives the order steps first started);
///   `events` keeps every change, in commit order, for replay.
/// - Times are unix milliseconds. Outputs and inputs are JSON text from the steps' codecs.
const V1: &str = "
CREATE TABLE runs (
    run_id            TEXT    NOT NULL PRIMARY KEY,
    workflow          TEXT    NOT NULL,
    graph_fingerprint INTEGER NOT NULL,
    input             TEXT    NOT NULL,
    status            TEXT    NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    error             TEXT,
    version           INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;

CREATE INDEX runs_unfinished ON runs (created_at) WHERE status = 'running';

CREATE TABLE steps (
    run_id      TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'skipped')),
    attempts    INTEGER NOT NULL,
    output      TEXT,
    error       TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, name)
) STRICT;

CREATE TABLE events (
    seq     INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    step    TEXT,
    attempt INTEGER,
    detail  TEXT
) STRICT;

CREATE INDEX events_by_run ON events (run_id, seq);
";

/// Version 2: signals delivered to runs, one per run and name (the first delivery wins), kept
/// so that a step waiting for one finds it after a crash, whenever it was delivered.
const V2: &str = "
CREATE TABLE signals (
    run_id  TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    payload TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
) STRICT;
";

/// Version 3: leases with fencing, and parking.
///
/// - `owner` is the store that holds the run's lease, `lease_expires` when that lease ends
///   unless renewed (unix ms), `lease_token` the fencing token, bumped by every take-over:
///   every write of a run is applied only where `lease_token` is still the writer's.
/// - `recoveries` counts the times the run was taken up; past the store's maximum the run is
///   parked instead.
/// - Parking is a column, not a `status`: `status`'s CHECK cannot be altered, and rebuilding
///   `runs` would need `foreign_keys` off, which cannot change inside the migration's
///   transaction, while dropping the table with it on cascades to `steps`, `events` and
///   `signals`. A parked run keeps `status = 'running'` and reads as parked.
const V3: &str = "
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN lease_expires INTEGER;
ALTER TABLE runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN parked INTEGER NOT NULL DEFAULT 0 CHECK (parked IN (0, 1));
";

/// Version 4: persisted state machines (`fsm!`) and their transition log.
///
/// - `machines` holds one row per machine id: the machine's type name, its state as JSON, and
///   a version bumped by every transition, which a transition's `UPDATE ... WHERE version = ?`
///   is fenced on (optimistic concurrency: the writer that lost the race changes nothing).
/// - `machine_transitions` is append-only: one row per transition, `seq` the version the
///   transition produced, so `(machine_id, seq)` is unique; written in the same transaction
///   as the `UPDATE`. Times are unix milliseconds.
const V4: &str = "
CREATE TABLE machines (
    machine_id TEXT    NOT NULL PRIMARY KEY,
    machine    TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE machine_transitions (
    machine_id TEXT    NOT NULL REFERENCES machines (machine_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    from_state TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (machine_id, seq)
) STRICT, WITHOUT ROWID;
";

/// Version 5: a run's graph, for tools that draw it (`sagaflow graph`): JSON
/// `{"nodes": [names in declaration order], "edges": [[from, to], ...]}`, written with the
/// run. Nullable: runs created before this version have none.
const V5: &str = "
ALTER TABLE runs ADD COLUMN graph TEXT;
";

/// Version 6: lighter checkpoints (`events` without `AUTOINCREMENT`, `steps` checked without
/// an `IN` list), and machines found by type.
///
/// - `events.seq` stays the rowid, numbered from the largest one plus one, which is the same
///   numbering as long as the newest event is never deleted (sagaflow deletes no events; a
///   future pruning must keep the newest); `AUTOINCREMENT` cost every checkpoint a write of
///   the `sqlite_sequence` page besides the event's own. `events` is rebuilt: no table
///   references it, so dropping it with `foreign_keys` on is safe inside the migration's
///   transaction.
/// - `steps.status` is checked with `=` comparisons: SQLite evaluates a `CHECK (... IN (list))`
///   by building a temporary table of the list on every write of the row, which was the one
///   ephemeral table in a checkpoint's statements. `steps` is rebuilt with its rows and their
///   rowids (which order a run's steps by first start); nothing references it either.
/// - `machines_by_type` serves `machine_ids` (and `sagaflow machines`), which scanned every
///   machine; a transition does not change a machine's type, so it costs transitions nothing.
const V6: &str = "
CREATE TABLE events_v6 (
    seq     INTEGER NOT NULL PRIMARY KEY,
    run_id  TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    step    TEXT,
    attempt INTEGER,
    detail  TEXT
) STRICT;

INSERT INTO events_v6 (seq, run_id, at, kind, step, attempt, detail)
    SELECT seq, run_id, at, kind, step, attempt, detail FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_v6 RENAME TO events;
CREATE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE steps_v6 (
    run_id      TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL
        CHECK (status = 'running' OR status = 'completed' OR status = 'failed'
               OR status = 'skipped'),
    attempts    INTEGER NOT NULL,
    output      TEXT,
    error       TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, name)
) STRICT;

INSERT INTO steps_v6 (rowid, run_id, name, status, attempts, output, error, started_at,
                      finished_at)
    SELECT rowid, run_id, name, status, attempts, output, error, started_at, finished_at
    FROM steps ORDER BY rowid;
DROP TABLE steps;
ALTER TABLE steps_v6 RENAME TO steps;

CREATE INDEX machines_by_type ON machines (machine, machine_id);
";

/// Version 7: the replicas, as their heartbeats leave them (`replicas`): each owner's host,
/// process, sagaflow version, when it was first and last heard from (unix milliseconds), and
/// the workflows and graphs its engine runs (JSON `[{"workflow", "fingerprint"}]`), for tools
/// to show who holds which run and which runs wait for a version no live process runs; and
/// `schema_compat`, the oldest version whose code works on the file (see [`MIGRATIONS`]),
/// which every migration from here on sets.
const V7: &str = "
CREATE TABLE schema_compat (
    one             INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
    compatible_from INTEGER NOT NULL
) STRICT;
INSERT INTO schema_compat (one, compatible_from) VALUES (1, 0);

CREATE TABLE replicas (
    owner        TEXT    NOT NULL PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    graphs       TEXT    NOT NULL
) STRICT;
";

/// Version 8: retention.
///
/// - `positions` keeps, per log (`events`, `signals`), the number of the newest row a
///   deletion removed (its *floor*): rows are numbered above both the largest rowid and the
///   floor, so that a position is never handed out twice once old runs are deleted (before,
///   numbering relied on the newest row never being deleted).
/// - `runs_finished` lists finished runs by the time they finished, for a retention policy;
///   a run enters it once, when it ends.
/// - `IF NOT EXISTS`: tests rewind a current file to an older version's shape by undoing what
///   that version lacks, and need not know of these.
const V8: &str = "
CREATE TABLE IF NOT EXISTS positions (
    name  TEXT    NOT NULL PRIMARY KEY,
    floor INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS runs_finished ON runs (updated_at, run_id) WHERE status <> 'running';
";

/// Version 9: queues. A run put on a queue keeps the queue's name and its priority; the index
/// lists a queue's waiting runs, highest priority first, then oldest.
const V9: &str = "
ALTER TABLE runs ADD COLUMN queue TEXT;
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_queued ON runs (queue, priority DESC, created_at)
    WHERE status = 'running' AND queue IS NOT NULL;
";

/// Version 10: a queued run's concurrency key (`queue_key`), and when it was first taken up
/// from its queue (`started_at`, by this machine's clock): a queue's bounds count the runs of
/// one key held at once, and the runs started in a window (see `ops::Admit`). Each replica's
/// heartbeat keeps the queues it serves and their bounds (`replicas.queues`, JSON), which are
/// set in code, for tools to show.
const V10: &str = "
ALTER TABLE runs ADD COLUMN queue_key TEXT;
ALTER TABLE runs ADD COLUMN started_at INTEGER;
CREATE INDEX runs_started ON runs (queue, started_at) WHERE started_at IS NOT NULL;
CREATE INDEX runs_keyed ON runs (queue, queue_key)
    WHERE status = 'running' AND queue_key IS NOT NULL;
ALTER TABLE replicas ADD COLUMN queues TEXT;
";

/// Version 11: the event log is the only record of a step, as on PostgreSQL (its schema 2).
///
/// A checkpoint wrote each change twice: its event, and an upsert of the step's row in
/// `steps` (a table page and its key's page more in every commit, and two statements more in
/// every step's pair). It now writes the event alone, which carries the output of a
/// completion (`events.output`); `steps` becomes a view that reads each step's standing off
/// its events, with the columns the table had, so that readers are unchanged:
///
/// - `status` from the step's last event; `attempts` its attempt (0 for a skipped step);
/// - `output` the last event's, if that is the completion;
/// - `error` the newest retry's or failure's, until the step completes (as the table's upsert
///   kept it);
/// - `started_at` the first event's time but a skip's, `finished_at` the last event's time if
///   it finished the step, `first_seq` the first event's number (the order steps first
///   started in, which the table's rowid gave).
///
/// The outputs of steps completed before move onto their completion events. `events` loses
/// its foreign key to `runs`, as on PostgreSQL: every write is fenced on the run's row, so it
/// could not catch an orphan, and it cost every event a lookup of the run's key (retention
/// deletes a run's events itself). A file at this version is refused by the code before it,
/// which writes the table.
const V11: &str = "
CREATE TABLE events_v11 (
    seq     INTEGER NOT NULL PRIMARY KEY,
    run_id  TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    step    TEXT,
    attempt INTEGER,
    detail  TEXT,
    output  TEXT
) STRICT;

INSERT INTO events_v11 (seq, run_id, at, kind, step, attempt, detail, output)
    SELECT e.seq, e.run_id, e.at, e.kind, e.step, e.attempt, e.detail,
        CASE WHEN e.kind = 'step_completed' THEN (
            SELECT s.output FROM steps s
            WHERE s.run_id = e.run_id AND s.name = e.step AND s.status = 'completed'
        ) END
    FROM events e ORDER BY e.seq;
DROP TABLE events;
ALTER TABLE events_v11 RENAME TO events;
CREATE INDEX events_by_run ON events (run_id, seq);

DROP TABLE steps;

CREATE VIEW steps AS
SELECT a.run_id AS run_id, a.step AS name,
    CASE l.kind WHEN 'step_completed' THEN 'completed' WHEN 'step_failed' THEN 'failed'
                WHEN 'step_skipped' THEN 'skipped' ELSE 'running' END AS status,
    coalesce(l.attempt, 0) AS attempts,
    CASE WHEN l.kind = 'step_completed' THEN l.output END AS output,
    CASE WHEN l.kind <> 'step_completed' THEN (
        SELECT e.detail ->> '$.error' FROM events e
        WHERE e.run_id = a.run_id AND e.step = a.step
            AND e.kind IN ('step_retrying', 'step_failed')
        ORDER BY e.seq DESC LIMIT 1
    ) END AS error,
    a.started_at AS started_at,
    CASE WHEN l.kind IN ('step_completed', 'step_failed', 'step_skipped') THEN l.at END
        AS finished_at,
    a.first_seq AS first_seq
FROM (
    SELECT run_id, step, min(seq) AS first_seq, max(seq) AS last_seq,
        min(at) FILTER (WHERE kind <> 'step_skipped') AS started_at
    FROM events
    WHERE step IS NOT NULL
        AND kind IN ('step_started', 'step_retrying', 'step_completed', 'step_failed',
                     'step_skipped')
    GROUP BY run_id, step
) a
JOIN events l ON l.seq = a.last_seq;
";

/// Version 12: a workflow's graph stored once, not in every run's row.
///
/// `graphs` holds each graph by its workflow and fingerprint, the two columns a run's row has
/// anyway; the code of this version writes a creation's graph there (unless it is there) and
/// leaves `runs.graph` null, and reads a run's graph from `runs.graph` if set (a run the code
/// before it created), else from `graphs`. Until then every run's row carried its graph,
/// written again with every new version of the row. Nothing is rewritten; the code of
/// version 11 works on as it did, but finds no graph for a run this version created.
const V12: &str = "
CREATE TABLE graphs (
    workflow    TEXT    NOT NULL,
    fingerprint INTEGER NOT NULL,
    graph       TEXT    NOT NULL,
    PRIMARY KEY (workflow, fingerprint)
) STRICT, WITHOUT ROWID;
";

/// Version 13: a step's completion and the next step's start in one row of the log, as on
/// PostgreSQL (its schema version 10).
///
/// `events.next_step` names a step whose start (attempt 1) the row logs too, at the same time,
/// numbered one past the row's own `seq`: the number every insert leaves free for it (see
/// `rows::INSERT_EVENT`). A creation's row may name the run's first step the same way. Every
/// reader of this version reads such a row as the two events it stands for; `steps` reads
/// both forms, a start without a row of its own being the step's last event when no row
/// holds its number. A nullable column and a view of the same columns: the code of version
/// 12 works on as it did while no row has a `next_step`; a store that writes them
/// (`SqliteOptions::compact_log`) raises the window to this version first (see
/// [`require`]).
const V13: &str = "
ALTER TABLE events ADD COLUMN next_step TEXT;

DROP VIEW steps;

CREATE VIEW steps AS
WITH x AS (
    SELECT run_id, seq, at, kind, step FROM events WHERE step IS NOT NULL
    UNION ALL
    SELECT run_id, seq + 1, at, 'step_started', next_step FROM events
    WHERE next_step IS NOT NULL
)
SELECT a.run_id AS run_id, a.step AS name,
    CASE WHEN l.seq IS NULL THEN 'running'
         WHEN l.kind = 'step_completed' THEN 'completed' WHEN l.kind = 'step_failed' THEN 'failed'
         WHEN l.kind = 'step_skipped' THEN 'skipped' ELSE 'running' END AS status,
    CASE WHEN l.seq IS NULL THEN 1 ELSE coalesce(l.attempt, 0) END AS attempts,
    CASE WHEN l.kind = 'step_completed' THEN l.output END AS output,
    CASE WHEN l.seq IS NULL OR l.kind <> 'step_completed' THEN (
        SELECT e.detail ->> '$.error' FROM events e
        WHERE e.run_id = a.run_id AND e.step = a.step
            AND e.kind IN ('step_retrying', 'step_failed')
        ORDER BY e.seq DESC LIMIT 1
    ) END AS error,
    a.started_at AS started_at,
    CASE WHEN l.kind IN ('step_completed', 'step_failed', 'step_skipped') THEN l.at END
        AS finished_at,
    a.first_seq AS first_seq
FROM (
    SELECT run_id, step, min(seq) AS first_seq, max(seq) AS last_seq,
        min(at) FILTER (WHERE kind <> 'step_skipped') AS started_at
    FROM x
    WHERE kind IN ('step_started', 'step_retrying', 'step_completed', 'step_failed',
                   'step_skipped')
    GROUP BY run_id, step
) a
LEFT JOIN events l ON l.seq = a.last_seq;
";

/// The schema version whose code reads a row of the log that logs a next start too.
pub(crate) const V_COMPACT: i64 = 13;

/// Marks the file as readable only by the code of `version` on: the window of older code
/// that may open it (see [`MIGRATIONS`]) ends before `version`. For a write that older code
/// would misread (`SqliteOptions::compact_log`). A file already past it is only read: an
/// open then sends no write, so it never waits for another process's write lock here.
fn require(conn: &Connection, label: &str, version: i64) -> Result<(), StoreError> {
    if compatible_from(conn) >= version {
        return Ok(());
    }
    conn.execute(
        "UPDATE schema_compat SET compatible_from = ?1 WHERE compatible_from < ?1",
        [version],
    )
    .map(drop)
    .map_err(|e| open_error(label, &e))
}

/// Opens `path` (`None` for a private in-memory database), sets the pragmas and brings the
/// schema up to date. Every failure names `label`, the file as the user gave it.
pub(crate) fn open(
    path: Option<&std::path::Path>,
    label: &str,
    options: &SqliteOptions,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let opened = match path {
        Some(path) => Connection::open_with_flags(path, flags),
        None => Connection::open_in_memory(),
    };
    let conn = opened.map_err(|e| open_error(label, &e))?;
    set_pragmas(&conn, options).map_err(|e| open_error(label, &e))?;
    if options.quick_check {
        // Before any migration: a damaged file is not written to.
        quick_check(&conn, label)?;
    }
    migrate(&conn, label)?;
    if options.compact_log {
        require(&conn, label, V_COMPACT)?;
    }
    Ok(conn)
}

/// The most problems `quick_check` reports in the error.
const QUICK_CHECK_PROBLEMS: u32 = 10;

/// `PRAGMA quick_check`: `ok`, or the file's first problems as [`StoreError::Corrupt`]. A
/// file damaged where SQLite cannot even walk it fails the pragma itself, which is the same
/// verdict.
fn quick_check(conn: &Connection, label: &str) -> Result<(), StoreError> {
    let corrupt = |problems: String| StoreError::Corrupt {
        path: label.to_owned(),
        problems,
    };
    let mut stmt = conn
        .prepare(&format!("PRAGMA quick_check({QUICK_CHECK_PROBLEMS})"))
        .map_err(|e| corrupt(e.to_string()))?;
    let rows: rusqlite::Result<Vec<String>> = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(Iterator::collect);
    match rows {
        Ok(rows) if rows == ["ok"] => Ok(()),
        Ok(rows) => Err(corrupt(rows.join("; "))),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

/// The pragmas, outside any transaction (`journal_mode` cannot change inside one). The busy
/// timeout comes first so that the rest wait for a lock instead of failing at once. SQLite
/// reads a file lazily, so a file that is not a database fails here, on the first statement.
fn set_pragmas(conn: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    // The writer keeps its fixed statements and every write's statements prepared: more than
    // the default 16, which would evict and re-prepare some on every write.
    conn.set_prepared_statement_cache_capacity(64);
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        tracing::warn!(
            journal_mode = %mode,
            "SQLite refused WAL mode; readers and the writer will block each other"
        );
    }
    let synchronous = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
    ))?;
    if let Some(pages) = options.max_page_count {
        // Returns the limit in force (never below the file's current size).
        let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| {
            row.get(0)
        })?;
    }
    Ok(())
}

/// Applies the migrations the file lacks, each in its own transaction. The version is read
/// again once the write lock is held, so two processes opening a new file at once do not both
/// apply a migration.
fn migrate(conn: &Connection, label: &str) -> Result<(), StoreError> {
    let found = user_version(conn).map_err(|e| open_error(label, &e))?;
    check_version(conn, label, found)?;
    if found >= SCHEMA_VERSION {
        return Ok(());
    }
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| open_error(label, &e))?;
        let step = apply_next(conn, label);
        match step {
            Ok(true) => conn
                .execute_batch("COMMIT")
                .map_err(|e| open_error(label, &e))?,
            Ok(false) => {
                conn.execute_batch("COMMIT")
                    .map_err(|e| open_error(label, &e))?;
                return Ok(());
            }
            Err(e) => {
                if !conn.is_autocommit() {
                    // The error already says what failed; a failed rollback adds nothing.
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return Err(e);
            }
        }
    }
}

/// Inside a write transaction: applies the next migration if one is due. `Ok(false)` when the
/// schema is current.
fn apply_next(conn: &Connection, label: &str) -> Result<bool, StoreError> {
    let version = user_version(conn).map_err(|e| open_error(label, &e))?;
    check_version(conn, label, version)?;
    let Some(&(sql, works_from)) = usize::try_from(version)
        .ok()
        .and_then(|index| MIGRATIONS.get(index))
    else {
        return Ok(false);
    };
    let next = version + 1;
    conn.execute_batch(sql).map_err(|e| StoreError::Open {
        path: label.to_owned(),
        message: format!("migration to schema version {next} failed: {e}"),
    })?;
    if next >= V_COMPAT {
        // Made here too if missing, so that the window is kept even in a file whose version 7
        // came from a build before the table was part of it.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_compat (
                 one             INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
                 compatible_from INTEGER NOT NULL
             ) STRICT;",
        )
        .map_err(|e| open_error(label, &e))?;
        conn.execute(
            "INSERT INTO schema_compat (one, compatible_from) VALUES (1, ?1) \
             ON CONFLICT (one) DO UPDATE SET compatible_from = excluded.compatible_from",
            [works_from],
        )
        .map_err(|e| open_error(label, &e))?;
    }
    conn.execute_batch(&format!("PRAGMA user_version = {next}"))
        .map_err(|e| open_error(label, &e))?;
    Ok(true)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// The schema version from which `schema_compat` keeps the window.
const V_COMPAT: i64 = 7;

/// The oldest version whose code works on the file, as its newest migration said; 0 where
/// none did (a file from before the window was kept).
pub(crate) fn compatible_from(conn: &Connection) -> i64 {
    conn.query_row("SELECT compatible_from FROM schema_compat", [], |row| {
        row.get(0)
    })
    .unwrap_or(0)
}

/// Whether this code works on a file at schema version `found`: one it knows, or a newer one
/// whose window reaches back to it.
pub(crate) fn readable(conn: &Connection, found: i64) -> bool {
    found <= SCHEMA_VERSION || (1..=SCHEMA_VERSION).contains(&compatible_from(conn))
}

fn check_version(conn: &Connection, label: &str, found: i64) -> Result<(), StoreError> {
    if !readable(conn, found) {
        return Err(StoreError::SchemaTooNew {
            path: label.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(StoreError::Open {
            path: label.to_owned(),
            message: format!("schema version {found} is not one sagaflow writes"),
        });
    }
    Ok(())
}

/// An error while opening: a lock is [`StoreError::Busy`], anything else
/// [`StoreError::Open`] with SQLite's words ("file is not a database", ...).
fn open_error(label: &str, error: &rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
            path: label.to_owned(),
        },
        Some(ErrorCode::NotADatabase) => StoreError::Open {
            path: label.to_owned(),
            message: "the file is not a SQLite database (file is not a database)".to_owned(),
        },
        _ => StoreError::Open {
            path: label.to_owned(),
            message: error.to_string(),
        },
    }
}

/// The default busy timeout: long enough to ride out another process's commit, short enough
/// that a stuck lock surfaces as an error.
pub(crate) const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
