//! Change writes: the statements that record a batch's changes (the fence and a `COPY` of the
//! events, or [`ONE_SQL`](super::sql::ONE_SQL) for a batch of one write), and what each write
//! of a committed batch got back.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::{CopyInSink, Row};

use super::sql::COPY_TYPES;
use super::{Conn, CreateRow, RecordRow, Write};
use crate::change::ChangeRow;
use crate::session::Param;

/// What a write of a committed batch got back.
pub(super) enum Answered {
    /// A creation: its statement's rows.
    Created(Vec<Row>),
    /// A change: what the change statement said of it (`None`: an answer of the wrong shape).
    Recorded(Option<Outcome>),
}

/// What became of a change write.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Its events were appended, numbered so, at this time.
    Applied(Vec<i64>, i64),
    /// Its run's lease is another's (or the run is parked): nothing written.
    Fenced,
    /// No such run.
    NoRun,
}

/// A batch's creations and its change writes, each in the batch's order.
pub(super) fn split(batch: &[Write]) -> (Vec<&CreateRow>, Vec<&RecordRow>) {
    let mut creations = Vec::new();
    let mut records = Vec::new();
    for write in batch {
        match write {
            Write::Create(row, _) => creations.push(row),
            Write::Record(row, _) => records.push(row),
        }
    }
    (creations, records)
}

/// What each write of `batch` got back, in the batch's order, from the statements' rows:
/// the creations' statement (a row each, in order), then the change statement's rows.
/// `copied`: whether several writes were fenced and their events copied in (see
/// [`record_all`]).
pub(super) fn distribute(
    batch: &[Write],
    statements: Vec<Vec<Row>>,
    copied: bool,
) -> Vec<Answered> {
    let (creations, records) = split(batch);
    let creates = creations.len();
    let mut statements = statements.into_iter();
    // The creations' statement: a row each, in the batch's order (none of the right count is
    // no answer).
    let mut created: Vec<Vec<Row>> = match creates {
        0 => Vec::new(),
        _ => statements
            .next()
            .filter(|rows| rows.len() == creates)
            .map(|rows| rows.into_iter().map(|row| vec![row]).collect())
            .unwrap_or_default(),
    };
    created.reverse();
    let found = statements.next().and_then(|rows| match records[..] {
        [_] => one_found(&rows),
        _ if copied => fence_found(&records, &rows),
        _ => batch_found(&rows),
    });
    let mut recorded = found
        .and_then(|(seqs, at, passed, exists)| {
            let changes: Vec<usize> = records
                .iter()
                .map(|row| 1 + usize::from(row.then.is_some()))
                .collect();
            outcomes(&changes, seqs, at, &passed, &exists)
        })
        .map(Vec::into_iter);
    batch
        .iter()
        .map(|write| match write {
            Write::Create(..) => Answered::Created(created.pop().unwrap_or_default()),
            Write::Record(..) => Answered::Recorded(recorded.as_mut().and_then(Iterator::next)),
        })
        .collect()
}

/// What the change statement of several writes behind a pooler (`record_v2`) said: its one
/// row of arrays.
fn batch_found(rows: &[Row]) -> Option<Found> {
    let row = rows.first()?;
    Some((
        row.try_get::<_, Option<Vec<i64>>>(0)
            .ok()?
            .unwrap_or_default(),
        row.try_get::<_, i64>(1).ok()?,
        row.try_get::<_, Vec<bool>>(2).ok()?,
        row.try_get::<_, Vec<bool>>(3).ok()?,
    ))
}

/// What the fence of several writes ([`FENCE_SQL`](super::sql::FENCE_SQL)) said of them.
pub(super) struct Fence {
    /// The number before the batch's first change's (see [`COPY_SQL`](super::sql::COPY_SQL)).
    base: i64,
    at: i64,
    passed: Vec<bool>,
    exists: Vec<bool>,
    /// When the lease of each write's run expires (`None`: none, or no such run).
    expires: Vec<Option<i64>>,
}

