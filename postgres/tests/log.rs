//! The event log with several writers: since schema version 7 events are numbered by
//! transaction, not under a lock held through commit, so writers on several connections commit
//! side by side, and a batch can commit with numbers below another's still in flight. A reader
//! must still miss nothing: what it reads is below the horizon under which no transaction can
//! still write, and the live feed is the log read back in order. And the fence, which rested on
//! that lock, rests on row locks: a take-up waits for a batch in flight on its run. And a
//! checkpoint writes its run's row only to renew a lease half spent (or to end the run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::future::Future as _;
use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Builder, Engine, EventLog, StepError};
use sagaflow_postgres::PgStore;

/// Runs started, half on each writer.
const RUNS: u64 = 200;

/// Two stores on one schema (as two replicas), each with two writer connections, run 100
/// runs each at once, while a subscriber follows the first one's engine: it receives every
/// event of the log, all four writers', each once, in the log's order; and batches went
/// through each store's second writer too (its batch number is kept under `<owner>/w1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_every_writers_events_once_in_order() {
    let db = fresh_db!();
    let def = support::chain("Log", 5);
    let mut engines = Vec::new();
    let mut stores = Vec::new();
    for owner in ["left", "right"] {
        let store = PgStore::connect(&db.url, db.options().owner(owner).writers(2))
            .await
            .unwrap();
        let engine = Engine::builder().store(Arc::new(store.clone())).build();
        engine.register(&def).unwrap();
        stores.push(store);
        engines.push(engine);
    }
    let mut stream = engines[0].subscribe();

    let mut runs = Vec::new();
    for k in 0..RUNS {
        let engine = engines[(k % 2) as usize].clone();
        let def = def.clone();
        runs.push(tokio::spawn(async move {
            engine
                .start(&def, format!("run-{k}").as_str(), k)
                .await
                .unwrap()
                .wait()
                .await
                .unwrap()
        }));
    }
    for (k, run) in runs.into_iter().enumerate() {
        assert_eq!(*run.await.unwrap().output, k as u64 + 5);
    }

    let client = support::client(&db.url).await;
    let keys: BTreeSet<String> = client
        .query(&format!("SELECT owner FROM \"{}\".writers", db.schema), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    for key in ["left", "left/w1", "right", "right/w1"] {
        assert!(keys.contains(key), "no batch of writer `{key}`: {keys:?}");
    }

    let log = stores[0].events(None, 0, usize::MAX).await.unwrap();
    // Each run: created, 5 steps started and completed, completed.
    assert_eq!(
        log.len(),
        RUNS as usize * 12,
        "the log after every run completed"
    );
    let last = log.last().unwrap().seq;
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen.last().is_none_or(|&seq| seq < last) {
            let event = stream.next().await.unwrap().unwrap();
            seen.push(event.seq);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the subscriber stopped at {:?} of {last}", seen.last()));
    let logged: Vec<u64> = log.iter().map(|event| event.seq).collect();
    assert_eq!(seen, logged, "the subscriber's events against the log");

    // The two writers wrote side by side (the test is about that): their numbers interleave.
    let left: BTreeSet<u64> = log
        .iter()
        .filter(|e| {
            e.run_id
                .as_str()
                .trim_start_matches("run-")
                .parse::<u64>()
                .unwrap()
                % 2
                == 0
        })
        .map(|e| e.seq)
        .collect();
    let switches = log
        .windows(2)
        .filter(|w| left.contains(&w[0].seq) != left.contains(&w[1].seq))
        .count();
    assert!(
        switches >= 4,
        "the two writers' events did not interleave ({switches} switches)"
    );
}

/// Without the log lock the fence still holds: a batch reads its runs' tokens with their rows
/// locked `FOR KEY SHARE` to its commit, and a take-up locks the row `FOR UPDATE` first, so it
/// waits for a batch in flight on its run and then finds the batch's writes; no take-up
/// commits between a batch's fence and its commit. Here a transaction holds the lock as a
/// batch does, on a run whose lease has run out: another store's take-up waits until it
/// commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_up_waits_for_a_batch_in_flight_on_its_run() {
    use sagaflow_core::conformance::durable::TestDatabase as _;
    use sagaflow_core::conformance::runs::create;
    use sagaflow_core::runtime::LeaseStore as _;

    let db = fresh_db!();
    let first = db.open("first", Duration::from_millis(200), 100).await;
    create(&first, "r", "W").await.unwrap();
    // Its owner gone: the store gives its leases up as it closes.
    drop(first);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let batch = support::client(&db.url).await;
    batch
        .batch_execute(&format!(
            "SET search_path TO \"{}\"; BEGIN; \
             SELECT 1 FROM runs WHERE run_id = 'r' FOR KEY SHARE;",
            db.schema
        ))
        .await
        .unwrap();

    let second = db.open("second", Duration::from_secs(30), 100).await;
    let taking = tokio::spawn(async move { second.acquire(&"r".into()).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !taking.is_finished(),
        "the take-up went past a batch in flight on its run"
    );
    batch.batch_execute("COMMIT").await.unwrap();
    let lease = tokio::time::timeout(Duration::from_secs(5), taking)
        .await
        .expect("the take-up ends once the batch commits")
        .unwrap()
        .unwrap();
    assert!(lease.token >= 2, "{lease:?}");
}

/// A read of the log has every event committed before it, by any store: one that another
/// store committed while a transaction with a lower number was still open (as another
/// writer's batch in flight) is waited for until that transaction ends, not left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_for_another_store_s_committed_events_to_be_final() {
    use sagaflow_core::conformance::durable::TestDatabase as _;
    use sagaflow_core::conformance::runs::create;
    use sagaflow_core::runtime::events::EventKind;

    let db = fresh_db!();
    let writer = db.open("writer", Duration::from_secs(30), 100).await;
    let reader = db.open("reader", Duration::from_secs(30), 100).await;
    let open = support::hold_horizon(&db.url).await;
    create(&writer, "r", "W").await.unwrap();
    let began = std::time::Instant::now();
    // Committed well inside the second a read waits at most, even on a loaded machine.
    let closing = support::commit_after(open, Duration::from_millis(100));
    let events = reader.events(Some(&"r".into()), 0, 100).await.unwrap();
    let waited = began.elapsed();
    closing.await.unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::RunCreated], "{events:?}");
    assert!(
        waited >= Duration::from_millis(100),
        "read in {waited:?}, before the transaction below the event ended"
    );
}

