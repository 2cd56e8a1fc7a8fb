//! Taking up a run that an earlier engine started on the same PostgreSQL schema, as
//! `sqlite/tests/resume.rs` does on a file: the earlier engine is dropped with its runtime
//! mid-run (its connections cut, nothing cleaned up, as in a crash), and a new one on a store of
//! the same owner (a restarted process that kept its id) takes the run up. Completed steps are
//! not run again and their outputs come back typed; an interrupted step runs again unless it is
//! at-most-once, with only what was left of its deadline; a finished run is not run or recorded
//! again; one run that can no longer be read stops the recovery of no other; a signal sent
//! while no process ran the run is found once it is taken up. Each on both logs
//! (`PgOptions::compact_log`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Definition, Engine, RunError, StepError, StepStatus, StoredRunStatus,
};
use sagaflow_postgres::PgStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tally {
    path: Vec<String>,
}

/// Counts each step's executions, across engines.
#[derive(Default)]
struct Counts(Mutex<Vec<String>>);

impl Counts {
    fn hit(&self, step: &str) {
        self.0.lock().unwrap().push(step.to_owned());
    }
    fn of(&self, step: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|s| *s == step).count()
    }
}

/// `a -> b -> c`; `b` hangs while `hang` is set (the crash comes while it runs).
fn chain(
    counts: Arc<Counts>,
    hang: Arc<AtomicU32>,
    b_options: StepOptions,
) -> Definition<String, Tally> {
    let mut builder = Builder::<String>::new("Chain");
    let input = builder.input();
    let c1 = Arc::clone(&counts);
    let a = builder.step("a", StepOptions::new(), (input,), move |_, (seed,)| {
        c1.hit("a");
        let seed = (*seed).clone();
        async move {
            Ok::<_, StepError>(Tally {
                path: vec![seed, "a".into()],
            })
        }
    });
    let c2 = Arc::clone(&counts);
    let b = builder.step("b", b_options, (a,), move |_, (t,)| {
        c2.hit("b");
        let hang = hang.load(Ordering::SeqCst) == 1;
        let mut t = (*t).clone();
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            t.path.push("b".into());
            Ok::<_, StepError>(t)
        }
    });
    let c3 = Arc::clone(&counts);
    let c = builder.step("c", StepOptions::new(), (b,), move |_, (t,)| {
        c3.hit("c");
        let mut t = (*t).clone();
        async move {
            t.path.push("c".into());
            Ok::<_, StepError>(t)
        }
    });
    builder.build_with_output(c)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A schema of the test's own on the server (its stores keep a compact log if `compact`), or
/// `None` when there is no server (said once by `support`).
fn database(compact: bool) -> Option<support::Db> {
    runtime().block_on(async {
        if compact {
            support::Db::compact().await
        } else {
            support::Db::new().await
        }
    })
}

