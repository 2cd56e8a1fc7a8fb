//! The migrations' SQL, oldest first, each with what it does and why (the list that applies
//! them, and the window of versions each leaves working, is `MIGRATIONS` in `schema`). A
//! released migration is never edited; a new one is appended.

/// Version 1: runs, steps, the event log, signals, leases, machines, and the writers' batch
/// numbers.
///
/// - Times are unix milliseconds by the server's clock (`now_ms()`), so that replicas on hosts
///   whose clocks differ agree on when a lease expires.
/// - `lease_token` is the fencing token, bumped by every take-up; every write of a run checks
///   it under the log lock, which every take-up also holds (see `writer`). `runs.version` is
///   bumped when the run's row is written: at a lease renewal and at the run's end.
/// - `steps.first_seq` orders a run's steps by first start (an upsert keeps it).
/// - `events.seq` and `signals.position` are numbered under the log lock (a transaction-level
///   advisory lock), so they grow in commit order: a reader that has seen every row up to `p`
///   finds any later one above `p`.
/// - `writers` holds each writer's last committed batch number: a writer whose connection
///   died with a `COMMIT` in flight reads it to learn whether that batch committed, so that
///   it neither loses nor repeats it.
pub(super) const V1: &str = "
CREATE FUNCTION now_ms() RETURNS bigint LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

CREATE TABLE runs (
    run_id            text    NOT NULL PRIMARY KEY,
    workflow          text    NOT NULL,
    graph_fingerprint bigint  NOT NULL,
    input             text    NOT NULL,
    status            text    NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    error             text,
    version           bigint  NOT NULL,
    created_at        bigint  NOT NULL,
    updated_at        bigint  NOT NULL,
    owner             text,
    lease_token       bigint  NOT NULL DEFAULT 0,
    lease_expires     bigint,
    recoveries        integer NOT NULL DEFAULT 0,
    parked            boolean NOT NULL DEFAULT false,
    graph             text,
    created_seq       bigint  GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX runs_unfinished ON runs (created_at, created_seq)
    WHERE status = 'running' AND NOT parked;
CREATE INDEX runs_stopped ON runs (workflow, created_at, created_seq)
    WHERE status IN ('failed', 'cancelled');

CREATE TABLE steps (
    run_id      text    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name        text    NOT NULL,
    status      text    NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'skipped')),
    attempts    integer NOT NULL,
    output      text,
    error       text,
    started_at  bigint,
    finished_at bigint,
    first_seq   bigint  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE events (
    seq     bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  text    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    at      bigint  NOT NULL,
    kind    text    NOT NULL,
    step    text,
    attempt integer,
    detail  text
);