/// Runs created at once share a transaction and one statement (the writer's creation is
/// set-based): 100 creations commit in far fewer commits than runs, each run gets one
/// `run_created` event, and the numbers of one transaction's creations follow the order the
/// creations were made in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_created_at_once_share_commits_and_number_their_events_in_order() {
    use sagaflow_core::conformance::runs::create;
    use sagaflow_core::runtime::store::Created;

    let db = fresh_db!();
    let store = db.store().await;
    let before = store.commits();
    let ids: Vec<String> = (0..100).map(|i| format!("c{:03}", 99 - i)).collect();
    let created =
        futures_util::future::join_all(ids.iter().map(|id| create(&store, id, "W"))).await;
    assert!(created.iter().all(|c| c.as_ref().unwrap() == &Created::New));
    let commits = store.commits() - before;
    assert!(commits <= 10, "100 creations took {commits} commits");

    let client = support::client(&db.url).await;
    let rows = client
        .query(
            &format!(
                "SELECT run_id, seq >> 20 FROM \"{}\".events WHERE kind = 'run_created' ORDER BY seq",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 100, "one event a run");
    // Within each transaction, in the order the creations were made (ids counting down),
    // not the order of their ids.
    for pair in rows.windows(2) {
        let (a, b): (String, String) = (pair[0].get(0), pair[1].get(0));
        let same: bool = pair[0].get::<_, i64>(1) == pair[1].get::<_, i64>(1);
        if same {
            assert!(a > b, "`{a}` numbered before `{b}` in one transaction");
        }
    }
}

