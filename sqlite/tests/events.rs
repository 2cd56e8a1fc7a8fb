//! The event log on a real SQLite file: a live subscriber sees every committed event once, in
//! `seq` order; a replay gives exactly what it saw; a subscription from a position replays and
//! then goes on live with no gap and no repeat; a subscriber that lags behind the broadcast
//! buffer catches up from the store; concurrent runs interleave, each in its own order.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::runtime::{
    Builder, Definition, Engine, Event, EventKind, EventStream, RunId, StepError,
};
use sagaflow_core::{RetryPolicy, StepOptions};
use sagaflow_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use tempfile::TempDir;

fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    (dir, path)
}

/// An engine on `path` (synchronous = NORMAL: these tests are about order, not power cuts),
/// with `buffer` events in its live feed.
fn engine(path: &std::path::Path, buffer: usize) -> Engine {
    let options = SqliteOptions::default().synchronous(Synchronous::Normal);
    let store = SqliteStore::open(path, options).unwrap();
    Engine::builder()
        .store(Arc::new(store))
        .event_buffer(buffer)
        .build()
}

/// `s1 -> s2 -> ... -> sN`, each adding one; with `flaky`, `s2`'s first attempt of every run
/// fails once (a `step_retrying` event with a detail).
fn chain(steps: usize, flaky: bool) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Chain");
    let mut last = b.input();
    for i in 1..=steps {
        let options = if flaky && i == 2 {
            StepOptions::new().retry(RetryPolicy {
                initial_interval: Duration::from_millis(1),
                backoff_coefficient: 1.0,
                maximum_interval: None,
                maximum_attempts: 3,
                jitter: 0.0,
            })
        } else {
            StepOptions::new()
        };
        let fail_once = flaky && i == 2;
        last = b.step(format!("s{i}"), options, (last,), move |ctx, (x,)| {
            let x = *x;
            let fail = fail_once && ctx.attempt() == 1;
            async move {
                if fail {
                    return Err(StepError::new("flaky once"));
                }
                Ok::<_, StepError>(x + 1)
            }
        });
    }
    b.build_with_output(last)
}

/// Runs `id` to completion.
async fn finish(engine: &Engine, def: &Definition<u32, u32>, id: &str, input: u32) -> u32 {
    *engine
        .start(def, id, input)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap()
        .output
}

/// The next event, failing the test if none comes within 10 s or the store fails.
async fn next(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
        .expect("the store answers")
}

/// Events until `runs` runs have ended (each with a run-ending event).
async fn until_ended(stream: &mut EventStream, runs: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let mut ended = 0;
    while ended < runs {
        let event = next(stream).await;
        if event.kind.ends_run() {
            ended += 1;
        }
        events.push(event);
    }
    events
}

/// Asserts that nothing more arrives for a while.
async fn quiet(stream: &mut EventStream) {
    let more = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
    assert!(more.is_err(), "no further event, got {more:?}");
}

/// The whole log, as the store replays it.
async fn replay(engine: &Engine, run: Option<&str>, after: u64) -> Vec<Event> {
    let run = run.map(RunId::from);
    engine
        .store()
        .events(run.as_ref(), after, 1_000_000)
        .await
        .unwrap()
}

fn strictly_increasing(events: &[Event]) -> bool {
    events.windows(2).all(|w| w[0].seq < w[1].seq)
}

fn kinds(events: &[Event]) -> Vec<(EventKind, Option<&str>, Option<u32>)> {
    events
        .iter()
        .map(|e| (e.kind, e.step.as_deref(), e.attempt))
        .collect()
}