impl Fence {
    /// The fence's answer for `writes`, if it has its shape: a write passed if its run was
    /// found with the write's token and not parked.
    pub(super) fn of(rows: &[Row], writes: &[&RecordRow]) -> Option<Fence> {
        let row = rows.first()?;
        let xid = row.try_get::<_, i64>(0).ok()?;
        let runs = row
            .try_get::<_, Option<Vec<&str>>>(2)
            .ok()?
            .unwrap_or_default();
        let tokens = row
            .try_get::<_, Option<Vec<i64>>>(3)
            .ok()?
            .unwrap_or_default();
        let parked = row
            .try_get::<_, Option<Vec<bool>>>(4)
            .ok()?
            .unwrap_or_default();
        let leases = row
            .try_get::<_, Option<Vec<Option<i64>>>>(5)
            .ok()?
            .unwrap_or_default();
        if tokens.len() != runs.len() || parked.len() != runs.len() || leases.len() != runs.len() {
            return None;
        }
        let found: HashMap<&str, (i64, bool, Option<i64>)> = runs
            .into_iter()
            .zip(tokens.into_iter().zip(parked).zip(leases))
            .map(|(run, ((token, parked), expires))| (run, (token, parked, expires)))
            .collect();
        let mut expires = Vec::with_capacity(writes.len());
        let (passed, exists) = writes
            .iter()
            .map(|write| match found.get(write.run_id.as_str()) {
                Some(&(token, parked, lease)) => {
                    expires.push(lease);
                    (token == write.token && !parked, true)
                }
                None => {
                    expires.push(None);
                    (false, false)
                }
            })
            .unzip();
        Some(Fence {
            base: xid.checked_mul(1 << 20)?.checked_add(1 << 19)?,
            at: row.try_get::<_, i64>(1).ok()?,
            passed,
            exists,
            expires,
        })
    }

    /// The renewals and ends of `writes` ([`RENEW_SQL`](super::sql::RENEW_SQL)): one a run,
    /// in `run_id` order, for the writes that passed and end their run, or may renew its lease
    /// (`RecordRow::renew`) and find it half spent at the fence's time, or have none. Several
    /// writes of one run (its parallel branches) are one row: the longest lease, the end if
    /// any writes one.
    pub(super) fn renewals<'a>(&self, writes: &[&'a RecordRow]) -> Renewals<'a> {
        let mut runs: BTreeMap<&'a str, Renewal<'a>> = BTreeMap::new();
        for ((write, &passed), &expires) in writes.iter().zip(&self.passed).zip(&self.expires) {
            let end = end_of(write);
            if !passed || !(write.renew || end.is_some()) {
                continue;
            }
            let run = runs.entry(write.run_id.as_str()).or_insert(Renewal {
                lease_ms: write.lease_ms,
                end: None,
                error: None,
                expires,
            });
            run.lease_ms = run.lease_ms.max(write.lease_ms);
            if let Some((status, error)) = end {
                run.end = run.end.max(Some(status));
                run.error = run.error.max(error);
            }
        }
        let mut renewals = Renewals {
            at: self.at,
            ..Renewals::default()
        };
        for (run, r) in runs {
            let half_spent = r
                .expires
                .is_none_or(|expires| expires - self.at < r.lease_ms / 2);
            if r.end.is_some() || half_spent {
                renewals.runs.push(run);
                renewals.leases.push(r.lease_ms);
                renewals.ends.push(r.end);
                renewals.errors.push(r.error);
            }
        }
        renewals
    }

    /// Each change of `writes` with its number, for the writes that passed, in the batch's
    /// order: a change's number is its place among all the batch's changes (from 1) after the
    /// base, whether its write passed or not.
    fn numbered<'a>(
        &'a self,
        writes: &'a [&'a RecordRow],
    ) -> impl Iterator<Item = (i64, &'a RecordRow, &'a ChangeRow)> + 'a {
        writes
            .iter()
            .zip(&self.passed)
            .flat_map(|(write, &passed)| {
                std::iter::once(&write.change)
                    .chain(&write.then)
                    .map(move |change| (passed, *write, change))
            })
            .zip(self.base + 1..)
            .filter_map(|((passed, write, change), seq)| passed.then_some((seq, write, change)))
    }
}