/// A run of three steps, the middle one taking `middle` and reading, as the last step starts,
/// its run's row: the version (a renewal or the end adds one) and what is left of its lease
/// by the server's clock. With `pushed_out`, the middle step ends by setting the run's lease to
/// expire in a minute behind the store's back (as a renewal the store did not see would), so
/// that the checkpoint after it finds the lease not half spent, though the store thinks it is.
async fn lease_seen_by_the_last_step(
    store: &PgStore,
    url: &str,
    schema: &str,
    run: &str,
    (middle, pushed_out): (Duration, bool),
) -> (i64, i64) {
    let client = Arc::new(support::client(url).await);
    let query = format!(
        "SELECT version, lease_expires - (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
         FROM \"{schema}\".runs WHERE run_id = $1"
    );
    let push_out = format!(
        "UPDATE \"{schema}\".runs \
         SET lease_expires = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 60000 \
         WHERE run_id = $1"
    );
    let run_id = run.to_owned();
    let pushing = (client.clone(), run_id.clone());
    let mut b = Builder::<u64>::new("Lease");
    let first = b.step("first", StepOptions::new(), (b.input(),), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    let middle = b.step("middle", StepOptions::new(), (first,), move |_, (x,)| {
        let x = *x;
        let (client, run_id, push_out) = (pushing.0.clone(), pushing.1.clone(), push_out.clone());
        async move {
            tokio::time::sleep(middle).await;
            if pushed_out {
                client.execute(&push_out, &[&run_id]).await.unwrap();
            }
            Ok::<_, StepError>(x + 1)
        }
    });
    let last = b.step("last", StepOptions::new(), (middle,), move |_, (_,)| {
        let (client, query, run_id) = (client.clone(), query.clone(), run_id.clone());
        async move {
            let row = client.query_one(&query, &[&run_id]).await.unwrap();
            Ok::<_, StepError>((row.get::<_, i64>(0), row.get::<_, i64>(1)))
        }
    });
    let def = b.build_with_output(last);
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    engine.register(&def).unwrap();
    let report = engine
        .start(&def, run, 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    *report.output
}

/// A checkpoint renews its run's lease once half of it is spent, and leaves the run's row
/// alone before (most checkpoints: the write of their events alone). The heartbeat is paused,
/// so only the checkpoints renew: after a quick step the row is as its creation left it
/// (version 1, the lease less than its length), after a step that took 1.3 s of a 2 s lease
/// the checkpoint that followed it renewed the lease (version 2, about a whole lease left,
/// where without the renewal 0.7 s would be); and after the same step, with the lease pushed
/// out a minute behind the store's back, the checkpoint left it (version 1): the server's
/// reading of the lease decides, not the store's belief.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_renews_the_lease_once_half_spent_and_not_before() {
    let db = fresh_db!();
    let store = PgStore::connect(&db.url, db.options().lease(Duration::from_secs(2)))
        .await
        .unwrap();
    store.pause_heartbeats();
    let quick = lease_seen_by_the_last_step(
        &store,
        &db.url,
        &db.schema,
        "quick",
        (Duration::ZERO, false),
    )
    .await;
    assert_eq!(quick.0, 1, "no checkpoint of a quick run touched its row");
    assert!(quick.1 <= 2_000, "{} ms left", quick.1);
    let slow = lease_seen_by_the_last_step(
        &store,
        &db.url,
        &db.schema,
        "slow",
        (Duration::from_millis(1_300), false),
    )
    .await;
    assert_eq!(
        slow.0, 2,
        "the checkpoint after the slow step renewed the lease once"
    );
    assert!(
        slow.1 > 1_500,
        "{} ms left of a lease renewed after 1.3 s",
        slow.1
    );
    // The store thinks this lease half spent, but it was pushed out a minute behind its back:
    // the checkpoint finds it not half spent, and leaves it.
    let pushed = lease_seen_by_the_last_step(
        &store,
        &db.url,
        &db.schema,
        "pushed",
        (Duration::from_millis(1_300), true),
    )
    .await;
    assert_eq!(pushed.0, 1, "a lease not half spent was renewed");
    assert!(
        pushed.1 > 50_000,
        "{} ms left of a lease pushed out a minute",
        pushed.1
    );
}

/// The same for checkpoints that go in batches of several (the fence, and the renewals sent
/// behind the copy's end): twenty runs at once, whose checkpoints after the middle step go
/// together. After quick steps no row was touched; after slow ones, each run's checkpoint
/// renewed its lease, once; after slow ones whose leases were pushed out a minute behind the
/// store's back, none was renewed (the fence's reading of each lease decides). One writer:
/// with two, a write that comes while one commits is taken by the other at once, and these
/// runs' writes, which come a few at a time, would often go alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_in_a_batch_renew_the_leases_half_spent_and_not_before() {
    let db = fresh_db!();
    let options = db.options().lease(Duration::from_secs(2)).writers(1);
    let store = PgStore::connect(&db.url, options).await.unwrap();
    store.pause_heartbeats();
    // Twenty runs at once: what each saw.
    let runs = |name: &'static str, middle: Duration, pushed_out: bool| {
        let (store, db) = (&store, &db);
        async move {
            let (commits, writes) = (store.commits(), store.writes());
            let seen = futures_util::future::join_all((0..20).map(move |i| async move {
                let run = format!("{name}-{i}");
                let middle = (middle, pushed_out);
                lease_seen_by_the_last_step(store, &db.url, &db.schema, &run, middle).await
            }))
            .await;
            let (commits, writes) = (store.commits() - commits, store.writes() - writes);
            // (Asked of the slow runs, whose checkpoints after the middle step come together.)
            assert!(
                middle.is_zero() || commits * 2 <= writes,
                "the {name} runs' checkpoints went in batches: {writes} writes in {commits} commits"
            );
            seen
        }
    };
    let quick = runs("quick", Duration::ZERO, false).await;
    for (version, left) in &quick {
        assert_eq!(*version, 1, "no checkpoint of a quick run touched its row");
        assert!(*left <= 2_000, "{left} ms left");
    }
    let slow = runs("slow", Duration::from_millis(1_300), false).await;
    for (version, left) in &slow {
        assert_eq!(
            *version, 2,
            "the checkpoint after the slow step renewed the lease once"
        );
        assert!(
            *left > 1_500,
            "{left} ms left of a lease renewed after 1.3 s"
        );
    }
    // The store thinks these leases half spent, but each was pushed out a minute behind its
    // back: the batch finds them not half spent (the fence reads them), and leaves them.
    let pushed = runs("pushed", Duration::from_millis(1_300), true).await;
    for (version, left) in &pushed {
        assert_eq!(*version, 1, "a lease not half spent was renewed");
        assert!(
            *left > 50_000,
            "{left} ms left of a lease pushed out a minute"
        );
    }
}

