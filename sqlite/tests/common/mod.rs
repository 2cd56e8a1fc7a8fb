//! What several test files of the store share.

/// Undoes migrations 12, 11, 9, 7, 5, 4 and 3 of a current file: no `graphs`, `steps` a table again, then
/// drops the queue columns, the replicas and the window, the graph column, the machines tables
/// and the lease columns. A test then sets `user_version` to what it rewinds to.
pub(crate) const REWIND_V3: &str = "\
    DROP TABLE graphs; \
    CREATE TABLE steps_v10 (run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, \
        name TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, output TEXT, \
        error TEXT, started_at INTEGER, finished_at INTEGER, PRIMARY KEY (run_id, name)) STRICT; \
    INSERT INTO steps_v10 SELECT run_id, name, status, attempts, output, error, started_at, \
        finished_at FROM steps ORDER BY first_seq; \
    DROP VIEW steps; ALTER TABLE steps_v10 RENAME TO steps; \
    ALTER TABLE events DROP COLUMN output; \
    DROP INDEX runs_started; DROP INDEX runs_keyed; \
    ALTER TABLE runs DROP COLUMN queue_key; ALTER TABLE runs DROP COLUMN started_at; \
    DROP INDEX runs_queued; ALTER TABLE runs DROP COLUMN queue; \
    ALTER TABLE runs DROP COLUMN priority; DROP TABLE replicas; DROP TABLE schema_compat; \
    ALTER TABLE runs DROP COLUMN graph; \
    DROP TABLE machine_transitions; DROP TABLE machines; \
    ALTER TABLE runs DROP COLUMN owner; \
    ALTER TABLE runs DROP COLUMN lease_token; ALTER TABLE runs DROP COLUMN lease_expires; \
    ALTER TABLE runs DROP COLUMN recoveries; ALTER TABLE runs DROP COLUMN parked;";