/// One run's renewal or end, while [`Fence::renewals`] gathers them.
struct Renewal<'a> {
    lease_ms: i64,
    end: Option<&'static str>,
    error: Option<&'a str>,
    expires: Option<i64>,
}

/// The renewals and ends of a batch's runs, as [`RENEW_SQL`](super::sql::RENEW_SQL) takes
/// them: a column each, one row a run, in `run_id` order; `at`, the fence's time.
#[derive(Debug, Default)]
pub(super) struct Renewals<'a> {
    runs: Vec<&'a str>,
    leases: Vec<i64>,
    ends: Vec<Option<&'static str>>,
    errors: Vec<Option<&'a str>>,
    at: i64,
}

impl Renewals<'_> {
    /// Whether no run is renewed or ended.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Sends the statement (when first polled).
    pub(super) async fn send(&self, conn: &Conn) -> Result<Vec<Row>, tokio_postgres::Error> {
        let params: [&dyn Param; 5] =
            [&self.runs, &self.leases, &self.ends, &self.errors, &self.at];
        conn.renew.query(&conn.client, &params).await
    }
}

/// What the fence of several writes said, as [`outcomes`] takes it.
fn fence_found(writes: &[&RecordRow], rows: &[Row]) -> Option<Found> {
    let fence = Fence::of(rows, writes)?;
    let seqs = fence.numbered(writes).map(|(seq, ..)| seq).collect();
    Some((seqs, fence.at, fence.passed, fence.exists))
}

/// The start of a batch's `COPY` ([`COPY_SQL`](super::sql::COPY_SQL)), sent behind its
/// fence: answered once the fence has been.
pub(super) type CopyStart<'a> =
    Pin<Box<dyn Future<Output = Result<CopyInSink<Bytes>, tokio_postgres::Error>> + Send + 'a>>;

/// The rows of a batch's `COPY`, written and not yet ended: its `finish` sends the end.
pub(super) type CopyRows = Pin<Box<BinaryCopyInWriter>>;

/// Writes the events of the writes of `writes` that passed the fence whose answer is `rows`
/// into the `COPY` that `started` ([`COPY_SQL`](super::sql::COPY_SQL)), in the fence's
/// transaction, and gives the copy back for its caller to end (its `finish`), so that the
/// `COMMIT` can go right behind the end. None may have passed: the copy then has no row. An
/// answer that is not the fence's is an error of the batch (the copy, dropped unended, is
/// abandoned: the server is told it failed).
pub(super) async fn copy_all(
    started: Result<CopyInSink<Bytes>, tokio_postgres::Error>,
    writes: &[&RecordRow],
    rows: &[Row],
    compact: bool,
) -> Result<(CopyRows, Fence), CopyError> {
    let fence = Fence::of(rows, writes).ok_or(CopyError::Answer)?;
    let mut writer = Box::pin(BinaryCopyInWriter::new(started?, &COPY_TYPES));
    for (seq, write, change) in fence.numbered(writes) {
        // In a compact log, a write's first row logs the start that follows it too (taking
        // its number, one past the row's), and that start is no row of its own.
        let next_step = write.next_step().filter(|_| compact);
        let first = std::ptr::eq(change, &write.change);
        if next_step.is_some() && !first {
            continue;
        }
        let next_step = next_step.filter(|_| first);
        let attempt = change.attempt.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        writer
            .as_mut()
            .write(&[
                &seq,
                &write.run_id.as_str(),
                &fence.at,
                &change.kind.as_str(),
                &change.step.as_deref(),
                &attempt,
                &change.detail.as_deref(),
                &change.output.as_deref(),
                &next_step,
            ])
            .await?;
    }
    Ok((writer, fence))
}