/// The writer never scans `runs` whole, though its plans are made once, on a new database's
/// empty tables, and kept: on a new database, 100 concurrent runs went from 42,000 steps a
/// second to 19,000 within 10 s as such a plan read the growing table at every batch
/// (benches/README.md, session 16). Counted by the server (`pg_stat_user_tables`) once every
/// connection of the store has gone, which flushes their counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_does_not_scan_the_runs_table_whole() {
    let db = fresh_db!();
    let def = support::chain("Log", 5);
    {
        let store = PgStore::connect(&db.url, db.options()).await.unwrap();
        let engine = Engine::builder().store(Arc::new(store)).build();
        for wave in 0..4 {
            let handles = futures_util::future::join_all(
                (0..100).map(|r| engine.start(&def, format!("w{wave}-{r}"), 0)),
            )
            .await;
            for handle in handles {
                assert_eq!(*handle.unwrap().wait().await.unwrap().output, 5);
            }
        }
    }
    let scans = db.runs_scans().await;
    let (seq, idx) = (scans.sequential, scans.by_index);
    eprintln!("runs: {seq} sequential scans, {idx} index scans");
    assert!(
        seq <= 15,
        "{seq} sequential scans of `runs` for 400 runs of 5 steps ({idx} by index)"
    );
}

