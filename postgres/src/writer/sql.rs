//! The writer's statements, kept for its connection's life (see `Session::keep`), and the
//! one a writer in doubt asks.

/// Every creation of a batch, in one statement (a statement each cost the server a
/// statement's setup each, about as much as a batch of a hundred changes in all). The
/// creations come as arrays, a column each; a row comes back for each, in their order: the
/// number and time of its `run_created` event if it created the run, else the workflow of
/// the run already there (none if another transaction created it while this one waited, or
/// an earlier creation of the same batch did). The runs' rows are written in `run_id` order,
/// so that two batches creating the same runs wait for each other in one order; the first
/// of several creations of one id in a batch is the one that counts. The events take the
/// lower half of the transaction's numbers (`log_positions`, see `schema`), in the batch's
/// order, each followed by its first step's start when the creation names one ($13, see
/// `NewRun::first_step`; the start's number comes back as a fifth column). A run put on a
/// queue notifies its channel ($11, when one is listened to) with the commit. The numbers
/// that come back are worked out as the events' were, not read back from the inserted rows:
/// a join of those by run id compared every pair, in time the square of the batch's size (a
/// batch of 50 creations spent 1 ms of its 2.9 there; one replica starting 2,000 runs at once
/// ran at half the rate, benches/README.md, session 22); the run already there is looked up
/// only for a creation that made nothing. A creation's graph ($7, sent only while the store's
/// writers have not seen it stored, see `graphs`) goes into `graphs` unless it is there, in
/// the order of its key, and the run's row keeps none (schema 11). In a compact log ($14,
/// `PgOptions::compact_log`) the first step's start is no row of its own: the creation's row
/// names it (`next_step`), and it keeps the number it would have had, one past the row's.
pub(super) const CREATE_SQL: &str = "
WITH now AS MATERIALIZED (SELECT now_ms() AS at),
c AS MATERIALIZED (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
            $6::bigint[], $7::text[], $8::text[], $9::integer[], $10::text[], $11::text[],
            $13::text[])
        WITH ORDINALITY AS c(run_id, workflow, fingerprint, input, owner, lease_ms, graph,
            queue, priority, queue_key, notify, first, ci)
),
firsts AS MATERIALIZED (SELECT DISTINCT ON (run_id) * FROM c ORDER BY run_id, ci),
g AS (
    INSERT INTO graphs (workflow, fingerprint, graph)
    SELECT DISTINCT ON (workflow, fingerprint) workflow, fingerprint, graph
    FROM c WHERE graph IS NOT NULL
    ORDER BY workflow, fingerprint
    ON CONFLICT DO NOTHING
),
ins AS (
    INSERT INTO runs (run_id, workflow, graph_fingerprint, input, status, version, created_at,
                      updated_at, owner, lease_token, lease_expires, queue, priority, queue_key)
    SELECT f.run_id, f.workflow, f.fingerprint, f.input, 'running', 1, now.at, now.at, f.owner,
        1, now.at + f.lease_ms, f.queue, f.priority, f.queue_key
    FROM firsts f, now
    ORDER BY f.run_id
    ON CONFLICT (run_id) DO NOTHING
    RETURNING run_id, created_at
),
made AS MATERIALIZED (
    SELECT f.ci, f.run_id, ins.created_at, f.notify, f.first
    FROM ins JOIN firsts f USING (run_id)
),
base AS MATERIALIZED (SELECT log_positions(2 * (SELECT count(*)::integer FROM c)) AS b),
ev AS (
    INSERT INTO events (seq, run_id, at, kind, step, attempt, next_step)
    SELECT base.b + 2 * made.ci - 1, made.run_id, made.created_at, 'run_created', NULL, NULL,
        CASE WHEN $14::boolean THEN made.first END
    FROM made, base
    UNION ALL
    SELECT base.b + 2 * made.ci, made.run_id, made.created_at, 'step_started', made.first, 1,
        NULL
    FROM made, base WHERE made.first IS NOT NULL AND NOT $14::boolean
    RETURNING seq
),
told AS MATERIALIZED (
    SELECT count(pg_notify(made.notify, $12)) AS n FROM made WHERE made.notify IS NOT NULL
)
SELECT base.b + 2 * made.ci - 1, made.created_at,
    CASE WHEN made.ci IS NULL THEN (SELECT r.workflow FROM runs r WHERE r.run_id = c.run_id) END,
    (SELECT n FROM told),
    CASE WHEN made.first IS NOT NULL THEN base.b + 2 * made.ci END
FROM c
    CROSS JOIN base
    LEFT JOIN made ON made.ci = c.ci
ORDER BY c.ci";

