//! What the tests of a compact log share (a store's option that writes a step's completion and
//! the next step's start as one row of its log): a workflow whose runs take every path such a
//! row may stand on, and a run's log without what differs between databases. Each store's
//! `tests/compact_log.rs` runs the same runs on a compact log and on a plain one and holds
//! everything a reader gives to be alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::runtime::definition::{Builder, Definition};
use crate::runtime::engine::Engine;
use crate::runtime::error::StepError;
use crate::runtime::events::{Event, EventKind};
use crate::runtime::id::RunId;
use crate::runtime::store::Store;
use crate::runtime::store::inspect::Inspect;
use crate::{RetryPolicy, StepOptions};

/// A chain of four steps each adding one: `s0 → s1 → s2 → s3`. `s1` fails its first attempt in
/// every run (a retry, and a second start that no row shares), counted in `failed`; `s3` waits
/// for `gate` in the run whose id is `held`, so that a run can be read with its last start in
/// the row of `s2`'s completion.
pub fn chain(failed: Arc<AtomicU32>, gate: Arc<tokio::sync::Notify>) -> Definition<u64, u64> {
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
pub fn shape(events: &[Event]) -> Vec<(EventKind, Option<String>, Option<u32>)> {
    events
        .iter()
        .map(|e| (e.kind, e.step.as_deref().map(str::to_owned), e.attempt))
        .collect()
}

/// A step as `inspect` reads it: name, status, attempts, error.
pub type StepRow = (String, String, u32, Option<String>);

/// An event as `inspect` reads it: seq, kind, step, attempt.
pub type InspectedEvent = (i64, String, Option<String>, Option<i64>);

/// The runs [`run_on`] makes: one alone, 30 at once, and `held`, in that order.
pub fn run_ids() -> Vec<String> {
    std::iter::once("alone".to_owned())
        .chain((0..30).map(|k| format!("many-{k:02}")))
        .chain(std::iter::once("held".to_owned()))
        .collect()
}

/// What one database made of the same runs.
#[derive(Debug)]
pub struct Seen {
    /// Each run's events ([`run_ids`]' order), read back from the log in pages of 3.
    pub logs: Vec<Vec<Event>>,
    /// Each run's steps through `inspect`, `held` while its last step waited.
    pub steps: Vec<Vec<StepRow>>,
    /// The same as the store folds them for a run it takes up (`load_run`).
    pub loaded: Vec<Vec<StepRow>>,
    /// The events the engine's live feed delivered, in order.
    pub fed: Vec<Event>,
    /// Each run's events through `inspect`.
    pub inspected: Vec<Vec<InspectedEvent>>,
    /// The rows of the log, and those that log a next start too (the store's own count).
    pub rows: (i64, i64),
    /// How many events the log held once every run ended, and how many retention says it
    /// deleted with them.
    pub deleted: (usize, u64),
}

/// Runs [`chain`] on `store` (read through `inspector`) as one run alone (its checkpoints
/// each a write of its own), 30 at once (writes that share commits), and `held`, read while
/// its last step waits; `rows` counts the store's rows of the log then. Reads back what it
/// wrote, then deletes every run.
pub async fn run_on<S, R>(store: S, inspector: &dyn Inspect, rows: R) -> Seen
where
    S: Store + Clone,
    R: AsyncFnOnce() -> (i64, i64),
{
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
    let ids = run_ids();
    let many = &ids[1..ids.len() - 1];
    let mut handles = Vec::new();
    for (k, id) in (0_u64..).zip(many) {
        handles.push(engine.start(&def, id.as_str(), k));
    }
    let mut started = Vec::new();
    for handle in handles {
        started.push(handle.await.unwrap());
    }
    for (k, handle) in (0_u64..).zip(started) {
        assert_eq!(*handle.wait().await.unwrap().output, k + 4);
    }
    let held = engine.start(&def, "held", 0).await.unwrap();
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
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(failed.load(Ordering::SeqCst), 32, "s1 failed once a run");

    let mut seen = Seen {
        logs: Vec::new(),
        steps: Vec::new(),
        loaded: Vec::new(),
        fed: Vec::new(),
        inspected: Vec::new(),
        rows: (0, 0),
        deleted: (0, 0),
    };
    for id in &ids {
        // Pages of 3, so that a page ends between a row's two events.
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
        let run = store.load_run(&RunId::from(id.as_str())).await.unwrap();
        seen.loaded.push(
            run.into_iter()
                .flat_map(|run| run.steps)
                .map(|s| {
                    let status = format!("{:?}", s.status).to_lowercase();
                    (s.name, status, s.attempts, s.error)
                })
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
    seen.rows = rows().await;
    gate.notify_one();
    assert_eq!(*held.wait().await.unwrap().output, 4);
    // The whole log in pages of 2, then every run deleted.
    let (mut logged, mut after) = (0, 0);
    loop {
        let page = store.events(None, after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(
            page.windows(2).all(|w| w[0].seq < w[1].seq) && page[0].seq > after,
            "{page:?} after {after}"
        );
        after = last.seq;
        logged += page.len();
    }
    let ids: Vec<RunId> = ids.iter().map(|id| RunId::from(id.as_str())).collect();
    let deleted = store.delete_runs(&ids).await.unwrap().events;
    seen.deleted = (logged, deleted);
    seen
}

/// Holds what a compact log gave to be what the plain log gave: every reader alike, fewer rows.
pub fn compare(plain: &Seen, compact: &Seen) {
    for (p, c) in plain.logs.iter().zip(&compact.logs) {
        assert_eq!(shape(p), shape(c));
        assert!(c.windows(2).all(|w| w[0].seq < w[1].seq), "{c:?}");
    }
    assert_eq!(plain.steps, compact.steps);
    assert_eq!(plain.loaded, compact.loaded);
    // The store's fold and `inspect`'s reading agree.
    assert_eq!(compact.loaded, compact.steps);
    // The held run: `s3` running, its first attempt, started in the row of `s2`'s completion.
    assert_eq!(
        compact.steps.last().and_then(|steps| steps.last()),
        Some(&("s3".to_owned(), "running".to_owned(), 1, None))
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
    // Retention counts the events it deleted, not the rows.
    assert_eq!(plain.deleted, compact.deleted);
    assert_eq!(compact.deleted.0 as u64, compact.deleted.1);
    // Every step's completion that another's first start followed shares its row, and so
    // does the run's creation with its first step's start: four a run (creation → s0, s0 →
    // s1, s1 → s2, s2 → s3; s1's second start follows a retry).
    let runs = run_ids().len() as i64;
    assert_eq!(plain.rows.1, 0);
    assert_eq!(compact.rows.1, 4 * runs);
    assert_eq!(compact.rows.0, plain.rows.0 - 4 * runs);
}