#[tokio::test]
async fn a_live_subscriber_sees_every_event_of_a_run_and_a_replay_gives_the_same() {
    let (_dir, path) = temp_db();
    let engine = engine(&path, 1024);
    let def = chain(3, true);
    let mut live = engine.subscribe();

    let report = engine.start(&def, "r1", 10).await.unwrap().wait().await;
    assert_eq!(*report.unwrap().output, 13);
    let seen = until_ended(&mut live, 1).await;
    quiet(&mut live).await;

    use EventKind::*;
    assert_eq!(
        kinds(&seen),
        vec![
            (RunCreated, None, None),
            (StepStarted, Some("s1"), Some(1)),
            (StepCompleted, Some("s1"), Some(1)),
            (StepStarted, Some("s2"), Some(1)),
            (StepRetrying, Some("s2"), Some(1)),
            (StepStarted, Some("s2"), Some(2)),
            (StepCompleted, Some("s2"), Some(2)),
            (StepStarted, Some("s3"), Some(1)),
            (StepCompleted, Some("s3"), Some(1)),
            (RunCompleted, None, None),
        ]
    );
    assert!(seen.iter().all(|e| e.run_id.as_str() == "r1"));
    assert!(strictly_increasing(&seen));
    // The log of a fresh file: gapless from 1.
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    let retry = &seen[4];
    let detail: serde_json::Value = serde_json::from_str(retry.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["error"], "flaky once");
    assert_eq!(detail["permanent"], false);

    // Replaying the log gives exactly what the live subscriber saw: times and details too.
    assert_eq!(replay(&engine, None, 0).await, seen);
    assert_eq!(replay(&engine, Some("r1"), 0).await, seen);
    let mut again = engine.subscribe_from(None, 0);
    assert_eq!(until_ended(&mut again, 1).await, seen);
    quiet(&mut again).await;
}

#[tokio::test]
async fn subscribe_from_a_position_on_a_finished_run_gives_exactly_the_events_after_it() {
    let (_dir, path) = temp_db();
    let engine = engine(&path, 1024);
    let def = chain(4, false);
    finish(&engine, &def, "a", 0).await;
    finish(&engine, &def, "b", 0).await;
    let all = replay(&engine, None, 0).await;
    let of_b: Vec<Event> = all
        .iter()
        .filter(|e| e.run_id.as_str() == "b")
        .cloned()
        .collect();
    assert_eq!(of_b.len(), 10);

    for k in [0, 1, of_b[0].seq - 1, of_b[0].seq, of_b[5].seq] {
        let expected: Vec<Event> = of_b.iter().filter(|e| e.seq > k).cloned().collect();
        let mut stream = engine.subscribe_from(Some(RunId::from("b")), k);
        let got = until_ended(&mut stream, 1).await;
        assert_eq!(got, expected, "after {k}");
        quiet(&mut stream).await;

        let expected: Vec<Event> = all.iter().filter(|e| e.seq > k).cloned().collect();
        let mut stream = engine.subscribe_from(None, k);
        let runs = if k < all[9].seq { 2 } else { 1 };
        assert_eq!(
            until_ended(&mut stream, runs).await,
            expected,
            "all after {k}"
        );
        assert_eq!(stream.position(), all.last().unwrap().seq);
        quiet(&mut stream).await;
    }

    // Past the end: nothing until something new happens, and then exactly that.
    let end = all.last().unwrap().seq;
    let mut stream = engine.subscribe_from(Some(RunId::from("b")), end);
    quiet(&mut stream).await;
    let mut from_end = engine.subscribe_from(None, end);
    finish(&engine, &def, "c", 0).await;
    let c = until_ended(&mut from_end, 1).await;
    assert_eq!(c, replay(&engine, Some("c"), 0).await);
    assert_eq!(c[0].seq, end + 1);
    quiet(&mut stream).await;
}