/// An engine on a store of `db` whose leases are the owner `crashed`'s: the process before
/// the crash and the one after it are the same owner, as a restarted process that kept its
/// id is, so the run is taken up at once rather than once its lease has run out.
async fn engine(db: &support::Db) -> Engine {
    let store = PgStore::connect(
        &db.url,
        db.options().owner("crashed").lease(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    Engine::builder().store(Arc::new(store)).build()
}

/// Starts each of `ids`, waits until every one is inside `b`, then drops the runtime with the
/// engine: `b`'s attempts are cut, the connections with them, and nothing is cleaned up.
fn crash_runs_during_b(
    db: &support::Db,
    def: &Definition<String, Tally>,
    counts: &Counts,
    ids: &[&str],
) {
    let runtime = runtime();
    runtime.block_on(async {
        let engine = engine(db).await;
        let mut handles = Vec::new();
        for id in ids {
            handles.push(engine.start(def, *id, "seed".to_owned()).await.unwrap());
        }
        let began = Instant::now();
        while counts.of("b") < ids.len() && began.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // b's start is committed before b is called, so it is in the database now.
        assert_eq!(counts.of("b"), ids.len(), "b never started");
    });
    drop(runtime);
}

/// Runs `sql` on `db`'s schema behind the store's back; the rows it changed.
fn edit(db: &support::Db, sql: &str, param: Option<i64>) -> u64 {
    runtime().block_on(async {
        let client = support::client(&db.url).await;
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", db.schema))
            .await
            .unwrap();
        match param {
            Some(p) => client.execute(sql, &[&p]).await.unwrap(),
            None => client.execute(sql, &[]).await.unwrap(),
        }
    })
}

/// Each check on the log as before schema 10 and on the compact log.
macro_rules! on_both_logs {
    ($($name:ident),* $(,)?) => {
        mod plain {
            $(
                #[test]
                fn $name() {
                    super::$name(false);
                }
            )*
        }
        mod compact {
            $(
                #[test]
                fn $name() {
                    super::$name(true);
                }
            )*
        }
    };
}

on_both_logs!(
    a_resumed_run_skips_completed_steps_and_reruns_the_interrupted_one,
    an_interrupted_at_most_once_step_comes_back_interrupted,
    a_finished_run_is_returned_from_the_store_and_not_run_again,
    recovery_takes_up_every_unfinished_run_and_one_broken_run_stops_no_other,
    an_interrupted_step_whose_deadline_is_spent_is_cut_at_once,
    a_signal_sent_while_no_process_runs_the_run_is_delivered_after_the_restart,
);

fn a_resumed_run_skips_completed_steps_and_reruns_the_interrupted_one(compact: bool) {
    let Some(db) = database(compact) else { return };
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(Arc::clone(&counts), Arc::clone(&hang), StepOptions::new());
    crash_runs_during_b(&db, &def, &counts, &["run-1"]);

    hang.store(0, Ordering::SeqCst);
    runtime().block_on(async {
        let engine = engine(&db).await;
        let stored = engine.store().load_run(&"run-1".into()).await.unwrap();
        assert_eq!(stored.unwrap().status, StoredRunStatus::Running);
        // The input given now is ignored: the run goes on with the one it was started with.
        let report = engine
            .start(&def, "run-1", "other".to_owned())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(report.output.path, vec!["seed", "a", "b", "c"]);
        assert_eq!(
            report.step("b").unwrap().attempts,
            2,
            "the cut attempt counts"
        );
        let stored = engine.store().load_run(&"run-1".into()).await.unwrap();
        assert_eq!(stored.unwrap().status, StoredRunStatus::Completed);
    });
    assert_eq!(
        counts.of("a"),
        1,
        "a completed before the crash: never again"
    );
    assert_eq!(counts.of("b"), 2, "b was interrupted: it ran again");
    assert_eq!(counts.of("c"), 1);
}

fn an_interrupted_at_most_once_step_comes_back_interrupted(compact: bool) {
    let Some(db) = database(compact) else { return };
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(
        Arc::clone(&counts),
        Arc::clone(&hang),
        StepOptions::new().at_most_once(),
    );
    crash_runs_during_b(&db, &def, &counts, &["run-1"]);

    hang.store(0, Ordering::SeqCst);
    let error = runtime().block_on(async {
        let engine = engine(&db).await;
        engine
            .start(&def, "run-1", "seed".to_owned())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap_err()
    });
    match &error {
        RunError::StepFailed {
            step, error, steps, ..
        } => {
            assert_eq!(step, "b");
            assert!(error.message().contains("interrupted"), "{error}");
            let b = steps.iter().find(|s| &*s.name == "b").unwrap();
            assert_eq!(b.status, StepStatus::Interrupted);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(counts.of("b"), 1, "an at-most-once step is not run again");
    assert_eq!(counts.of("c"), 0);
}

fn a_finished_run_is_returned_from_the_store_and_not_run_again(compact: bool) {
    let Some(db) = database(compact) else { return };
    let counts = Arc::new(Counts::default());
    let def = chain(
        Arc::clone(&counts),
        Arc::new(AtomicU32::new(0)),
        StepOptions::new(),
    );
    runtime().block_on(async {
        let engine = engine(&db).await;
        let report = engine.start(&def, "done", "x".to_owned()).await.unwrap();
        report.wait().await.unwrap();
    });
    let (report, before, after) = runtime().block_on(async {
        let engine = engine(&db).await;
        let before = engine.store().load_run(&"done".into()).await.unwrap();
        let report = engine
            .start(&def, "done", "y".to_owned())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let after = engine.store().load_run(&"done".into()).await.unwrap();
        (report, before.unwrap(), after.unwrap())
    });
    assert_eq!(report.output.path, vec!["x", "a", "b", "c"]);
    assert_eq!((counts.of("a"), counts.of("b"), counts.of("c")), (1, 1, 1));
    assert_eq!(before.status, StoredRunStatus::Completed);
    assert_eq!(before, after, "nothing recorded twice");
    let events = edit(
        &db,
        "SELECT 1 FROM events WHERE run_id = 'done' AND kind = 'run_completed'",
        None,
    );
    assert_eq!(events, 1, "the run's end is logged once");
}

fn recovery_takes_up_every_unfinished_run_and_one_broken_run_stops_no_other(compact: bool) {
    let Some(db) = database(compact) else { return };
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(Arc::clone(&counts), Arc::clone(&hang), StepOptions::new());
    crash_runs_during_b(&db, &def, &counts, &["first", "broken", "last"]);

    // The stored output of `a` in run "broken" no longer decodes into a Tally.
    let changed = edit(
        &db,
        "UPDATE events SET output = '\"not a tally\"' \
         WHERE run_id = 'broken' AND step = 'a' AND kind = 'step_completed'",
        None,
    );
    assert_eq!(changed, 1);

    hang.store(0, Ordering::SeqCst);
    let (mut done, failed) = runtime().block_on(async {
        let engine = engine(&db).await;
        let recovered = engine.recover(&def).await.unwrap();
        let mut done = Vec::new();
        for handle in recovered.runs {
            let id = handle.run_id().to_string();
            let report = handle.wait().await.unwrap();
            done.push((id, report.output.path.clone()));
        }
        (done, recovered.failed)
    });
    done.sort();
    let path = vec!["seed".to_owned(), "a".into(), "b".into(), "c".into()];
    assert_eq!(
        done,
        vec![
            ("first".to_owned(), path.clone()),
            ("last".to_owned(), path)
        ]
    );
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0.as_str(), "broken");
    let message = failed[0].1.to_string();
    assert!(
        message.contains("broken") && message.contains("`a`"),
        "{message}"
    );
    assert_eq!(counts.of("a"), 3, "no completed step ran again");
}

/// `b`'s first attempt began two hours before the crash (its start's row moved back: on a
/// compact log `a`'s completion's, which names `b` as its next step), and its deadline is an
/// hour: taken up, it has nothing left, and its attempt is cut at once with the deadline's
/// error, though it would hang for ever. (A deadline partly spent, cut after what was left, is
/// `sqlite/tests/resume.rs`'s check, on a paused clock: a store on a server has timers of its
/// own that a paused clock would jump.)
fn an_interrupted_step_whose_deadline_is_spent_is_cut_at_once(compact: bool) {
    let Some(db) = database(compact) else { return };
    let counts = Arc::new(Counts::default());
    // `b` hangs in both processes: only its deadline ends it.
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(
        Arc::clone(&counts),
        Arc::clone(&hang),
        StepOptions::new().deadline(Duration::from_secs(3600)),
    );
    crash_runs_during_b(&db, &def, &counts, &["run-1"]);

    let moved = edit(
        &db,
        "UPDATE events SET at = at - $1 WHERE run_id = 'run-1' \
         AND ((step = 'b' AND kind = 'step_started') OR next_step = 'b')",
        Some(2 * 3600 * 1000),
    );
    assert_eq!(moved, 1);

    let (error, took) = runtime().block_on(async {
        let engine = engine(&db).await;
        let resumed = Instant::now();
        let handle = engine
            .start(&def, "run-1", "seed".to_owned())
            .await
            .unwrap();
        let error = tokio::time::timeout(Duration::from_secs(60), handle.wait())
            .await
            .expect("the spent deadline cuts the attempt")
            .unwrap_err();
        (error, resumed.elapsed())
    });
    match &error {
        RunError::StepFailed { step, error, .. } => {
            assert_eq!(step, "b");
            assert!(error.message().contains("deadline"), "{error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(counts.of("b"), 2, "b was taken up, with nothing left");
    assert_eq!(counts.of("c"), 0);
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Approval {
    by: String,
    ok: bool,
}

/// `prepare -> approve`: `approve` waits for the signal "approval".
fn approval_flow(prepared: Arc<AtomicU32>, asked: Arc<AtomicU32>) -> Definition<(), String> {
    let mut b = Builder::<()>::new("Approval");
    let input = b.input();
    let prepare = b.step("prepare", StepOptions::new(), (input,), move |_, (_,)| {
        prepared.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, StepError>("draft".to_owned()) }
    });
    let approve = b.step(
        "approve",
        StepOptions::new(),
        (prepare,),
        move |ctx, (doc,)| {
            asked.fetch_add(1, Ordering::SeqCst);
            async move {
                let approval: Approval = ctx.signal("approval").await?;
                Ok::<_, StepError>(format!(
                    "{doc} approved by {} ({})",
                    approval.by, approval.ok
                ))
            }
        },
    );
    b.build_with_output(approve)
}

fn a_signal_sent_while_no_process_runs_the_run_is_delivered_after_the_restart(compact: bool) {
    let Some(db) = database(compact) else { return };
    let (prepared, asked) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let def = approval_flow(Arc::clone(&prepared), Arc::clone(&asked));

    // A first process starts the run; it waits for the approval; the process dies.
    let first = runtime();
    first.block_on(async {
        let engine = engine(&db).await;
        let _handle = engine.start(&def, "doc-4", ()).await.unwrap();
        let began = Instant::now();
        while asked.load(Ordering::SeqCst) < 1 && began.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1, "approve never asked");
    });
    drop(first);

    // While nothing runs it, the approval arrives (an operator's command, another service),
    // through a store of another owner.
    runtime().block_on(async {
        let store = PgStore::connect(&db.url, db.options().owner("operator"))
            .await
            .unwrap();
        let engine = Engine::builder().store(Arc::new(store)).build();
        let approval = Approval {
            by: "cy".into(),
            ok: true,
        };
        engine.signal("doc-4", "approval", &approval).await.unwrap();
    });

    // A new process recovers the run: the waiting step asks again and finds the signal.
    let output = runtime().block_on(async {
        let engine = engine(&db).await;
        let recovered = engine.recover(&def).await.unwrap();
        assert_eq!(recovered.runs.len(), 1);
        let handle = recovered.runs.into_iter().next().unwrap();
        handle.wait().await.unwrap().output
    });
    assert_eq!(*output, "draft approved by cy (true)");
    assert_eq!(
        prepared.load(Ordering::SeqCst),
        1,
        "prepare completed before the crash"
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "approve was interrupted and asked again"
    );
}