/// Changes written at once share a batch (their fence in one statement, their events copied
/// in after it, see the writer's `FENCE_SQL`): the writes that pass are appended, each batch's
/// numbered in the order the writes were made, and the others are answered as they must be,
/// without an event: a write of a run another store took over is fenced, one of no run is an
/// error naming it. 60 writes, among them the fenced one and the one of no run, in the middle;
/// every other one a pair (a step's completion and the next step's start, numbered one after
/// the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_one_batch_are_appended_in_order_but_the_fenced_and_the_unknown() {
    use sagaflow_core::conformance::durable::TestDatabase as _;
    use sagaflow_core::conformance::runs::{create, start};
    use sagaflow_core::runtime::error::StoreError;
    use sagaflow_core::runtime::store::Change;
    use sagaflow_core::runtime::{Codec, LeaseStore as _, RunId, RunStore as _};

    let db = fresh_db!();
    let first = db.open("first", Duration::from_millis(200), 100).await;
    create(&first, "taken", "W").await.unwrap();
    // Its lease runs out unrenewed, and another store takes the run up.
    first.pause_heartbeats();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = db.open("second", Duration::from_secs(30), 100).await;
    let lease = second.acquire(&"taken".into()).await.unwrap();
    assert!(lease.token >= 2, "{lease:?}");
    first.resume_heartbeats();

    let ids: Vec<String> = (0..58).map(|i| format!("p{:02}", 57 - i)).collect();
    for id in &ids {
        create(&first, id, "W").await.unwrap();
    }
    let mut order: Vec<&str> = ids.iter().map(String::as_str).collect();
    order.insert(20, "taken");
    order.insert(40, "ghost");
    let before = first.commits();
    let output = String::from("out");
    let paired = |id: &str| id.starts_with('p') && id[1..].parse::<u32>().unwrap() % 2 == 0;
    let answers = futures_util::future::join_all(order.iter().map(|id| {
        let (first, output) = (&first, &output);
        async move {
            if !paired(id) {
                return start(first, id, "a").await;
            }
            let done = Change::StepCompleted {
                step: "a",
                attempt: 1,
                output,
                codec: Codec::of::<String>(),
            };
            let next = Change::StepStarted {
                step: "b",
                attempt: 1,
            };
            first.record_pair(&RunId::from(*id), &done, &next).await
        }
    }))
    .await;
    let commits = first.commits() - before;
    assert!(
        commits <= 6,
        "60 writes made at once took {commits} commits"
    );
    for (id, answer) in order.iter().zip(&answers) {
        match (*id, answer) {
            ("taken", Err(StoreError::Fenced { run_id, .. })) => {
                assert_eq!(run_id.as_str(), "taken");
            }
            ("ghost", Err(error)) => {
                assert!(error.to_string().contains("no run `ghost`"), "{error}");
            }
            ("taken" | "ghost", answer) => panic!("the write of `{id}` was answered {answer:?}"),
            (_, answer) => assert!(answer.is_ok(), "`{id}`: {answer:?}"),
        }
    }

    let client = support::client(&db.url).await;
    // Each pair's two events, one after the other, as the engine reads them back.
    let changes = client
        .query(
            &format!(
                "SELECT run_id, seq, kind, step, output FROM \"{}\".events \
                 WHERE kind <> 'run_created' ORDER BY run_id, seq",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap();
    for id in ids.iter().filter(|id| paired(id)) {
        let mine: Vec<(i64, String, String, Option<String>)> = changes
            .iter()
            .filter(|row| row.get::<_, String>(0) == *id)
            .map(|row| (row.get(1), row.get(2), row.get(3), row.get(4)))
            .collect();
        assert_eq!(mine.len(), 2, "`{id}`: {mine:?}");
        assert_eq!(mine[1].0, mine[0].0 + 1, "`{id}`: {mine:?}");
        assert_eq!(
            (&*mine[0].1, &*mine[0].2, mine[0].3.as_deref()),
            ("step_completed", "a", Some("\"out\"")),
            "`{id}`"
        );
        assert_eq!((&*mine[1].1, &*mine[1].2), ("step_started", "b"), "`{id}`");
    }
    // A run's first change: its start, or a pair's completion.
    let rows = client
        .query(
            &format!(
                "SELECT run_id, seq >> 20 FROM \"{}\".events \
                 WHERE step = 'a' AND kind IN ('step_started', 'step_completed') ORDER BY seq",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap();
    let started: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    let mut expected = ids.clone();
    expected.sort();
    let mut sorted = started.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "one start for each run that passed, none other"
    );
    // Within each transaction, in the order the writes were made (ids counting down).
    for pair in rows.windows(2) {
        let (a, b): (String, String) = (pair[0].get(0), pair[1].get(0));
        if pair[0].get::<_, i64>(1) == pair[1].get::<_, i64>(1) {
            assert!(a > b, "`{a}` numbered before `{b}` in one transaction");
        }
    }
    let transactions: BTreeSet<i64> = rows.iter().map(|row| row.get(1)).collect();
    assert!(
        transactions.len() < rows.len() / 4,
        "{} starts in {} transactions",
        rows.len(),
        transactions.len()
    );
}

/// A checkpoint of a run whose lease this store took moments ago (so that it renews nothing,
/// the common case) says why it was refused when the row changed behind its back: fenced if
/// another took the run (its token bumped here by hand, as a hand-over does), no such run if
/// the row is gone; and it appends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_refused_under_a_fresh_lease_says_why() {
    use sagaflow_core::conformance::runs::{create, start};
    use sagaflow_core::runtime::error::StoreError;

    let db = fresh_db!();
    let store = db.store().await;
    create(&store, "taken", "W").await.unwrap();
    create(&store, "gone", "W").await.unwrap();
    start(&store, "taken", "a").await.unwrap();
    let client = support::client(&db.url).await;
    client
        .batch_execute(&format!(
            "SET search_path TO \"{}\";
             UPDATE runs SET lease_token = lease_token + 1 WHERE run_id = 'taken';
             DELETE FROM runs WHERE run_id = 'gone';",
            db.schema
        ))
        .await
        .unwrap();
    match start(&store, "taken", "b").await {
        Err(StoreError::Fenced { run_id, .. }) => assert_eq!(run_id.as_str(), "taken"),
        other => panic!("a write of a run taken over was answered {other:?}"),
    }
    match start(&store, "gone", "a").await {
        Err(error) => assert!(error.to_string().contains("no run `gone`"), "{error}"),
        Ok(()) => panic!("a write of a deleted run was recorded"),
    }
    let rows = client
        .query(
            &format!(
                "SELECT run_id, step FROM \"{}\".events WHERE kind = 'step_started' ORDER BY seq",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap();
    let started: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(started, [("taken".to_owned(), "a".to_owned())]);
}

/// A write the server refuses (a step name with a NUL byte, which no `text` value holds)
/// fails alone: its batch's `COPY` fails, the batch is rolled back, and each of its writes
/// goes again on its own, so that every other write of the batch is appended once and its
/// caller answered, and the refused one's caller is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_server_refuses_fails_alone_and_the_rest_of_its_batch_is_appended_once() {
    use sagaflow_core::conformance::durable::TestDatabase as _;
    use sagaflow_core::conformance::runs::{create, start};

    let db = fresh_db!();
    let store = db.open("first", Duration::from_secs(30), 100).await;
    let ids: Vec<String> = (0..40).map(|i| format!("r{i:02}")).collect();
    for id in &ids {
        create(&store, id, "W").await.unwrap();
    }
    // Forty writes made at once go in a batch or two (and the first, after creations made one
    // at a time, may be committed alone by its caller: `tests/on_caller.rs`).
    let before = store.commits();
    let answers = futures_util::future::join_all(ids.iter().map(|id| start(&store, id, "a"))).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let commits = store.commits() - before;
    assert!(
        commits <= 4,
        "40 writes made at once took {commits} commits"
    );

    // Forty more, one of them refused by the server.
    let before = store.commits();
    let answers = futures_util::future::join_all(ids.iter().map(|id| {
        let step = if id == "r13" { "b\0c" } else { "b" };
        start(&store, id, step)
    }))
    .await;
    for (id, answer) in ids.iter().zip(&answers) {
        match (id.as_str(), answer) {
            ("r13", Err(error)) => {
                let message = error.to_string();
                assert!(message.contains("0x00"), "{message}");
                assert!(message.contains(&db.url), "{message}");
            }
            ("r13", Ok(())) => panic!("a step name with a NUL byte was appended"),
            (_, answer) => assert!(answer.is_ok(), "`{id}`: {answer:?}"),
        }
    }
    // The refused write's batch rolled back, and its writes went again alone: many more
    // commits than a batch or two, at most one for each of the 39 appended.
    let commits = store.commits() - before;
    assert!(
        (10..=39).contains(&commits),
        "39 writes appended in {commits} commits"
    );

    let client = support::client(&db.url).await;
    let started: Vec<(String, String, i64)> = client
        .query(
            &format!(
                "SELECT run_id, step, count(*) FROM \"{}\".events WHERE kind = 'step_started' \
                 GROUP BY run_id, step ORDER BY run_id, step",
                db.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let expected: Vec<(String, String, i64)> = ids
        .iter()
        .flat_map(|id| {
            let b = (id != "r13").then(|| (id.clone(), "b".to_owned(), 1));
            [Some((id.clone(), "a".to_owned(), 1)), b]
        })
        .flatten()
        .collect();
    assert_eq!(started, expected, "every start but the refused one, once");
}

/// A large batch is shared out to the writers that are free, and the shares commit side by
/// side. Both writers wait (one holds the queue, the other waits for it) while 64 writes are
/// queued at once (a runtime of one thread: no writer runs while the burst is polled); the
/// writer that holds the queue gathers them into one batch and, with the other writer free,
/// cuts it in two shares of 32: two commits, on two transactions, each writer's batch number
/// written, every write appended once. With one writer, the same 64 writes are one commit.
/// Every write goes to the writers (`commit_on_caller(false)`): else the burst's first, after
/// creations made one at a time, would be committed alone by its caller
/// (`tests/on_caller.rs`).
#[tokio::test(flavor = "current_thread")]
async fn a_large_batch_is_shared_out_to_the_free_writers() {
    use sagaflow_core::conformance::runs::{create, start};

    let db = fresh_db!();
    let client = support::client(&db.url).await;
    let schema = &db.schema;
    for (writers, commits) in [(2, 2), (1, 1)] {
        let owner = format!("owner-{writers}");
        let options = db
            .options()
            .owner(&owner)
            .writers(writers)
            .commit_on_caller(false);
        let store = PgStore::connect(&db.url, options).await.unwrap();
        let ids: Vec<String> = (0..64).map(|i| format!("w{writers}-{i:02}")).collect();
        for id in &ids {
            create(&store, id, "W").await.unwrap();
        }
        let before = store.commits();
        // Polled once, every write of the burst is queued (a write is sent when first polled).
        let mut burst = Box::pin(futures_util::future::join_all(
            ids.iter().map(|id| start(&store, id, "burst")),
        ));
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(burst.as_mut().poll(cx))).await;
        assert!(polled.is_pending());
        let answers = burst.await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(
            store.commits() - before,
            commits,
            "64 writes gathered at once with {writers} writers"
        );

        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), count(DISTINCT seq >> 20) FROM \"{schema}\".events \
                     WHERE step = 'burst' AND run_id LIKE $1"
                ),
                &[&format!("w{writers}-%")],
            )
            .await
            .unwrap();
        let (events, transactions): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(events, 64, "every write appended once");
        assert_eq!(transactions, commits as i64, "one transaction a share");
        let mut numbered: Vec<String> = client
            .query(
                &format!("SELECT owner FROM \"{schema}\".writers WHERE owner LIKE $1"),
                &[&format!("{owner}%")],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        numbered.sort();
        let expected: Vec<String> = if writers == 2 {
            vec![owner.clone(), format!("{owner}/w1")]
        } else {
            vec![owner.clone()]
        };
        assert_eq!(numbered, expected, "the writers that committed a batch");
    }
}

/// No writer goes first: while one writer's batch waits in the server (its run's row locked
/// by another session), the other writer takes the queue and commits the writes that come
/// meanwhile. (Were the queue one writer's, the second write would wait for the first
/// writer's, which waits for the lock, held here until the second write is answered.) The
/// blocked write is committed by its caller on the first writer's connection
/// (`commit_on_caller`); the writer that gathers the other write, whichever it is, commits it
/// on the connection that is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_held_up_in_the_server_holds_up_no_other_write() {
    use sagaflow_core::conformance::runs::{create, start};

    let db = fresh_db!();
    // The blocked write waits for the lock longer than the other write is given.
    let options = db
        .options()
        .writers(2)
        .lock_timeout(Duration::from_secs(60));
    let store = PgStore::connect(&db.url, options).await.unwrap();
    for id in ["blocker", "other"] {
        create(&store, id, "W").await.unwrap();
    }
    let (holder, pid) = support::hold_run(&db.url, &db.schema, "blocker").await;
    let held = tokio::spawn({
        let store = store.clone();
        async move { start(&store, "blocker", "held").await }
    });
    support::until_blocked_by(&db.url, pid).await;
    let other = tokio::time::timeout(Duration::from_secs(30), start(&store, "other", "free"))
        .await
        .expect("the other run's write was held up behind the blocked one");
    other.unwrap();
    assert!(!held.is_finished(), "the blocked write waited for the lock");
    holder.batch_execute("COMMIT").await.unwrap();
    held.await.unwrap().unwrap();
}