/// Why a batch's events were not copied in.
#[derive(Debug)]
pub(super) enum CopyError {
    /// The fence's answer had not its shape.
    Answer,
    /// The client or the server failed.
    Pg(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for CopyError {
    fn from(error: tokio_postgres::Error) -> Self {
        CopyError::Pg(error)
    }
}

/// What a batch of one write's statement (see [`ONE_SQL`](super::sql::ONE_SQL)) said of it,
/// as [`fence_found`] reads the fence's row: a row for each event appended (the time,
/// `true`, its number), or one row with no number (the time, and whether the run's token
/// passed; null: no such run).
pub(super) fn one_found(rows: &[Row]) -> Option<Found> {
    let mut seqs = Vec::with_capacity(rows.len());
    let mut at = None;
    let mut admitted = None;
    for row in rows {
        at = Some(row.try_get::<_, i64>(0).ok()?);
        admitted = row.try_get::<_, Option<bool>>(1).ok()?;
        seqs.extend(row.try_get::<_, Option<i64>>(2).ok()?);
    }
    seqs.sort_unstable();
    Some((
        seqs,
        at?,
        vec![admitted == Some(true)],
        vec![admitted.is_some()],
    ))
}

/// The numbers of the events appended, the time, and for each write whether it passed the
/// fence and whether its run exists.
type Found = (Vec<i64>, i64, Vec<bool>, Vec<bool>);

/// What became of each change write, from the change statement's row: the numbers of every
/// event appended (in the batch's order), the time, and for each write whether it passed the
/// fence and whether its run exists. A write that passed takes the next numbers, one per
/// change (`changes`, a write's count). `None` if the counts do not add up.
pub(super) fn outcomes(
    changes: &[usize],
    seqs: Vec<i64>,
    at: i64,
    passed: &[bool],
    exists: &[bool],
) -> Option<Vec<Outcome>> {
    if passed.len() != changes.len() || exists.len() != changes.len() {
        return None;
    }
    let mut seqs = seqs.into_iter();
    let mut found = Vec::with_capacity(changes.len());
    for ((&count, &passed), &exists) in changes.iter().zip(passed).zip(exists) {
        found.push(if passed {
            let mine: Vec<i64> = seqs.by_ref().take(count).collect();
            if mine.len() != count {
                return None;
            }
            Outcome::Applied(mine, at)
        } else if exists {
            Outcome::Fenced
        } else {
            Outcome::NoRun
        });
    }
    seqs.next().is_none().then_some(found)
}

/// Changes as the columns the change statements take, one array per column.
struct Columns<'a> {
    steps: Vec<Option<&'a str>>,
    outputs: Vec<Option<&'a str>>,
    kinds: Vec<&'a str>,
    attempts: Vec<Option<i32>>,
    details: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(changes: &[&'a ChangeRow]) -> Columns<'a> {
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Columns {
            steps: changes.iter().map(|c| c.step.as_deref()).collect(),
            outputs: changes.iter().map(|c| c.output.as_deref()).collect(),
            kinds: changes.iter().map(|c| c.kind.as_str()).collect(),
            attempts: changes.iter().map(|c| c.attempt.map(count)).collect(),
            details: changes.iter().map(|c| c.detail.as_deref()).collect(),
        }
    }
}

/// The changes of one write (one, or a pair), and the run's end if either change ends it
/// (only the last can).
fn changes_of(row: &RecordRow) -> (Vec<&ChangeRow>, Option<(&'static str, Option<&str>)>) {
    let changes: Vec<&ChangeRow> = std::iter::once(&row.change).chain(&row.then).collect();
    (changes, end_of(row))
}

/// The run's end, if a change of `row` ends it (only the last can).
fn end_of(row: &RecordRow) -> Option<(&'static str, Option<&str>)> {
    std::iter::once(&row.change)
        .chain(&row.then)
        .find_map(|c| c.end.as_ref())
        .map(|(status, error)| (*status, error.as_deref()))
}

/// Whose batch and which one: what the change statement takes besides the changes.
#[derive(Clone, Copy)]
pub(super) struct Numbered<'a> {
    pub(super) owner: &'a str,
    pub(super) number: i64,
    /// The mark of a batch of one write sent alone (see [`ONE_SQL`](super::sql::ONE_SQL)).
    pub(super) mark: Option<i64>,
    /// Whether a write's completion and next start go in one row (see
    /// [`RecordRow::next_step`]).
    pub(super) compact: bool,
}

/// The one statement of every change write of a batch: the fence of several (see
/// [`FENCE_SQL`](super::sql::FENCE_SQL)), whose events [`copy_all`] then copies in; a batch of
/// one write, [`ONE_SQL`](super::sql::ONE_SQL), which appends them too. Behind a pooler,
/// where no statement is kept for a `COPY` (see [`Conn`]), several writes are one call of the
/// schema's `record_v2` (see [`RECORD_SQL`](super::sql::RECORD_SQL)), which appends them too.
pub(super) async fn record_all(
    conn: &Conn,
    batch: Numbered<'_>,
    writes: Vec<&RecordRow>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if let [write] = writes[..] {
        return record_one(conn, batch, write).await;
    }
    let runs: Vec<&str> = writes.iter().map(|w| w.run_id.as_str()).collect();
    if conn.copy.is_some() {
        // The fence alone: the renewals and ends go behind the copy's end, once the fence has
        // said which writes passed and how much of their leases is left (`Fence::renewals`).
        let fenced: [&dyn Param; 1] = [&runs];
        return conn.fence.query(&conn.client, &fenced).await;
    }
    let tokens: Vec<i64> = writes.iter().map(|w| w.token).collect();
    let leases: Vec<i64> = writes.iter().map(|w| w.lease_ms).collect();
    let mut ends: Vec<Option<&str>> = Vec::with_capacity(writes.len());
    let mut end_errors: Vec<Option<&str>> = Vec::with_capacity(writes.len());
    let mut of_write: Vec<i64> = Vec::with_capacity(writes.len() * 2);
    let mut change_runs: Vec<&str> = Vec::with_capacity(writes.len() * 2);
    let mut changes: Vec<&ChangeRow> = Vec::with_capacity(writes.len() * 2);
    for (i, write) in writes.iter().enumerate() {
        let (mine, end) = changes_of(write);
        ends.push(end.map(|(status, _)| status));
        end_errors.push(end.and_then(|(_, error)| error));
        for change in mine {
            of_write.push(i64::try_from(i + 1).unwrap_or(i64::MAX));
            change_runs.push(write.run_id.as_str());
            changes.push(change);
        }
    }
    let c = Columns::of(&changes);
    conn.record
        .query(
            &conn.client,
            &[
                &batch.owner,
                &batch.number,
                &runs,
                &tokens,
                &leases,
                &ends,
                &end_errors,
                &of_write,
                &change_runs,
                &c.steps,
                &c.outputs,
                &c.kinds,
                &c.attempts,
                &c.details,
            ],
        )
        .await
}

/// The statement of a batch of one change write: the events alone
/// ([`ONE_SQL`](super::sql::ONE_SQL), and if it appended none,
/// [`REFUSED_SQL`](super::sql::REFUSED_SQL) for why), or with the lease's renewal or the run's
/// end ([`ONE_RENEW_SQL`](super::sql::ONE_RENEW_SQL)).
async fn record_one(
    conn: &Conn,
    batch: Numbered<'_>,
    write: &RecordRow,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let mark = batch.mark;
    let (changes, end) = changes_of(write);
    if end.is_none() && !write.renew {
        // In a compact log, the start the first row logs too is no row of its own.
        let next_step = write.next_step().filter(|_| batch.compact);
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let column = |i: usize| {
            let change = changes.get(i);
            (
                change.and_then(|c| c.step.as_deref()),
                change.and_then(|c| c.output.as_deref()),
                change.map(|c| c.kind.as_str()),
                change.and_then(|c| c.attempt.map(count)),
                change.and_then(|c| c.detail.as_deref()),
            )
        };
        let (first, mut second) = (column(0), column(1));
        if next_step.is_some() {
            second.2 = None;
        }
        let run_id = write.run_id.as_str();
        let params: [&dyn Param; 14] = [
            &mark,
            &run_id,
            &write.token,
            &first.0,
            &first.1,
            &first.2,
            &first.3,
            &first.4,
            &second.0,
            &second.1,
            &second.2,
            &second.3,
            &second.4,
            &next_step,
        ];
        let rows = conn.one.query(&conn.client, &params).await?;
        if !rows.is_empty() {
            return Ok(rows);
        }
        return conn.refused.query(&conn.client, &[&run_id]).await;
    }
    let c = Columns::of(&changes);
    let status = end.map(|(status, _)| status);
    let error = end.and_then(|(_, error)| error);
    let params: [&dyn Param; 11] = [
        &mark,
        &write.run_id.as_str(),
        &write.token,
        &c.steps,
        &c.outputs,
        &c.kinds,
        &c.attempts,
        &c.details,
        &write.lease_ms,
        &status,
        &error,
    ];
    conn.one_renew.query(&conn.client, &params).await
}

#[cfg(test)]
mod tests {
    use super::{Fence, Outcome, outcomes};
    use crate::change::ChangeRow;
    use crate::writer::RecordRow;
    use sagaflow_core::runtime::events::EventKind;

    fn write(run: &str, lease_ms: i64, renew: bool, end: Option<&'static str>) -> RecordRow {
        RecordRow {
            run_id: run.into(),
            change: ChangeRow {
                step: Some("s".to_owned()),
                output: None,
                end: end.map(|status| (status, None)),
                kind: EventKind::StepCompleted,
                attempt: Some(1),
                detail: None,
            },
            then: None,
            token: 1,
            lease_ms,
            renew,
        }
    }

    #[test]
    fn a_batch_renews_the_leases_half_spent_and_ends_the_runs_that_passed() {
        // At 10,000 ms, leases of 1,000 ms: `c` expires in 400 ms (half spent), `a` in 900.
        let writes = [
            write("c", 1_000, true, None),
            write("a", 1_000, true, None),
            write("e", 1_000, false, Some("completed")),
            write("f", 1_000, true, Some("failed")),
            write("d", 1_000, false, None),
            write("b", 1_000, true, None),
            write("b", 4_000, true, None),
            write("g", 1_000, true, None),
        ];
        let writes: Vec<&RecordRow> = writes.iter().collect();
        let fence = Fence {
            base: 0,
            at: 10_000,
            passed: vec![true, true, true, false, true, true, true, true],
            exists: vec![true; 8],
            expires: vec![
                Some(10_400),
                Some(10_900),
                Some(10_900),
                Some(10_000),
                Some(10_000),
                Some(11_000),
                Some(11_000),
                None,
            ],
        };
        let renewals = fence.renewals(&writes);
        // `a`: more than half left. `f`: fenced, its end with it. `d`: may not renew.
        // `b`: its two writes one row, with the longer lease, half of which is more than
        // what is left. `g`: no lease at all.
        assert_eq!(renewals.runs, ["b", "c", "e", "g"]);
        assert_eq!(renewals.leases, [4_000, 1_000, 1_000, 1_000]);
        assert_eq!(renewals.ends, [None, None, Some("completed"), None]);
        assert_eq!(renewals.at, 10_000);
        assert!(!renewals.is_empty());
    }

    #[test]
    fn each_write_that_passed_takes_the_next_numbers_one_per_change() {
        // A pair, a fenced pair, a lone change, a write of no run.
        let found = outcomes(
            &[2, 2, 1, 1],
            vec![10, 11, 12],
            7,
            &[true, false, true, false],
            &[true, true, true, false],
        );
        assert_eq!(
            found,
            Some(vec![
                Outcome::Applied(vec![10, 11], 7),
                Outcome::Fenced,
                Outcome::Applied(vec![12], 7),
                Outcome::NoRun,
            ])
        );
    }

    #[test]
    fn numbers_that_do_not_add_up_are_no_answer() {
        // Too few, too many, and flags for another number of writes.
        assert_eq!(outcomes(&[2], vec![10], 7, &[true], &[true]), None);
        assert_eq!(outcomes(&[1], vec![10, 11], 7, &[true], &[true]), None);
        assert_eq!(outcomes(&[1, 1], vec![10], 7, &[true], &[true]), None);
    }
}