/// A batch's one creation (a run started alone, as every run of a sequential caller is): what
/// [`CREATE_SQL`] does for one run, as a statement of its own, with the same row back (its
/// first step's start, $13, numbered after the creation by the column's default; in a compact
/// log, $14, named by the creation's row, whose number leaves the next one free for it). The set
/// form cost a run started alone about 50 µs more of the server's time (its arrays, the sort
/// that keeps a batch's first creation of an id, the numbering's call).
pub(super) const CREATE_ONE_SQL: &str = "
WITH now AS (SELECT now_ms() AS at),
g AS (
    INSERT INTO graphs (workflow, fingerprint, graph)
    SELECT $2, $3, $7::text WHERE $7::text IS NOT NULL
    ON CONFLICT DO NOTHING
),
ins AS (
    INSERT INTO runs (run_id, workflow, graph_fingerprint, input, status, version, created_at,
                      updated_at, owner, lease_token, lease_expires, queue, priority, queue_key)
    SELECT $1, $2, $3, $4, 'running', 1, now.at, now.at, $5, 1, now.at + $6, $8, $9, $10
    FROM now
    ON CONFLICT (run_id) DO NOTHING
    RETURNING run_id, created_at
),
ev AS (
    INSERT INTO events (run_id, at, kind, step, attempt)
    SELECT ins.run_id, ins.created_at, k.kind, k.step, k.attempt
    FROM ins, (VALUES (1, 'run_created', NULL, NULL), (2, 'step_started', $13::text, 1))
        AS k(o, kind, step, attempt)
    WHERE NOT $14::boolean AND (k.o = 1 OR $13::text IS NOT NULL)
    ORDER BY k.o
    RETURNING seq, at, kind
),
compact AS (
    INSERT INTO events (seq, run_id, at, kind, next_step)
    SELECT log_positions(2) + 1, ins.run_id, ins.created_at, 'run_created', $13::text
    FROM ins WHERE $14::boolean
    RETURNING seq, at, next_step
)
SELECT COALESCE(created.seq, c.seq), COALESCE(created.at, c.at),
    (SELECT workflow FROM runs WHERE run_id = $1),
    (SELECT count(pg_notify($11, $12)) FROM ins WHERE $11::text IS NOT NULL),
    COALESCE(began.seq, CASE WHEN c.next_step IS NOT NULL THEN c.seq + 1 END)
FROM (SELECT 1) AS one
    LEFT JOIN ev created ON created.kind = 'run_created'
    LEFT JOIN ev began ON began.kind = 'step_started'
    LEFT JOIN compact c ON true";

/// The fence of every change write of a batch of several: their runs' ids, as an array. Each
/// run's row is looked up by key and locked `FOR KEY SHARE` to the commit, in `run_id` order
/// (a locking clause applies after the `ORDER BY`), so that no take-up commits between the
/// fence and the commit (see `schema`, version 7); a locking read gives the row's latest
/// version. (The writer's plans are generic and scan no table whole: see
/// `Session::plan_once`.)
///
/// One row comes back: the transaction's id (the events' numbers are its id shifted left by
/// 20 bits, their place in the batch in the upper half: see [`COPY_SQL`]), the time, and the
/// runs found with their tokens, whether each is parked and when its lease expires; the writer
/// decides which writes passed (their run found, with their token, not parked: see
/// `record::Fence`). It then copies in the events of the writes that passed ([`COPY_SQL`]), in
/// the same transaction, and sends the renewals and ends of those that renew or end their run
/// ([`RENEW_SQL`]) right behind the copy's end.
///
/// Until session 21 the statement compared the tokens itself, each write's run looked up
/// apart (a lateral subquery over the writes, unnested with their tokens and sorted): about
/// 1.5 µs a write more on the server (benches/README.md, session 21).
///
/// Until session 17 one call of the schema's `record_v2` did this and appended the events
/// from arrays too; the schema keeps that function for the releases before. Appending them by
/// `COPY` instead cost the server about a quarter less per write in a batch of a hundred
/// (benches/README.md, session 17): the rows go in by pages (`heap_multi_insert`, a WAL record
/// a page rather than a row) and no array is unnested into a tuple store first. Until session
/// 20 this statement renewed and ended the runs too, for every batch, whatever it held: a
/// third of its time in a batch of 80 writes that renewed nothing (benches/README.md).
pub(super) const FENCE_SQL: &str = "
SELECT pg_current_xact_id()::text::bigint, now_ms(),
    array_agg(run_id), array_agg(lease_token), array_agg(parked), array_agg(lease_expires)
FROM (
    SELECT run_id, lease_token, parked, lease_expires FROM runs WHERE run_id = ANY($1::text[])
    ORDER BY run_id FOR KEY SHARE
) r";

