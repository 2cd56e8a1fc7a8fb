//! Several stores (processes) on one SQLite file: a run is taken up by one owner at a time
//! under a lease with a fencing token; an expired lease is taken over; a stale owner's write is
//! refused; a run that keeps crashing its process is parked, and the others still recover.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use common::REWIND_V3;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Change, Definition, Engine, EngineError, RunError, RunStore, StepError, StoreError,
    StoredRunStatus,
};
use sagaflow_sqlite::SqliteEngine;
use sagaflow_sqlite::{SqliteOptions, SqliteStore};

/// What the steps of [`chain`] do, shared by every engine of a test.
#[derive(Default)]
struct Script {
    /// Each execution of a step, by name, in order.
    runs: Mutex<Vec<String>>,
    /// While set, `b` hangs for good (the crash comes while it runs).
    hang: AtomicBool,
    /// The first `b` executions, up to this many, wait for `gate` before they finish.
    gated: AtomicU32,
    gate: AtomicBool,
}

impl Script {
    fn hit(&self, step: &str) -> u32 {
        let mut runs = self.runs.lock().unwrap();
        runs.push(step.to_owned());
        u32::try_from(runs.iter().filter(|s| *s == step).count()).unwrap()
    }
    fn count(&self, step: &str) -> usize {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|s| *s == step)
            .count()
    }
}

/// `a -> b -> c`, each step's output its input with `"<step>#<execution>"` pushed. `b` hangs
/// while the script says so, or for the input `"poison"`.
fn chain(script: &Arc<Script>) -> Definition<String, Vec<String>> {
    let mut builder = Builder::<String>::new("Chain");
    let input = builder.input();
    let s = Arc::clone(script);
    let a = builder.step("a", StepOptions::new(), (input,), move |_, (seed,)| {
        let n = s.hit("a");
        let out = vec![(*seed).clone(), format!("a#{n}")];
        async move { Ok::<_, StepError>(out) }
    });
    let s = Arc::clone(script);
    let b = builder.step("b", StepOptions::new(), (a,), move |_, (path,)| {
        let n = s.hit("b");
        let hang = s.hang.load(Ordering::SeqCst) || path.first().is_some_and(|p| p == "poison");
        let gated = n <= s.gated.load(Ordering::SeqCst);
        let mut out = (*path).clone();
        out.push(format!("b#{n}"));
        let s = Arc::clone(&s);
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            while gated && !s.gate.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<_, StepError>(out)
        }
    });
    let s = Arc::clone(script);
    let c = builder.step("c", StepOptions::new(), (b,), move |_, (path,)| {
        let n = s.hit("c");
        let mut out = (*path).clone();
        out.push(format!("c#{n}"));
        async move { Ok::<_, StepError>(out) }
    });
    builder.build_with_output(c)
}

fn engine_on(store: &SqliteStore) -> Engine {
    Engine::builder().store(Arc::new(store.clone())).build()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let began = Instant::now();
    while !done() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{what} never happened"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Starts each of `ids` on a runtime of its own, waits until every one is inside `b`, then
/// drops the runtime with the engine, as a crash would (the store gives its leases up).
fn crash_in_b(path: &Path, def: &Definition<String, Vec<String>>, script: &Script, ids: &[&str]) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = Engine::open(path).unwrap();
        let before = script.count("b");
        for id in ids {
            engine.start(def, *id, (*id).to_owned()).await.unwrap();
        }
        wait_for("b started", || script.count("b") == before + ids.len()).await;
    });
    drop(runtime);
}

