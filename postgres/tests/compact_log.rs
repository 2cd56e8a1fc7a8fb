//! The compact log (`PgOptions::compact_log`, schema version 10): a checkpoint that completes
//! a step and starts the next writes one row, which every reader reads as the two events it
//! stands for. The same runs on a store with it and on one without it read alike everywhere
//! (a run's events, the live feed, the steps, `inspect`), and the compact log holds fewer rows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sagaflow_core::runtime::store::Retention;
use sagaflow_core::runtime::store::inspect::Inspect;
use sagaflow_core::runtime::{
    Builder, Definition, Engine, Event, EventKind, EventLog, RunId, StepError,
};
use sagaflow_core::{RetryPolicy, StepOptions};
use sagaflow_postgres::inspect::PgInspector;

/// A chain of four steps each adding one; `s1` fails its first attempt in every run (a retry
/// and a second start, which no row shares), and `s3` waits for `gate` in the run `held`.
fn chain(failed: Arc<AtomicU32>, gate: Arc<tokio::sync::Notify>) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Compact");
    let s0 = b.step("s0", StepOptions::new(), (b.input(),), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    let retry = RetryPolicy {
        initial_interval: Duration::from_millis(1),
        maximum_attempts: 2,
        ..RetryPolicy::default()
    };
    let s1 = b.step(
        "s1",
        StepOptions::new().retry(retry),
        (s0,),
        move |ctx, (x,)| {
            let x = *x;
            let first = ctx.attempt() == 1;
            let failed = Arc::clone(&failed);
            async move {
                if first {
                    failed.fetch_add(1, Ordering::SeqCst);
                    return Err(StepError::new("the first attempt fails"));
                }
                Ok(x + 1)
            }
        },
    );
    let s2 = b.step("s2", StepOptions::new(), (s1,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    let s3 = b.step("s3", StepOptions::new(), (s2,), move |ctx, (x,)| {
        let x = *x;
        let gate = Arc::clone(&gate);
        let held = ctx.run_id().as_str() == "held";
        async move {
            if held {
                gate.notified().await;
            }
            Ok::<_, StepError>(x + 1)
        }
    });
    b.build_with_output(s3)
}

/// What a run's log says, without the numbers and times (which differ between databases).
fn shape(events: &[Event]) -> Vec<(EventKind, Option<String>, Option<u32>)> {
    events
        .iter()
        .map(|e| (e.kind, e.step.as_deref().map(str::to_owned), e.attempt))
        .collect()
}

/// A step as `inspect` reads it: name, status, attempts, error.
type StepRow = (String, String, u32, Option<String>);

/// An event as `inspect` reads it: seq, kind, step, attempt.
type InspectedEvent = (i64, String, Option<String>, Option<i64>);

/// What one database made of the same runs.
struct Seen {
    /// Each run's events, read back from the log.
    logs: Vec<Vec<Event>>,
    /// Each run's steps (name, status, attempts, error), through `inspect`.
    steps: Vec<Vec<StepRow>>,
    /// The events the engine's live feed delivered, in order.
    fed: Vec<Event>,
    /// Each run's events through `inspect`: (seq, kind, step, attempt).
    inspected: Vec<Vec<InspectedEvent>>,
    /// The rows of `events`, and those that log a next start too.
    rows: (i64, i64),
    /// How many events the log held once every run ended, and how many retention says it
    /// deleted with them.
    deleted: (usize, u64),
}

/// Runs one run alone (each checkpoint a batch of one write), 30 at once (batches of
/// several), and one held at its last step, on `db`; reads back what it wrote.
async fn run_on(db: &support::Db) -> Seen {
    let store = db.store().await;
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let (failed, gate) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(tokio::sync::Notify::new()),
    );
    let def = chain(Arc::clone(&failed), Arc::clone(&gate));
    engine.register(&def).unwrap();
    let mut feed = engine.subscribe();

    let alone = engine.start(&def, "alone", 0).await.unwrap();
    assert_eq!(*alone.wait().await.unwrap().output, 4);
    // Started together: their creations go as batches of several (`CREATE_SQL`), where the
    // one before went alone (`CREATE_ONE_SQL`).
    let ids: Vec<String> = (0..30).map(|k| format!("many-{k}")).collect();
    let many: Vec<_> = futures_util::future::join_all(
        ids.iter()
            .zip(0_u64..)
            .map(|(id, k)| engine.start(&def, id.as_str(), k)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    for (k, handle) in many.into_iter().enumerate() {
        assert_eq!(*handle.wait().await.unwrap().output, k as u64 + 4);
    }
    let held = engine.start(&def, "held", 0).await.unwrap();
    let inspector = PgInspector::connect(&db.url, &db.schema).await.unwrap();
    // Until `s3` has started (its start logged with `s2`'s completion).
    let began = std::time::Instant::now();
    while !inspector
        .steps("held")
        .await
        .unwrap()
        .iter()
        .any(|s| s.name == "s3")
    {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "s3 never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        32,
        "s1 failed once in each run"
    );

    let ids: Vec<String> = std::iter::once("alone".to_owned())
        .chain((0..30).map(|k| format!("many-{k}")))
        .chain(std::iter::once("held".to_owned()))
        .collect();
    let mut seen = Seen {
        logs: Vec::new(),
        steps: Vec::new(),
        fed: Vec::new(),
        inspected: Vec::new(),
        rows: (0, 0),
        deleted: (0, 0),
    };
    for id in &ids {
        // Read in pages of 3, so that a page ends between a row's two events.
        let (mut log, mut after) = (Vec::new(), 0);
        loop {
            let page = store
                .events(Some(&RunId::from(id.as_str())), after, 3)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            log.extend(page);
        }
        seen.logs.push(log);
        seen.steps.push(
            inspector
                .steps(id)
                .await
                .unwrap()
                .into_iter()
                .map(|s| (s.name, s.status, s.attempts, s.error))
                .collect(),
        );
        seen.inspected.push(
            inspector
                .events(std::slice::from_ref(id), 0)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.seq, e.kind, e.step, e.attempt))
                .collect(),
        );
    }
    // The feed delivers every event of the log, the held run's included, in order.
    let every: usize = seen.logs.iter().map(Vec::len).sum();
    while seen.fed.len() < every {
        let event = tokio::time::timeout(Duration::from_secs(20), feed.next())
            .await
            .expect("the feed delivers every event")
            .expect("the feed is open")
            .expect("the feed reads the log");
        seen.fed.push(event);
    }
    let client = support::client(&db.url).await;
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), count(next_step) FROM \"{}\".events",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap();
    seen.rows = (row.get(0), row.get(1));
    gate.notify_one();
    assert_eq!(*held.wait().await.unwrap().output, 4);
    let logged = store.events(None, 0, 10_000).await.unwrap().len();
    let ids: Vec<RunId> = ids.iter().map(|id| RunId::from(id.as_str())).collect();
    let deleted = store.delete_runs(&ids).await.unwrap().events;
    seen.deleted = (logged, deleted);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_log_reads_as_the_log_it_stands_for() {
    let plain = fresh_db!();
    let compact = fresh_db!(compact);
    let (plain, compact) = (run_on(&plain).await, run_on(&compact).await);

    for (p, c) in plain.logs.iter().zip(&compact.logs) {
        assert_eq!(shape(p), shape(c));
        assert!(c.windows(2).all(|w| w[0].seq < w[1].seq), "{c:?}");
    }
    assert_eq!(plain.steps, compact.steps);
    // The held run: `s3` running, its first attempt, started in the row of `s2`'s completion.
    assert_eq!(
        compact.steps.last().unwrap().last().unwrap(),
        &("s3".to_owned(), "running".to_owned(), 1, None)
    );
    // `inspect` reads the same events, numbers included, as the store.
    for (log, inspected) in compact.logs.iter().zip(&compact.inspected) {
        let expected: Vec<_> = log
            .iter()
            .map(|e| {
                (
                    e.seq.cast_signed(),
                    e.kind.as_str().to_owned(),
                    e.step.as_deref().map(str::to_owned),
                    e.attempt.map(i64::from),
                )
            })
            .collect();
        assert_eq!(inspected, &expected);
    }
    // The feed: every event of the log once, in the log's order.
    let mut logged: Vec<(u64, &str)> = compact
        .logs
        .iter()
        .flatten()
        .map(|e| (e.seq, e.kind.as_str()))
        .collect();
    logged.sort_unstable();
    let fed: Vec<(u64, &str)> = compact
        .fed
        .iter()
        .map(|e| (e.seq, e.kind.as_str()))
        .collect();
    assert_eq!(fed, logged);
    assert_eq!(shape(&plain.fed).len(), fed.len());

    // Every step's completion that another's first start followed shares its row, and so
    // does the run's creation with its first step's start: four a run (creation → s0, s0 →
    // s1, s1 → s2, s2 → s3; s1's second start follows a retry).
    assert_eq!(plain.rows.1, 0);
    assert_eq!(compact.rows.1, 4 * 32);
    // Retention counts the events it deleted, not the rows.
    assert_eq!(plain.deleted, compact.deleted);
    assert_eq!(compact.deleted.0 as u64, compact.deleted.1);
    assert_eq!(compact.rows.0, plain.rows.0 - 4 * 32);
}