CREATE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE signals (
    position bigint  GENERATED ALWAYS AS IDENTITY UNIQUE,
    run_id   text    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name     text    NOT NULL,
    payload  text    NOT NULL,
    at       bigint  NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE machines (
    machine_id text   NOT NULL PRIMARY KEY,
    machine    text   NOT NULL,
    state      text   NOT NULL,
    version    bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE INDEX machines_by_type ON machines (machine, machine_id);

CREATE TABLE machine_transitions (
    machine_id text   NOT NULL REFERENCES machines (machine_id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    from_state text   NOT NULL,
    event      text   NOT NULL,
    to_state   text   NOT NULL,
    at         bigint NOT NULL,
    PRIMARY KEY (machine_id, seq)
);

CREATE TABLE writers (
    owner text   NOT NULL PRIMARY KEY,
    batch bigint NOT NULL
);
";

/// Version 2: the event log is the only record of a step.
///
/// A checkpoint wrote a step's row and its event, one fact twice; it now writes the event
/// alone, which carries the output of a completion (`events.output`). `steps` becomes a view
/// that reads each step's standing off its events, with the columns the table had, so that
/// every reader is unchanged:
///
/// - `status` from the step's last event; `attempts` its attempt (0 for a skipped step);
/// - `output` the last event's, if that is the completion;
/// - `error` the newest retry's or failure's, until the step completes (as the table's upsert
///   kept it);
/// - `started_at` the first event's time but a skip's, `finished_at` the last event's time if
///   it finished the step, `first_seq` the first event's number (the order steps first
///   started in).
///
/// The foreign keys from `events` and `signals` to `runs` go: every write is fenced on the
/// run's row, so they could not catch an orphan, and each cost a lookup and a row lock per
/// write. Nothing deletes a run's rows but a deletion that names the run.
///
/// The outputs of steps completed under version 1 move onto their completion events.
///
/// A batch of checkpoints is one call of `record_v1`, a statement of its own that commits by
/// itself: a transaction of five statements (`BEGIN`, the batch's number, the log lock, the
/// writes, `COMMIT`) cost the server 2.5 times the single call's work outside the WAL flush.
/// The function takes the log lock first; each statement in it then reads a snapshot taken
/// after the lock (a volatile function's statements each take their own), so no take-up can
/// change a token between the fence and the commit. It writes the writer's batch number, then
/// fences each write on its run's token (a lookup by key each), renews the leases that are
/// half spent and ends the runs that end, and appends the events of the writes that passed, in
/// the batch's order. One row comes back: the events' numbers (in the batch's order, which is
/// the order they were inserted in), the time, and for each write whether it passed the fence
/// and whether its run exists. Nothing in it joins the batch with itself: each change finds
/// its write by index, so a batch costs in proportion to its writes (a join on estimates of
/// one row was a nested loop, quadratic in the batch). A write alone (the sequential case) has
/// a simpler statement of its own. A release that needs another shape adds
/// `record_v2` and leaves this one for the release before it.
pub(super) const V2: &str = "
ALTER TABLE events ADD COLUMN output text;

UPDATE events e SET output = s.output FROM steps s
    WHERE e.run_id = s.run_id AND e.step = s.name AND e.kind = 'step_completed'
        AND s.status = 'completed';

ALTER TABLE events DROP CONSTRAINT IF EXISTS events_run_id_fkey;
ALTER TABLE signals DROP CONSTRAINT IF EXISTS signals_run_id_fkey;
DROP TABLE steps;

CREATE VIEW steps AS
SELECT a.run_id, a.step AS name,
    CASE l.kind WHEN 'step_completed' THEN 'completed' WHEN 'step_failed' THEN 'failed'
                WHEN 'step_skipped' THEN 'skipped' ELSE 'running' END AS status,
    COALESCE(l.attempt, 0) AS attempts,
    CASE WHEN l.kind = 'step_completed' THEN l.output END AS output,
    CASE WHEN l.kind <> 'step_completed' THEN a.error END AS error,
    a.started_at,
    CASE WHEN l.kind IN ('step_completed', 'step_failed', 'step_skipped') THEN l.at END
        AS finished_at,
    a.first_seq
FROM (
    SELECT run_id, step, min(seq) AS first_seq, max(seq) AS last_seq,
        min(at) FILTER (WHERE kind <> 'step_skipped') AS started_at,
        (array_agg(detail::json ->> 'error' ORDER BY seq DESC)
            FILTER (WHERE kind IN ('step_retrying', 'step_failed')))[1] AS error
    FROM events
    WHERE step IS NOT NULL
        AND kind IN ('step_started', 'step_retrying', 'step_completed', 'step_failed',
                     'step_skipped')
    GROUP BY run_id, step
) a
JOIN events l ON l.seq = a.last_seq;

CREATE FUNCTION record_v1(
    p_owner text, p_batch bigint, p_k1 integer, p_k2 integer,
    p_runs text[], p_tokens bigint[], p_leases bigint[], p_ends text[], p_end_errors text[],
    p_wis bigint[], p_steps text[], p_outputs text[], p_kinds text[], p_attempts integer[],
    p_details text[]
) RETURNS TABLE (r_seqs bigint[], r_at bigint, r_passed boolean[], r_found boolean[])
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(p_k1, p_k2);
    INSERT INTO writers (owner, batch) VALUES (p_owner, p_batch)
        ON CONFLICT (owner) DO UPDATE SET batch = excluded.batch;
    IF cardinality(p_runs) = 1 THEN
        RETURN QUERY
        WITH now AS MATERIALIZED (SELECT now_ms() AS at),
        r AS MATERIALIZED (
            SELECT lease_token = p_tokens[1] AND NOT parked AS admitted, lease_expires
            FROM runs WHERE run_id = p_runs[1]
        ),
        renew AS (
            UPDATE runs SET version = version + 1, updated_at = now.at,
                lease_expires = CASE WHEN p_ends[1] IS NULL THEN now.at + p_leases[1] END,
                status = COALESCE(p_ends[1], status), error = COALESCE(p_end_errors[1], error)
            FROM r, now
            WHERE runs.run_id = p_runs[1] AND r.admitted
                AND (p_ends[1] IS NOT NULL OR r.lease_expires IS NULL
                     OR r.lease_expires - now.at < p_leases[1] / 2)
        ),
        ev AS (
            INSERT INTO events (run_id, at, kind, step, attempt, detail, output)
            SELECT p_runs[1], now.at, c.kind, c.step, c.attempt, c.detail, c.output
            FROM unnest(p_steps, p_outputs, p_kinds, p_attempts, p_details)
                    WITH ORDINALITY AS c(step, output, kind, attempt, detail, ci),
                now, r
            WHERE r.admitted
            ORDER BY c.ci
            RETURNING seq
        )
        SELECT (SELECT array_agg(seq ORDER BY seq) FROM ev), (SELECT at FROM now),
            ARRAY[COALESCE((SELECT admitted FROM r), false)],
            ARRAY[EXISTS (SELECT 1 FROM r)];
        RETURN;
    END IF;
    RETURN QUERY
    WITH now AS MATERIALIZED (SELECT now_ms() AS at),
    w AS MATERIALIZED (
        SELECT x.wi, x.run_id, x.lease_ms, x.end_status, x.end_error,
            r.run_id IS NOT NULL AS run_exists,
            COALESCE(r.lease_token = x.token AND NOT r.parked, false) AS admitted,
            r.lease_expires
        FROM unnest(p_runs, p_tokens, p_leases, p_ends, p_end_errors)
            WITH ORDINALITY AS x(run_id, token, lease_ms, end_status, end_error, wi)
        LEFT JOIN runs r ON r.run_id = x.run_id
    ),
    admitted AS MATERIALIZED (SELECT array_agg(admitted ORDER BY wi) AS p FROM w),
    renew AS (
        UPDATE runs r SET version = r.version + 1, updated_at = now.at,
            lease_expires = CASE WHEN g.end_status IS NULL THEN now.at + g.lease_ms END,
            status = COALESCE(g.end_status, r.status), error = COALESCE(g.end_error, r.error)
        FROM (
            SELECT run_id, max(lease_ms) AS lease_ms, max(end_status) AS end_status,
                max(end_error) AS end_error, min(lease_expires) AS lease_expires
            FROM w WHERE admitted GROUP BY run_id
        ) g, now
        WHERE r.run_id = g.run_id
            AND (g.end_status IS NOT NULL OR g.lease_expires IS NULL
                 OR g.lease_expires - now.at < g.lease_ms / 2)
    ),
    ev AS (
        INSERT INTO events (run_id, at, kind, step, attempt, detail, output)
        SELECT p_runs[c.wi], now.at, c.kind, c.step, c.attempt, c.detail, c.output
        FROM unnest(p_wis, p_steps, p_outputs, p_kinds, p_attempts, p_details)
                WITH ORDINALITY AS c(wi, step, output, kind, attempt, detail, ci),
            now
        WHERE (SELECT p FROM admitted)[c.wi]
        ORDER BY c.ci
        RETURNING seq
    )
    SELECT (SELECT array_agg(seq ORDER BY seq) FROM ev), (SELECT at FROM now),
        (SELECT p FROM admitted), (SELECT array_agg(run_exists ORDER BY wi) FROM w);
END
$fn$;
";

/// Version 3: the replicas, as their heartbeats leave them (`replicas`): each owner's host,
/// process, sagaflow version, when it was first and last heard from (the server's clock), and
/// the workflows and graphs its engine runs (JSON `[{"workflow", "fingerprint"}]`). Tools show
/// who holds which run, and which runs wait for a version no live replica runs. Only added:
/// a release before it works on as it did.
pub(super) const V3: &str = "
CREATE TABLE replicas (
    owner        text    NOT NULL PRIMARY KEY,
    host         text    NOT NULL,
    pid          bigint  NOT NULL,
    version      text    NOT NULL,
    started_at   bigint  NOT NULL,
    heartbeat_at bigint  NOT NULL,
    graphs       text    NOT NULL
);
";

/// Version 4: retention. `runs_finished` lists finished runs by the time they finished, for a
/// retention policy (`retention`); a run enters it once, when it ends.
pub(super) const V4: &str = "
CREATE INDEX IF NOT EXISTS runs_finished ON runs (updated_at, run_id) WHERE status <> 'running';
";

/// Version 5: autovacuum for tables that churn. Checkpoints append events and renew or end
/// runs, retention deletes whole runs: by the server's defaults (a table is vacuumed once a
/// fifth of it is dead, throttled) a busy schema's tables grow far past the runs a policy
/// keeps before autovacuum catches up. These make autovacuum visit them once 2% of their rows
/// are dead, unthrottled. Only storage parameters: every release before it works on as it did,
/// and a server where autovacuum is off is unchanged (a retention policy then needs a
/// `VACUUM` of its own, see benches/README.md).
pub(super) const V5: &str = "
ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE signals SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE writers SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0);
";

/// Version 6: queues. A run put on a queue keeps the queue's name and its priority; the index
/// lists a queue's waiting runs, highest priority first, then oldest.
pub(super) const V6: &str = "
ALTER TABLE runs ADD COLUMN IF NOT EXISTS queue text;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS runs_queued ON runs (queue, priority DESC, created_at, created_seq)
    WHERE status = 'running' AND queue IS NOT NULL;
";

/// Version 7: the event log numbered by transaction, without a lock held through commit.
///
/// Until version 6 a batch took the log lock (a transaction-level advisory lock) to number
/// its events in commit order. PostgreSQL lets such a lock go only after the commit's WAL
/// flush, so writers on different connections (several replicas, or several writers of one)
/// took turns and never shared a flush. An event's `seq` is now its transaction's id shifted
/// left by 20 bits, plus its place in the transaction: a batch (`record_v2`, one call a
/// transaction) numbers its events in the upper half of the transaction's numbers by their
/// place in the batch; the column's default numbers any other row in the lower half
/// (`log_positions`, which counts in a transaction-local setting). Unique, increasing within a
/// transaction (creations come before the batch's changes), and ordered between transactions
/// by when each took its id, not by when it committed. What makes a reader's
/// prefix final is the snapshot's horizon instead: every transaction whose id is below
/// `pg_snapshot_xmin(pg_current_snapshot())` has ended, so the events below that id shifted
/// left are all there and none will come below them (`readable_below`); a reader that has
/// read every event below the horizon up to `p` finds any later one above `p`. Events
/// numbered before this version are below every new number (the migration checks).
///
/// The column's default numbers the rows that other statements insert (a run's creation, a
/// parking); a batch numbers its events in one call. A batch is now `record_v2`, which takes
/// each change's run beside it: `record_v1` looked it up by subscript in the array of runs,
/// which PostgreSQL walks from the start for every element of a text array, so a batch cost
/// in proportion to its size squared (4 ms of a batch of 2,000 changes). `record_v1` keeps
/// its signature and answer as a call of `record_v2`, so the release before this one (which
/// calls it) writes through the new body too. The log lock now numbers only signals.
///
/// The fence no longer rests on that lock either: the batch reads its runs' tokens with a
/// `FOR KEY SHARE` lock on their rows, and every change of a token (a take-up, a hand-over, a
/// parking, a queue's admission) locks the row `FOR UPDATE` first, which waits for that lock
/// and is waited for by it: no take-up commits between a batch's fence and its commit. A
/// lease renewal (`FOR NO KEY UPDATE`) does not wait for a batch, nor a batch for it. The
/// statements that lock several runs' rows lock them in `run_id` order, so that none waits
/// for another in a circle.
pub(super) const V7: &str = r#"
CREATE FUNCTION log_positions(n integer) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    used integer := COALESCE(NULLIF(current_setting('sagaflow.log_used', true), ''), '0')::integer;
BEGIN
    IF n < 0 OR used + n >= 524288 THEN
        RAISE EXCEPTION 'sagaflow: more than 524287 events in one transaction';
    END IF;
    PERFORM set_config('sagaflow.log_used', (used + n)::text, true);
    RETURN (pg_current_xact_id()::text::bigint << 20) + used;
END
$fn$;

CREATE FUNCTION readable_below() RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20 $$;

DO $$ BEGIN
    IF (SELECT COALESCE(max(seq), 0) FROM events) >= (pg_current_xact_id()::text::bigint << 20)
    THEN
        RAISE EXCEPTION 'sagaflow: the event log is numbered past this server''s transaction ids';
    END IF;
END $$;

ALTER TABLE events ALTER COLUMN seq DROP IDENTITY IF EXISTS;
ALTER TABLE events ALTER COLUMN seq SET DEFAULT (log_positions(1) + 1);

CREATE FUNCTION record_v2(
    p_owner text, p_batch bigint,
    p_runs text[], p_tokens bigint[], p_leases bigint[], p_ends text[], p_end_errors text[],
    p_wis bigint[], p_change_runs text[], p_steps text[], p_outputs text[], p_kinds text[],
    p_attempts integer[], p_details text[]
) RETURNS TABLE (r_seqs bigint[], r_at bigint, r_passed boolean[], r_found boolean[])
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
DECLARE
    base bigint;
BEGIN
    INSERT INTO writers (owner, batch) VALUES (p_owner, p_batch)
        ON CONFLICT (owner) DO UPDATE SET batch = excluded.batch;
    -- The upper half of the transaction's numbers: the column's default numbers the lower
    -- half (a creation in the same transaction comes first), and a transaction makes one
    -- call (a second one would collide with the first, and fail).
    base := (pg_current_xact_id()::text::bigint << 20) + 524288;
    IF cardinality(p_runs) = 1 THEN
        RETURN QUERY
        WITH now AS MATERIALIZED (SELECT now_ms() AS at),
        r AS MATERIALIZED (
            SELECT lease_token = p_tokens[1] AND NOT parked AS admitted, lease_expires
            FROM runs WHERE run_id = p_runs[1] FOR KEY SHARE
        ),
        renew AS (
            UPDATE runs SET version = version + 1, updated_at = now.at,
                lease_expires = CASE WHEN p_ends[1] IS NULL THEN now.at + p_leases[1] END,
                status = COALESCE(p_ends[1], status), error = COALESCE(p_end_errors[1], error)
            FROM r, now
            WHERE runs.run_id = p_runs[1] AND r.admitted
                AND (p_ends[1] IS NOT NULL OR r.lease_expires IS NULL
                     OR r.lease_expires - now.at < p_leases[1] / 2)
        ),
        ev AS (
            INSERT INTO events (seq, run_id, at, kind, step, attempt, detail, output)
            SELECT base + c.ci, p_runs[1], now.at, c.kind, c.step, c.attempt, c.detail, c.output
            FROM unnest(p_steps, p_outputs, p_kinds, p_attempts, p_details)
                    WITH ORDINALITY AS c(step, output, kind, attempt, detail, ci),
                now, r
            WHERE r.admitted
            RETURNING seq
        )
        SELECT (SELECT array_agg(seq ORDER BY seq) FROM ev), (SELECT at FROM now),
            ARRAY[COALESCE((SELECT admitted FROM r), false)],
            ARRAY[EXISTS (SELECT 1 FROM r)];
        RETURN;
    END IF;
    RETURN QUERY
    WITH now AS MATERIALIZED (SELECT now_ms() AS at),
    w AS MATERIALIZED (
        SELECT x.wi, x.run_id, x.lease_ms, x.end_status, x.end_error,
            r.run_id IS NOT NULL AS run_exists,
            COALESCE(r.lease_token = x.token AND NOT r.parked, false) AS admitted,
            r.lease_expires
        FROM (
            SELECT * FROM unnest(p_runs, p_tokens, p_leases, p_ends, p_end_errors)
                WITH ORDINALITY AS u(run_id, token, lease_ms, end_status, end_error, wi)
            ORDER BY u.run_id
        ) x
        -- The fence: each write's run looked up by key and locked FOR KEY SHARE to the
        -- commit, in run_id order (the writes sorted first; a lateral lookup goes in their
        -- order); a locking read gives the row's latest version. A hash join would read the
        -- whole table every batch; the LIMIT keeps the planner from turning the lookup into one.
        LEFT JOIN LATERAL (
            SELECT run_id, lease_token, parked, lease_expires FROM runs WHERE run_id = x.run_id
            LIMIT 1 FOR KEY SHARE
        ) r ON true
    ),
    admitted AS MATERIALIZED (SELECT array_agg(admitted ORDER BY wi) AS p FROM w),
    g AS MATERIALIZED (
        SELECT run_id, max(lease_ms) AS lease_ms, max(end_status) AS end_status,
            max(end_error) AS end_error, min(lease_expires) AS lease_expires
        FROM w WHERE admitted GROUP BY run_id
        HAVING max(end_status) IS NOT NULL OR min(lease_expires) IS NULL
            OR min(lease_expires) - (SELECT at FROM now) < max(lease_ms) / 2
    ),
    locked AS MATERIALIZED (
        SELECT r.run_id FROM runs r WHERE r.run_id = ANY(ARRAY(SELECT run_id FROM g))
        ORDER BY r.run_id FOR NO KEY UPDATE
    ),
    renew AS (
        UPDATE runs r SET version = r.version + 1, updated_at = now.at,
            lease_expires = CASE WHEN g.end_status IS NULL THEN now.at + g.lease_ms END,
            status = COALESCE(g.end_status, r.status), error = COALESCE(g.end_error, r.error)
        FROM g, locked, now
        WHERE r.run_id = g.run_id AND locked.run_id = g.run_id
    ),
    ev AS (
        INSERT INTO events (seq, run_id, at, kind, step, attempt, detail, output)
        SELECT base + c.ci, c.run_id, now.at, c.kind, c.step, c.attempt, c.detail, c.output
        FROM unnest(p_wis, p_change_runs, p_steps, p_outputs, p_kinds, p_attempts, p_details)
                WITH ORDINALITY AS c(wi, run_id, step, output, kind, attempt, detail, ci),
            now
        WHERE (SELECT p FROM admitted)[c.wi]
        RETURNING seq
    )
    SELECT (SELECT array_agg(seq ORDER BY seq) FROM ev), (SELECT at FROM now),
        (SELECT p FROM admitted), (SELECT array_agg(run_exists ORDER BY wi) FROM w);
END
$fn$;

CREATE OR REPLACE FUNCTION record_v1(
    p_owner text, p_batch bigint, p_k1 integer, p_k2 integer,
    p_runs text[], p_tokens bigint[], p_leases bigint[], p_ends text[], p_end_errors text[],
    p_wis bigint[], p_steps text[], p_outputs text[], p_kinds text[], p_attempts integer[],
    p_details text[]
) RETURNS TABLE (r_seqs bigint[], r_at bigint, r_passed boolean[], r_found boolean[])
LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $fn$
    SELECT * FROM record_v2(p_owner, p_batch, p_runs, p_tokens, p_leases, p_ends, p_end_errors,
        p_wis, ARRAY(SELECT p_runs[w] FROM unnest(p_wis) AS w), p_steps, p_outputs, p_kinds,
        p_attempts, p_details)
$fn$;
"#;

/// Version 8: a queued run's concurrency key (`queue_key`), and when it was first taken up
/// from its queue (`started_at`, by the server's clock): a queue's bounds count the runs of
/// one key held at once, and the runs started in a window (see `lease::admit`). Each
/// replica's heartbeat keeps the queues it serves and their bounds (`replicas.queues`, JSON),
/// which are set in code, for tools to show.
pub(super) const V8: &str = "
ALTER TABLE runs ADD COLUMN IF NOT EXISTS queue_key text;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS started_at bigint;
CREATE INDEX IF NOT EXISTS runs_started ON runs (queue, started_at) WHERE started_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_keyed ON runs (queue, queue_key)
    WHERE status = 'running' AND queue_key IS NOT NULL;
ALTER TABLE replicas ADD COLUMN IF NOT EXISTS queues text;
";

/// Version 9: a batch of one write marks its first event instead of a row of `writers`.
///
/// Every batch wrote its number into its writer's row of `writers`, so that a writer whose
/// connection died with the batch's `COMMIT` in flight could tell whether it committed (its
/// number there or not). For a batch of one write (every checkpoint of a sequential run) that
/// row's update was 15–25 µs of a checkpoint's 0.35 ms, and a heap page dirtied. Such a batch
/// now puts a number of its own (random, not 0) on its first event (`events.mark`), and a
/// writer in doubt looks for that event of that run. A nullable column: nothing is rewritten,
/// and the code before it neither writes nor reads it.
pub(super) const V9: &str = "
ALTER TABLE events ADD COLUMN IF NOT EXISTS mark bigint;
";

/// The `steps` view of version 10 (see [`V10`]), which [`V12`] makes again after changing a
/// column it reads.
macro_rules! steps_view_v10 {
    () => {
        "CREATE OR REPLACE VIEW steps AS
SELECT a.run_id, a.step AS name,
    CASE WHEN a.last_seq <> a.last_row THEN 'running'
         WHEN l.kind = 'step_completed' THEN 'completed' WHEN l.kind = 'step_failed' THEN 'failed'
         WHEN l.kind = 'step_skipped' THEN 'skipped' ELSE 'running' END AS status,
    CASE WHEN a.last_seq <> a.last_row THEN 1 ELSE COALESCE(l.attempt, 0) END AS attempts,
    CASE WHEN a.last_seq = a.last_row AND l.kind = 'step_completed' THEN l.output END AS output,
    CASE WHEN a.last_seq <> a.last_row OR l.kind <> 'step_completed' THEN a.error END AS error,
    a.started_at,
    CASE WHEN a.last_seq = a.last_row
              AND l.kind IN ('step_completed', 'step_failed', 'step_skipped') THEN l.at END
        AS finished_at,
    a.first_seq
FROM (
    SELECT e.run_id, x.step, min(x.seq) AS first_seq, max(x.seq) AS last_seq,
        max(e.seq) AS last_row,
        min(e.at) FILTER (WHERE x.kind <> 'step_skipped') AS started_at,
        (array_agg(x.detail::json ->> 'error' ORDER BY x.seq DESC)
            FILTER (WHERE x.kind IN ('step_retrying', 'step_failed')))[1] AS error
    FROM events e
        CROSS JOIN LATERAL (VALUES (e.seq, e.kind, e.step, e.detail),
                                   (e.seq + 1, 'step_started', e.next_step, NULL))
            AS x(seq, kind, step, detail)
    WHERE x.step IS NOT NULL
        AND x.kind IN ('step_started', 'step_retrying', 'step_completed', 'step_failed',
                       'step_skipped')
    GROUP BY e.run_id, x.step
) a
JOIN events l ON l.seq = a.last_row;
"
    };
}

/// Version 10: a step's completion and the next step's start in one row of the log.
///
/// `events.next_step` names a step whose start (attempt 1) the row logs too, at the same time
/// and numbered one past the row's own `seq` (a number the writer leaves free for it): half
/// the rows, and half the index entries, of a checkpoint that completes a step and starts the
/// next, which is most of them. The store wrote such rows only when told to
/// (`PgOptions::compact_log`, on by default from the release after this version's), since the
/// code before this version would read the completion and miss the start; every reader from this version on reads a row with a `next_step` as
/// the two events it stands for. The `steps` view reads both forms: each row as its own
/// event, and as the next step's start when it names one. A nullable column and a view of the
/// same columns: the code before it works on as it did (it writes no such rows).
pub(super) const V10: &str = concat!(
    "
ALTER TABLE events ADD COLUMN IF NOT EXISTS next_step text;

",
    steps_view_v10!()
);

/// Version 11: a workflow's graph stored once, not in every run's row.
///
/// `graphs` holds each graph by its workflow and fingerprint, the two columns a run's row has
/// anyway. The code of this version inserts a creation's graph there (unless it is there) and
/// leaves `runs.graph` null; it reads a run's graph from `runs.graph` if set (a run the code
/// before it created), else from `graphs`. Nothing is rewritten, and the code before it works
/// on as it did; only its reading of a run's graph (`sagaflow graph`) finds none for a run
/// this version created.
pub(super) const V11: &str = "
CREATE TABLE IF NOT EXISTS graphs (
    workflow    text   NOT NULL,
    fingerprint bigint NOT NULL,
    graph       text   NOT NULL,
    PRIMARY KEY (workflow, fingerprint)
);
";

/// Version 12: run ids compared byte by byte (`COLLATE "C"`), as SQLite compares them.
///
/// Every write's fence looks its run up by id (`runs`' key), and every event goes into
/// `events_by_run`; under the database's own collation each comparison of two ids went
/// through the C library's or ICU's collation (`varstr_cmp`), where `"C"` compares the
/// bytes. Looking up the runs of a batch of 80 and their events (pgbench, benches/README.md,
/// session 24): 0.50–0.53 ms with `"C"`, against 0.59–0.63 ms under `C.UTF-8` and
/// 0.89–1.00 ms under ICU's `en-US`. Ids are equal under either exactly when their bytes are,
/// so no key changes; only the order of a listing by id can, to byte order (SQLite's), on a
/// database whose collation is not `C.UTF-8`.
///
/// Changing a column's collation rebuilds the indexes that hold it (not the tables), under
/// an exclusive lock of each table until the migration commits: on a large database, the
/// upgrade's first replica takes that long to start, and the others wait for it. The `steps`
/// view reads `events.run_id`, so it is dropped and made again as it was. The code before it
/// works on as it did.
pub(super) const V12: &str = concat!(
    "
DROP VIEW IF EXISTS steps;
ALTER TABLE runs ALTER COLUMN run_id TYPE text COLLATE \"C\";
ALTER TABLE events ALTER COLUMN run_id TYPE text COLLATE \"C\";
ALTER TABLE signals ALTER COLUMN run_id TYPE text COLLATE \"C\";

",
    steps_view_v10!()
);