/// `(status, error, recoveries, parked)` of a run, read with a connection of the test's own.
fn run_row(path: &Path, run: &str) -> (String, Option<String>, i64, i64) {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT status, error, recoveries, parked FROM runs WHERE run_id = ?1",
            [run],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

#[test]
fn two_engines_resuming_one_run_at_once_execute_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let script = Arc::new(Script::default());
    script.hang.store(true, Ordering::SeqCst);
    crash_in_b(&path, &chain(&script), &script, &["run-1"]);
    script.hang.store(false, Ordering::SeqCst);
    // The next `b` waits for the gate, so the winner still runs when the loser tries.
    script.gated.store(2, Ordering::SeqCst);

    let start = Barrier::new(2);
    let tried = AtomicU32::new(0);
    let outcomes: Vec<Result<Vec<String>, EngineError>> = std::thread::scope(|scope| {
        let threads: Vec<_> = ["owner-a", "owner-b"]
            .into_iter()
            .map(|owner| {
                let (path, script, start, tried) = (&path, &script, &start, &tried);
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        let options = SqliteOptions::default().owner(owner);
                        let engine = Engine::open_with(path, options).unwrap();
                        let def = chain(script);
                        start.wait();
                        let resumed = engine.resume(&def, "run-1").await;
                        tried.fetch_add(1, Ordering::SeqCst);
                        let handle = resumed?;
                        wait_for("both engines tried", || tried.load(Ordering::SeqCst) == 2).await;
                        script.gate.store(true, Ordering::SeqCst);
                        Ok(handle.wait().await.unwrap().output.to_vec())
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });

    let (won, lost): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(Result::is_ok);
    assert_eq!(
        (won.len(), lost.len()),
        (1, 1),
        "exactly one engine takes the run"
    );
    let output = won.into_iter().next().unwrap().unwrap();
    assert_eq!(output, ["run-1", "a#1", "b#2", "c#1"]);
    match lost.into_iter().next().unwrap() {
        Err(EngineError::Leased { run_id, owner, .. }) => {
            assert_eq!(run_id.as_str(), "run-1");
            assert!(owner.starts_with("owner-"), "{owner}");
        }
        other => panic!("expected Leased, got {other:?}"),
    }
    assert_eq!(script.count("a"), 1, "a completed before the crash");
    assert_eq!(script.count("b"), 2, "b: the cut attempt, then one more");
    assert_eq!(script.count("c"), 1, "c ran once, in one engine");
    let (status, ..) = run_row(&path, "run-1");
    assert_eq!(status, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_loses_its_lease_and_its_next_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let script = Arc::new(Script::default());
    // A's `b` (the first) waits for the gate; B's runs through.
    script.gated.store(1, Ordering::SeqCst);
    let def = chain(&script);

    let lease = Duration::from_millis(400);
    let options = SqliteOptions::default().owner("A").lease(lease);
    let store_a = SqliteStore::open(&path, options).unwrap();
    let engine_a = engine_on(&store_a);
    let handle_a = engine_a
        .start(&def, "run-1", "seed".to_owned())
        .await
        .unwrap();
    wait_for("A's b started", || script.count("b") == 1).await;
    // A stalls: its step hangs and it renews nothing, as in a long pause.
    store_a.pause_heartbeats();

    let store_b = SqliteStore::open(&path, SqliteOptions::default().owner("B")).unwrap();
    let engine_b = engine_on(&store_b);
    let early = engine_b.resume(&def, "run-1").await;
    assert!(
        matches!(&early, Err(EngineError::Leased { owner, .. }) if owner == "A"),
        "A's lease is live: {early:?}"
    );
    // Once A's lease has expired, B takes the run over and finishes it.
    let began = Instant::now();
    let handle_b = loop {
        match engine_b.resume(&def, "run-1").await {
            Ok(handle) => break handle,
            Err(EngineError::Leased { .. }) => {
                assert!(
                    began.elapsed() < Duration::from_secs(10),
                    "A's lease never expired"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("B could not take the run over: {other}"),
        }
    };
    let report = handle_b.wait().await.unwrap();
    assert_eq!(*report.output, ["seed", "a#1", "b#2", "c#1"]);

    // A wakes up: its `b` ends, and its write of that is refused.
    script.gate.store(true, Ordering::SeqCst);
    let error = handle_a.wait().await.unwrap_err();
    match &error {
        RunError::Store {
            run_id,
            source:
                StoreError::Fenced {
                    run_id: fenced,
                    token,
                },
        } => {
            assert_eq!(
                (run_id.as_str(), fenced.as_str(), *token),
                ("run-1", "run-1", 1)
            );
        }
        other => panic!("expected a fenced write, got {other:?}"),
    }
    assert!(error.to_string().contains("run-1"), "{error}");
    assert_eq!(script.count("c"), 1, "A never got past b");

    // The database shows B's outcome only.
    let stored = store_b.load_run(&"run-1".into()).await.unwrap().unwrap();
    assert_eq!(stored.status, StoredRunStatus::Completed);
    let b = stored.steps.iter().find(|s| s.name == "b").unwrap();
    assert_eq!(b.output.as_deref(), Some(r#"["seed","a#1","b#2"]"#));
    let conn = Connection::open(&path).unwrap();
    let (owner, token): (String, i64) = conn
        .query_row(
            "SELECT owner, lease_token FROM runs WHERE run_id = 'run-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((owner.as_str(), token), ("B", 2));
    let completions: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE run_id = 'run-1' AND kind = 'step_completed' \
             AND step = 'b'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(completions, 1, "A's refused write left no event");
}

#[test]
fn a_run_that_keeps_crashing_is_parked_and_the_others_still_recover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let script = Arc::new(Script::default());
    let def = chain(&script);
    let options = || SqliteOptions::default().max_recoveries(2);

    // `poison` hangs in `b` every time: each recovery crashes again.
    crash_in_b(&path, &def, &script, &["poison"]);
    for round in 1..=2 {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let engine = Engine::open_with(&path, options()).unwrap();
            let recovered = engine.recover(&def).await.unwrap();
            assert_eq!(recovered.runs.len(), 1, "round {round}");
            assert!(recovered.failed.is_empty(), "round {round}");
            wait_for("b started again", || script.count("b") == 1 + round).await;
        });
        drop(runtime);
    }
    // Another run crashes once, beside it.
    script.hang.store(true, Ordering::SeqCst);
    crash_in_b(&path, &def, &script, &["fine"]);
    script.hang.store(false, Ordering::SeqCst);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = Engine::open_with(&path, options()).unwrap();
        let recovered = engine.recover(&def).await.unwrap();
        match &recovered.failed[..] {
            [(run_id, EngineError::Parked { recoveries, .. })] => {
                assert_eq!((run_id.as_str(), *recoveries), ("poison", 3));
            }
            other => panic!("expected poison parked, got {other:?}"),
        }
        assert_eq!(recovered.runs.len(), 1, "the other run still recovers");
        let fine = recovered.runs.into_iter().next().unwrap();
        assert_eq!(fine.run_id().as_str(), "fine");
        assert_eq!(
            *fine.wait().await.unwrap().output,
            ["fine", "a#2", "b#5", "c#1"]
        );

        // Parked: visible, with its error, and not retried.
        let stored = engine
            .store()
            .load_run(&"poison".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, StoredRunStatus::Parked);
        let error = stored.error.unwrap();
        assert!(error.contains("parked after 3 recoveries"), "{error}");
        assert!(engine.store().unfinished_runs().await.unwrap().is_empty());
        let again = engine.recover(&def).await.unwrap();
        assert!(again.runs.is_empty() && again.failed.is_empty());
        let resumed = engine.resume(&def, "poison").await;
        assert!(
            matches!(resumed, Err(EngineError::Parked { recoveries: 3, .. })),
            "{resumed:?}"
        );
    });
    drop(runtime);
    assert_eq!(
        script.count("b"),
        5,
        "poison's b three times (its start, two recoveries), fine's twice"
    );
    let (status, error, recoveries, parked) = run_row(&path, "poison");
    assert_eq!((status.as_str(), recoveries, parked), ("running", 3, 1));
    assert!(error.is_some_and(|e| e.contains("no longer retried")));
    let kinds: Vec<String> = Connection::open(&path)
        .unwrap()
        .prepare("SELECT kind FROM events WHERE run_id = 'poison' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        kinds.iter().filter(|k| *k == "run_parked").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("run_parked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_database_is_migrated_and_its_runs_can_be_leased() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let script = Arc::new(Script::default());
    script.hang.store(true, Ordering::SeqCst);
    let def = chain(&script);
    let crash_path = path.clone();
    let crash_script = Arc::clone(&script);
    // The crash needs a runtime of its own, off this one.
    std::thread::spawn(move || {
        crash_in_b(&crash_path, &chain(&crash_script), &crash_script, &["old"])
    })
    .join()
    .unwrap();
    script.hang.store(false, Ordering::SeqCst);
    // Make the file what version 2 left: no lease columns, user_version 2.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!("{REWIND_V3} PRAGMA user_version = 2;"))
        .unwrap();

    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, sagaflow_sqlite::SCHEMA_VERSION);
    let row: (Option<String>, i64, Option<i64>, i64, i64) = conn
        .query_row(
            "SELECT owner, lease_token, lease_expires, recoveries, parked FROM runs \
             WHERE run_id = 'old'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(row, (None, 0, None, 0, 0), "an old run is unleased");
    let listed = store.unfinished_runs().await.unwrap();
    assert_eq!(listed.len(), 1);
    // A store writes only the runs it holds the lease on.
    let change = Change::StepStarted {
        step: "b",
        attempt: 9,
    };
    let error = store.record(&"old".into(), &change).await.unwrap_err();
    assert!(matches!(error, StoreError::Fenced { .. }), "{error:?}");

    // An engine takes it up and finishes it.
    let engine = engine_on(&store);
    let report = engine
        .resume(&def, "old")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(*report.output, ["old", "a#1", "b#2", "c#1"]);
    let (owner, token, recoveries): (String, i64, i64) = conn
        .query_row(
            "SELECT owner, lease_token, recoveries FROM runs WHERE run_id = 'old'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((owner.as_str(), token, recoveries), (store.owner(), 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_step_s_lease_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let script = Arc::new(Script::default());
    script.gated.store(1, Ordering::SeqCst);
    let def = chain(&script);
    // A 600 ms lease and a step that writes nothing for far longer: only the heartbeats
    // (every 200 ms) keep the run A's.
    let options = SqliteOptions::default()
        .owner("A")
        .lease(Duration::from_millis(600));
    let store_a = SqliteStore::open(&path, options).unwrap();
    let handle = engine_on(&store_a)
        .start(&def, "run-1", "seed".to_owned())
        .await
        .unwrap();
    wait_for("b started", || script.count("b") == 1).await;
    let engine_b = Engine::open_with(&path, SqliteOptions::default().owner("B")).unwrap();
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let taken = engine_b.resume(&def, "run-1").await;
        assert!(
            matches!(&taken, Err(EngineError::Leased { owner, .. }) if owner == "A"),
            "{taken:?}"
        );
    }
    script.gate.store(true, Ordering::SeqCst);
    let report = handle.wait().await.unwrap();
    assert_eq!(*report.output, ["seed", "a#1", "b#1", "c#1"]);
    // Ended: the lease is let go, and B finds the run finished, with nothing to run.
    let ended = engine_b
        .resume(&def, "run-1")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(*ended.output, ["seed", "a#1", "b#1", "c#1"]);
    assert_eq!(script.count("b"), 1);
}

/// A store whose answer to the start of step `three` comes `late` after the write was kept, as
/// when a link drops with the answer on its way and comes back.
struct LateAcks {
    inner: SqliteStore,
    late: Duration,
}

sagaflow_core::forward_store!(LateAcks => inner: RunStore with {
    async fn create_run(
        &self,
        run: &sagaflow_core::runtime::NewRun<'_>,
    ) -> Result<sagaflow_core::runtime::Created, StoreError> {
        self.inner.create_run(run).await
    }
    async fn record(
        &self,
        run_id: &sagaflow_core::runtime::RunId,
        change: &Change<'_>,
    ) -> Result<(), StoreError> {
        let kept = self.inner.record(run_id, change).await;
        if matches!(change, Change::StepStarted { step: "three", .. }) {
            tokio::time::sleep(self.late).await;
        }
        kept
    }
});
sagaflow_core::forward_store!(LateAcks => inner: LeaseStore, SignalStore, EventLog, Retention, QueueStore);

/// Runs `one -> two -> three` on a store whose leases last 600 ms and are no longer renewed
/// but by writes, the start of `three` acknowledged `late`: how many times each step ran, and
/// how the run ended.
async fn started_late(late: Duration) -> ([u32; 3], Result<u32, String>) {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(
        dir.path().join("late.db"),
        SqliteOptions::default().lease(Duration::from_millis(600)),
    )
    .unwrap();
    inner.pause_heartbeats();
    let engine = Engine::builder()
        .store(Arc::new(LateAcks { inner, late }))
        .build();
    let ran: Arc<[AtomicU32; 3]> = Arc::new(Default::default());
    let mut b = Builder::<u32>::new("Late");
    let mut last = b.input();
    for (i, name) in ["one", "two", "three"].into_iter().enumerate() {
        let ran = Arc::clone(&ran);
        last = b.step(name, StepOptions::new(), (last,), move |_, (x,)| {
            ran[i].fetch_add(1, Ordering::SeqCst);
            let x = *x;
            async move { Ok::<_, StepError>(x + 1) }
        });
    }
    let def = b.build_with_output(last);
    let ended = engine
        .start(&def, "late", 0)
        .await
        .unwrap()
        .wait()
        .await
        .map(|report| *report.output)
        .map_err(|error| error.to_string());
    let ran = [0, 1, 2].map(|i| ran[i].load(Ordering::SeqCst));
    (ran, ended)
}

/// A step whose start was acknowledged after the lease may have run out (the answer held up
/// on a link that dropped) is not started: another process may be taking the run over.
/// Acknowledged in time, the same run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_start_is_acknowledged_after_the_lease_may_have_run_out_is_not_started() {
    let (ran, ended) = started_late(Duration::from_millis(700)).await;
    assert_eq!(ran, [1, 1, 0], "`three` was not started");
    let error = ended.unwrap_err();
    assert!(error.contains("lease may have run out"), "{error}");
    let (ran, ended) = started_late(Duration::ZERO).await;
    assert_eq!(ran, [1, 1, 1]);
    assert_eq!(ended, Ok(3));
}

/// What a replica runs reaches the store at its next poll after each registration, not only at
/// its next heartbeat (every `HEARTBEAT_EVERY`): a replica that registers a second workflow (a
/// new version beside the old) a moment after its first is not listed for up to 5 s as one
/// that cannot run it. On tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_registration_reaches_the_store_at_the_next_poll_not_the_next_heartbeat() {
    use sagaflow_core::runtime::HEARTBEAT_EVERY;
    use sagaflow_core::runtime::store::inspect::Inspect as _;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replicas.db");
    let store = SqliteStore::open(&path, SqliteOptions::default().owner("replica-a")).unwrap();
    let engine = Engine::builder()
        .store(Arc::new(store))
        .takeover_every(Duration::from_millis(50))
        .build();
    let inspector = sagaflow_sqlite::inspect::Inspector::open(&path).unwrap();
    let graphs = async || -> Vec<String> {
        let replicas = inspector.replicas().await.unwrap();
        replicas
            .replicas
            .first()
            .map(|r| r.graphs.iter().map(|g| g.workflow.clone()).collect())
            .unwrap_or_default()
    };
    let until = async |wanted: usize| {
        for _ in 0..10_000 {
            if graphs().await.len() == wanted {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {wanted} graphs: {:?}", graphs().await);
    };

    engine
        .register(&chain(&Arc::new(Script::default())))
        .unwrap();
    until(1).await;
    let mut other = Builder::<String>::new("Other");
    let input = other.input();
    let out = other.step("only", StepOptions::new(), (input,), |_, (s,)| {
        let s = (*s).clone();
        async move { Ok::<_, StepError>(s) }
    });
    let registered = tokio::time::Instant::now();
    engine.register(&other.build_with_output(out)).unwrap();
    until(2).await;
    let took = registered.elapsed();
    assert!(
        took < HEARTBEAT_EVERY / 2,
        "the second registration reached the store after {took:?}"
    );
    let mut known = graphs().await;
    known.sort();
    assert_eq!(known, ["Chain", "Other"]);
}

/// A replica not heard from for `FORGET_REPLICA_AFTER` is forgotten at another's heartbeat;
/// one silent for less is kept (tools show it as gone): the table holds the replicas of the
/// last day, not every one that ever came and went.
#[tokio::test]
async fn a_replica_silent_for_a_day_is_forgotten_at_another_s_heartbeat() {
    use sagaflow_core::runtime::LeaseStore as _;
    use sagaflow_core::runtime::store::replicas::FORGET_REPLICA_AFTER;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replicas.db");
    let store = SqliteStore::open(&path, SqliteOptions::default().owner("live")).unwrap();
    store.heartbeat(&[], &[]).await.unwrap();
    let conn = Connection::open(&path).unwrap();
    let now: i64 = conn
        .query_row(
            "SELECT heartbeat_at FROM replicas WHERE owner = 'live'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let forget = i64::try_from(FORGET_REPLICA_AFTER.as_millis()).unwrap();
    for (owner, silent) in [("forgotten", forget + 60_000), ("gone", forget - 60_000)] {
        conn.execute(
            "INSERT INTO replicas (owner, host, pid, version, started_at, heartbeat_at, graphs) \
             VALUES (?1, 'elsewhere', 1, '0.1.0', ?2, ?2, '[]')",
            rusqlite::params![owner, now - silent],
        )
        .unwrap();
    }
    store.heartbeat(&[], &[]).await.unwrap();
    let owners: Vec<String> = conn
        .prepare("SELECT owner FROM replicas ORDER BY owner")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(owners, ["gone", "live"]);
}