/// The renewals and ends of a batch's runs, sent right behind the end of its `COPY` ([`COPY_SQL`]),
/// in the same transaction: one row a run, for the writes that passed the fence
/// ([`FENCE_SQL`]) and end their run, or may renew its lease (see `RecordRow::renew`) and
/// found it half spent by the fence's answer (see `record::Fence::renewals`), as arrays (a
/// run's id, lease, end and error, in `run_id` order) with the fence's time ($5). The fence
/// holds each row locked, so no take-up changed its token since; each row is locked `FOR NO
/// KEY UPDATE` in `run_id` order first, as the heartbeat's renewals lock theirs.
///
/// Until session 22 this statement went right behind the fence, before its answer, so it
/// looked each run up for its token and lease itself, and decided which leases were half
/// spent: three lookups of each row it changed (the token, the lock, the update), two now.
pub(super) const RENEW_SQL: &str = "
WITH locked AS MATERIALIZED (
    SELECT r.run_id FROM runs r WHERE r.run_id = ANY($1::text[])
    ORDER BY r.run_id FOR NO KEY UPDATE
)
UPDATE runs r SET version = r.version + 1, updated_at = $5,
    lease_expires = CASE WHEN u.end_status IS NULL THEN $5 + u.lease_ms END,
    status = COALESCE(u.end_status, r.status), error = COALESCE(u.end_error, r.error)
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])
        AS u(run_id, lease_ms, end_status, end_error),
    locked
WHERE r.run_id = u.run_id AND locked.run_id = u.run_id";

/// The events of a batch's writes that passed its fence ([`FENCE_SQL`]), copied in binary, in
/// the order of [`COPY_TYPES`]. A row's number is the transaction's id shifted left by 20
/// bits, plus 2^19, plus its change's place among the batch's changes (from 1): the upper half
/// of the transaction's numbers, as `record_v2` numbered them (a creation in the same
/// transaction takes the lower half, see `schema`). Every column is given, so no default is
/// evaluated and the rows go in by pages.
///
/// In a compact log (`PgOptions::compact_log`) a write's completion and the next step's start
/// are one row, its `next_step` naming that step (schema version 10); the start's number, one
/// past the row's, is no row's.
pub(super) const COPY_SQL: &str = "COPY events (seq, run_id, at, kind, step, attempt, detail, output, \
     next_step) FROM STDIN (FORMAT binary)";

/// The types of [`COPY_SQL`]'s columns.
pub(super) const COPY_TYPES: [tokio_postgres::types::Type; 9] = {
    use tokio_postgres::types::Type;
    [
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ]
};

/// Every change write of a batch behind a pooler (where no `COPY` is kept, see `Conn`), as one
/// call of the schema's `record_v2` (see `schema`): the writes as arrays (a run's id, token,
/// lease and end), their changes as arrays (one or two a write: a change, or a step's
/// completion and the next step's start), each with the index of its write. It fences the
/// writes as [`FENCE_SQL`] does, numbers the events as [`COPY_SQL`] does, and writes the
/// batch's number itself. One row comes back (see [`outcomes`](super::record::outcomes)).
pub(super) const RECORD_SQL: &str = "SELECT r_seqs, r_at, r_passed, r_found FROM record_v2($1, $2, $3, \
     $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// A batch of one change write (a run alone, as a sequential run's every checkpoint is):
/// what `record_v2` does for one run, sent as a statement of its own rather than a call, and
/// marked on its first event rather than in `writers`. The call cost the server a function's
/// setup (its `SET search_path`, a plan of its own, a result kept and copied out) on every
/// checkpoint, about 25 µs, and the row of `writers` 15–25 µs more (benches/README.md, session
/// 11). The same writes otherwise, in the same order: the fence (the run's row locked `FOR KEY
/// SHARE` to the commit, its token compared), the events numbered in the upper half of the
/// transaction's numbers (see `schema`), the first carrying the batch's mark ($1; none behind
/// a pooler or with crash points, where the batch's transaction writes `writers` as before).
///
/// [`ONE_RENEW_SQL`], for a write that also renews the lease once half spent or ends the run;
/// a write that only appends its events is [`ONE_SQL`], without the update, which, even when
/// its condition on parameters alone kept it from running, cost every checkpoint about 10% of
/// a sequential step (benches/README.md, session 14).
///
/// What comes back is a row per event appended (the time, `true`, its number), or one row
/// without a number: the time and whether the token passed (null: no such run). Rows rather
/// than `record_v2`'s one row of arrays: the arrays' subqueries cost a sequential step about
/// 8% more (session 14), see [`one_found`](super::record::one_found).
macro_rules! one_sql {
    ($($renew:literal)?) => {
        concat!(
            "
WITH now AS MATERIALIZED (SELECT now_ms() AS at),
r AS MATERIALIZED (
    SELECT lease_token = $3::bigint AND NOT parked AS admitted, lease_expires
    FROM runs WHERE run_id = $2::text FOR KEY SHARE
),",
            $($renew,)?
            "
ev AS (
    INSERT INTO events (seq, run_id, at, kind, step, attempt, detail, output, mark)
    SELECT (pg_current_xact_id()::text::bigint << 20) + 524288 + c.ci, $2::text, now.at,
        c.kind, c.step, c.attempt, c.detail, c.output,
        CASE WHEN c.ci = 1 THEN $1::bigint END
    FROM unnest($4::text[], $5::text[], $6::text[], $7::integer[], $8::text[])
            WITH ORDINALITY AS c(step, output, kind, attempt, detail, ci),
        now, r
    WHERE r.admitted
    RETURNING seq
)
SELECT now.at, r.admitted, ev.seq FROM now LEFT JOIN r ON true LEFT JOIN ev ON true"
        )
    };
}