#[tokio::test]
async fn the_seam_between_replay_and_live_has_no_gap_and_no_repeat() {
    let (_dir, path) = temp_db();
    let engine = engine(&path, 1024);
    let def = chain(5, false);
    finish(&engine, &def, "before", 0).await;
    // Subscribed now, read later: the next run's events are both in the live buffer and in
    // the replay the first read makes.
    let mut stream = engine.subscribe_from(None, 3);
    finish(&engine, &def, "during", 0).await;
    let first = until_ended(&mut stream, 2).await;
    // And one more run while the stream is live.
    finish(&engine, &def, "after", 0).await;
    let second = until_ended(&mut stream, 1).await;
    quiet(&mut stream).await;
    let seen: Vec<Event> = first.into_iter().chain(second).collect();
    assert_eq!(seen, replay(&engine, None, 3).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_catches_up_from_the_store_and_sees_every_event_once() {
    let (_dir, path) = temp_db();
    // A feed of two events: any subscriber that does not read at once falls behind.
    let engine = engine(&path, 2);
    let def = chain(10, true);
    let mut slow = engine.subscribe();
    let mut eager = engine.subscribe();

    // Five runs while `slow` reads nothing: it lags by far more than two events.
    let mut handles = Vec::new();
    for i in 0..5 {
        handles.push(engine.start(&def, format!("lag-{i}"), i).await.unwrap());
    }
    // `eager` reads as it goes, concurrently with the runs.
    let reader = tokio::spawn(async move {
        let seen = until_ended(&mut eager, 10).await;
        (seen, eager)
    });
    for handle in handles {
        handle.wait().await.unwrap();
    }
    // `slow` reads some now, which makes it catch up, then more runs come while it reads.
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(next(&mut slow).await);
    }
    let more = {
        let engine = engine.clone();
        let def = def.clone();
        tokio::spawn(async move {
            for i in 0..5 {
                let id = format!("more-{i}");
                engine
                    .start(&def, id, i)
                    .await
                    .unwrap()
                    .wait()
                    .await
                    .unwrap();
            }
        })
    };
    let ended_so_far = seen.iter().filter(|e| e.kind.ends_run()).count();
    seen.extend(until_ended(&mut slow, 10 - ended_so_far).await);
    more.await.unwrap();
    quiet(&mut slow).await;

    let log = replay(&engine, None, 0).await;
    assert_eq!(log.len(), 10 * 24, "10 runs, 24 events each");
    assert_eq!(
        seen, log,
        "the lagging subscriber saw the whole log, once, in order"
    );
    let (eager_seen, mut eager) = reader.await.unwrap();
    quiet(&mut eager).await;
    assert_eq!(eager_seen, log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_interleave_and_each_keeps_its_own_order() {
    let (_dir, path) = temp_db();
    let engine = engine(&path, 1024);
    // `first` waits for its twin in the other run, so both runs are surely in flight at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut b = Builder::<u32>::new("Twins");
    let input = b.input();
    let first = b.step("first", StepOptions::new(), (input,), move |_, (x,)| {
        let barrier = Arc::clone(&barrier);
        let x = *x;
        async move {
            barrier.wait().await;
            Ok::<_, StepError>(x + 1)
        }
    });
    let second = b.step("second", StepOptions::new(), (first,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x * 2) }
    });
    let def = b.build_with_output(second);

    let mut live = engine.subscribe();
    let (x, y) = tokio::join!(
        async { engine.start(&def, "x", 1).await.unwrap().wait().await },
        async { engine.start(&def, "y", 2).await.unwrap().wait().await },
    );
    assert_eq!(*x.unwrap().output, 4);
    assert_eq!(*y.unwrap().output, 6);
    let seen = until_ended(&mut live, 2).await;
    quiet(&mut live).await;
    assert!(strictly_increasing(&seen));
    assert_eq!(seen, replay(&engine, None, 0).await);

    use EventKind::*;
    let expected = vec![
        (RunCreated, None, None),
        (StepStarted, Some("first"), Some(1)),
        (StepCompleted, Some("first"), Some(1)),
        (StepStarted, Some("second"), Some(1)),
        (StepCompleted, Some("second"), Some(1)),
        (RunCompleted, None, None),
    ];
    for run in ["x", "y"] {
        let own: Vec<Event> = seen
            .iter()
            .filter(|e| e.run_id.as_str() == run)
            .cloned()
            .collect();
        assert_eq!(kinds(&own), expected, "run {run}");
        assert_eq!(own, replay(&engine, Some(run), 0).await);
    }
    // Both runs started `first` before either finished it: the runs interleave.
    let position = |run: &str, kind: EventKind| {
        seen.iter()
            .position(|e| e.run_id.as_str() == run && e.kind == kind)
            .unwrap()
    };
    assert!(position("x", StepStarted) < position("y", StepCompleted));
    assert!(position("y", StepStarted) < position("x", StepCompleted));
}

#[tokio::test]
async fn a_subscriber_on_a_reopened_file_starts_at_its_end() {
    let (_dir, path) = temp_db();
    let def = chain(2, false);
    {
        let engine = engine(&path, 16);
        finish(&engine, &def, "old", 0).await;
    }
    let engine = engine(&path, 16);
    let old = replay(&engine, None, 0).await;
    assert_eq!(old.len(), 6);
    let mut live = engine.subscribe();
    assert_eq!(live.position(), 6);
    finish(&engine, &def, "new", 0).await;
    let seen = until_ended(&mut live, 1).await;
    assert!(seen.iter().all(|e| e.run_id.as_str() == "new"));
    assert_eq!(seen[0].seq, 7);
    assert_eq!(seen, replay(&engine, None, 6).await);
}

#[tokio::test]
async fn an_in_memory_engine_has_no_events() {
    let engine = Engine::ephemeral();
    let def = chain(2, false);
    finish(&engine, &def, "m", 0).await;
    let mut live = engine.subscribe();
    assert!(live.next().await.is_none());
    let mut replayed = engine.subscribe_from(None, 0);
    assert!(replayed.next().await.is_none());
    assert!(engine.store().events(None, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stream_ends_when_its_engine_is_gone() {
    let (_dir, path) = temp_db();
    let engine = engine(&path, 16);
    let def = chain(1, false);
    let mut live = engine.subscribe();
    finish(&engine, &def, "z", 0).await;
    drop(engine);
    // What was published is still delivered, then the stream ends.
    let seen = until_ended(&mut live, 1).await;
    assert_eq!(seen.len(), 4);
    let end = tokio::time::timeout(Duration::from_secs(10), live.next()).await;
    assert!(end.unwrap().is_none());
}

#[tokio::test]
async fn a_stream_is_a_futures_stream() {
    use futures_util::StreamExt as _;
    let (_dir, path) = temp_db();
    let engine = engine(&path, 16);
    let def = chain(1, false);
    finish(&engine, &def, "s", 0).await;
    let stream = engine
        .subscribe_from(Some(RunId::from("s")), 0)
        .into_stream();
    let events: Vec<Event> = stream.take(4).map(Result::unwrap).collect().await;
    assert_eq!(events, replay(&engine, Some("s"), 0).await);
}

#[tokio::test]
async fn events_another_process_wrote_arrive_with_the_next_gap() {
    let (_dir, path) = temp_db();
    let engine = engine(&path, 1024);
    // Another "process": its own store and writer on the same file, whose events this
    // engine's feed never carries.
    let other = self::engine(&path, 1024);
    let def = chain(2, false);
    let mut live = engine.subscribe();
    let mut mine_only = engine.subscribe_from(Some(RunId::from("mine")), 0);
    finish(&other, &def, "theirs", 0).await;
    finish(&engine, &def, "mine", 0).await;
    // The first event of `mine` shows the gap; the replay it triggers brings `theirs`.
    let seen = until_ended(&mut live, 2).await;
    quiet(&mut live).await;
    assert_eq!(seen, replay(&engine, None, 0).await);
    assert!(seen[..6].iter().all(|e| e.run_id.as_str() == "theirs"));
    assert!(seen[6..].iter().all(|e| e.run_id.as_str() == "mine"));
    let mine = until_ended(&mut mine_only, 1).await;
    quiet(&mut mine_only).await;
    assert_eq!(mine, seen[6..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_in_a_group_commit_publish_nothing_and_the_rest_publish_once() {
    use sagaflow_core::runtime::{Change, Codec, NewRun, RunStore, Value};
    let (_dir, path) = temp_db();
    let options = SqliteOptions::default().synchronous(Synchronous::Normal);
    let store = Arc::new(SqliteStore::open(&path, options).unwrap());
    let engine = Engine::builder().store(store.clone()).build();
    let mut live = engine.subscribe();
    let id = RunId::from("direct");
    let created = store
        .create_run(&NewRun {
            run_id: &id,
            workflow: "Direct",
            graph_fingerprint: 1,
            input: &0_u32,
            input_codec: Codec {
                encode: |v| {
                    v.downcast_ref::<u32>()
                        .map(u32::to_string)
                        .ok_or_else(|| "not a u32".to_owned())
                },
                decode: |t| {
                    t.parse::<u32>()
                        .map(|v| Arc::new(v) as Value)
                        .map_err(|e| e.to_string())
                },
            },
            graph: None,
            first_step: None,
        })
        .await;
    assert!(created.is_ok());
    // Many writers at once, so that their writes share commits; every third names a run that
    // does not exist and is refused alone.
    let mut writers = Vec::new();
    for i in 0..300_u32 {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            let run = if i % 3 == 0 { "missing" } else { "direct" };
            let step = format!("s{i}");
            let change = Change::StepStarted {
                step: &step,
                attempt: 1,
            };
            store.record(&RunId::from(run), &change).await.is_ok()
        }));
    }
    let mut accepted = 0;
    for writer in writers {
        if writer.await.unwrap() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 200);
    let log = replay(&engine, None, 0).await;
    assert_eq!(log.len(), 201);
    let mut seen = Vec::new();
    for _ in 0..201 {
        seen.push(next(&mut live).await);
    }
    quiet(&mut live).await;
    assert_eq!(seen, log);
    assert!(seen.iter().all(|e| e.run_id.as_str() == "direct"));
}