/// A batch of one write that appends its events alone (most checkpoints: the store renewed
/// the run's lease less than half a lease ago, and the run goes on): what [`one_sql`] does
/// without the renewal, in a leaner statement. $1 the mark, $2 the run, $3 its token, then the
/// first change's step, output, kind, attempt and detail ($4–$8) and the second's ($9–$13;
/// its kind null when the write has one change), and the step whose start the first row logs
/// too in a compact log ($14, see `PgOptions::compact_log`; the second's kind is then null,
/// and the start's number, one past the row's, comes back as a row of its own).
///
/// The fence is the insert's own source: the run's row, locked `FOR KEY SHARE` to the commit,
/// only if its token is the write's and it is not parked; and the changes come as the
/// statement's own parameters rather than arrays to unnest. Against [`one_sql`]'s form (the
/// fence a CTE of its own, outer joins to answer a refusal in the same row, the changes
/// unnested) this cost the server 7–10 µs less a checkpoint, about 15% of its statement
/// (benches/README.md, session 17). What comes back is a row per event appended (the time,
/// `true`, its number), or no row: the write was refused, and [`REFUSED_SQL`] tells why.
pub(super) const ONE_SQL: &str = "
WITH r AS MATERIALIZED (
    SELECT now_ms() AS at FROM runs
    WHERE run_id = $2::text AND lease_token = $3::bigint AND NOT parked FOR KEY SHARE
),
ev AS (
    INSERT INTO events (seq, run_id, at, kind, step, attempt, detail, output, mark, next_step)
    SELECT (pg_current_xact_id()::text::bigint << 20) + 524288 + c.ci, $2::text, r.at,
        c.kind, c.step, c.attempt, c.detail, c.output, c.mark, c.next_step
    FROM r, (VALUES (1, $4::text, $5::text, $6::text, $7::integer, $8::text, $1::bigint,
                     $14::text),
                    (2, $9::text, $10::text, $11::text, $12::integer, $13::text, NULL::bigint,
                     NULL::text))
            AS c(ci, step, output, kind, attempt, detail, mark, next_step)
    WHERE c.kind IS NOT NULL
    RETURNING at, seq, next_step
)
SELECT at, true, seq FROM ev
UNION ALL
SELECT at, true, seq + 1 FROM ev WHERE next_step IS NOT NULL";

/// Why a batch of one write ([`ONE_SQL`]) appended nothing, in the shape of [`one_sql`]'s
/// refusal: the time, `false` if run `$1` exists (its token was another's, or it is parked),
/// null if there is no such run, and no number. Asked after the write's statement, which
/// found no row to fence on; tokens only grow, so a run found now was refused then.
pub(super) const REFUSED_SQL: &str =
    "SELECT now_ms(), (SELECT false FROM runs WHERE run_id = $1::text), NULL::bigint";

/// A batch of one write that also renews the run's lease once half spent ($9, the lease's
/// length) or ends the run ($10, its status, and $11, its error): see [`one_sql`].
pub(super) const ONE_RENEW_SQL: &str = one_sql!(
    "
renew AS (
    UPDATE runs SET version = version + 1, updated_at = now.at,
        lease_expires = CASE WHEN $10::text IS NULL THEN now.at + $9::bigint END,
        status = COALESCE($10::text, status), error = COALESCE($11::text, error)
    FROM r, now
    WHERE runs.run_id = $2::text AND r.admitted
        AND ($10::text IS NOT NULL OR r.lease_expires IS NULL
             OR r.lease_expires - now.at < $9::bigint / 2)
),"
);

/// Whether the batch of one write marked `$2` on run `$1` committed (see [`one_sql`]).
pub(super) const MARKED_SQL: &str =
    "SELECT EXISTS (SELECT 1 FROM events WHERE run_id = $1 AND mark = $2)";

pub(super) const MARK_SQL: &str = "INSERT INTO writers (owner, batch) VALUES ($1, $2) \
     ON CONFLICT (owner) DO UPDATE SET batch = excluded.batch";
