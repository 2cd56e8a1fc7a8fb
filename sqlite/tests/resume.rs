//! Taking up a run that an earlier engine started on the same SQLite file: the earlier engine
//! is dropped with its runtime mid-run (no cleanup, as in a crash), a new one resumes the run.
//! Completed steps are not run again and their outputs come back typed; an interrupted step
//! runs again unless it is at-most-once; a changed graph is refused; a finished run is not
//! run or recorded again.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Definition, Engine, RunError, StepError, StepStatus, StoredRunStatus,
};
use sagaflow_sqlite::SqliteEngine;
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

/// Runs the chain on a runtime of its own until `b` has started, then drops the runtime with
/// the engine: `b`'s attempt is cut, nothing is cleaned up.
fn crash_during_b(path: &Path, def: &Definition<String, Tally>, counts: &Counts) {
    crash_runs_during_b(path, def, counts, &["run-1"]);
}

/// Starts each of `ids`, waits until every one is inside `b`, then drops the runtime.
fn crash_runs_during_b(
    path: &Path,
    def: &Definition<String, Tally>,
    counts: &Counts,
    ids: &[&str],
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Engine::open(path).unwrap();
        let mut handles = Vec::new();
        for id in ids {
            handles.push(engine.start(def, *id, "seed".to_owned()).await.unwrap());
        }
        for _ in 0..2_000 {
            if counts.of("b") == ids.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // b's start is committed before b is called, so it is in the file now.
        assert_eq!(counts.of("b"), ids.len(), "b never started");
    });
    drop(runtime);
}

#[test]
fn a_resumed_run_skips_completed_steps_and_reruns_the_interrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(Arc::clone(&counts), Arc::clone(&hang), StepOptions::new());
    crash_during_b(&path, &def, &counts);

    hang.store(0, Ordering::SeqCst);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = Engine::open(&path).unwrap();
        let stored = engine
            .store()
            .load_run(&"run-1".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, StoredRunStatus::Running);
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
        let stored = engine
            .store()
            .load_run(&"run-1".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, StoredRunStatus::Completed);
    });
    assert_eq!(
        counts.of("a"),
        1,
        "a completed before the crash: never again"
    );
    assert_eq!(counts.of("b"), 2, "b was interrupted: it ran again");
    assert_eq!(counts.of("c"), 1);
}

#[test]
fn an_interrupted_at_most_once_step_comes_back_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(
        Arc::clone(&counts),
        Arc::clone(&hang),
        StepOptions::new().at_most_once(),
    );
    crash_during_b(&path, &def, &counts);

    hang.store(0, Ordering::SeqCst);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime.block_on(async {
        let engine = Engine::open(&path).unwrap();
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

#[test]
fn a_finished_run_is_returned_from_the_store_and_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let counts = Arc::new(Counts::default());
    let def = chain(
        Arc::clone(&counts),
        Arc::new(AtomicU32::new(0)),
        StepOptions::new(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = Engine::open(&path).unwrap();
        engine
            .start(&def, "done", "x".to_owned())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    });
    drop(runtime);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (report, events_before, events_after) = runtime.block_on(async {
        let engine = Engine::open(&path).unwrap();
        let before = engine
            .store()
            .load_run(&"done".into())
            .await
            .unwrap()
            .unwrap();
        let report = engine
            .start(&def, "done", "y".to_owned())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let after = engine
            .store()
            .load_run(&"done".into())
            .await
            .unwrap()
            .unwrap();
        (report, before, after)
    });
    assert_eq!(report.output.path, vec!["x", "a", "b", "c"]);
    assert_eq!(counts.of("a"), 1);
    assert_eq!(counts.of("c"), 1);
    assert_eq!(events_before, events_after, "nothing recorded twice");
}

#[test]
fn recovery_takes_up_every_unfinished_run_and_one_broken_run_stops_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(Arc::clone(&counts), Arc::clone(&hang), StepOptions::new());
    crash_runs_during_b(&path, &def, &counts, &["first", "broken", "last"]);

    // Corrupt the stored output of `a` in run "broken": it no longer decodes into a Tally.
    let db = rusqlite::Connection::open(&path).unwrap();
    let changed = db
        .execute(
            "UPDATE events SET output = '\"not a tally\"' \
             WHERE run_id = 'broken' AND step = 'a' AND kind = 'step_completed'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    hang.store(0, Ordering::SeqCst);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (done, failed) = runtime.block_on(async {
        let engine = Engine::open(&path).unwrap();
        let recovered = engine.recover(&def).await.unwrap();
        let mut done = Vec::new();
        for handle in recovered.runs {
            let id = handle.run_id().to_string();
            let report = handle.wait().await.unwrap();
            done.push((id, report.output.path.clone()));
        }
        (done, recovered.failed)
    });
    assert_eq!(
        done,
        vec![
            (
                "first".to_owned(),
                vec!["seed".to_owned(), "a".into(), "b".into(), "c".into()]
            ),
            (
                "last".to_owned(),
                vec!["seed".to_owned(), "a".into(), "b".into(), "c".into()]
            ),
        ]
    );
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0.as_str(), "broken");
    let message = failed[0].1.to_string();
    assert!(
        message.contains("broken") && message.contains("`a`"),
        "{message}"
    );
    assert_eq!(counts.of("a"), 3, "no completed step ran again");
}

#[test]
fn an_interrupted_step_has_only_what_was_left_of_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let counts = Arc::new(Counts::default());
    // `b` hangs in both processes: only its deadline of an hour ends it.
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(
        Arc::clone(&counts),
        Arc::clone(&hang),
        StepOptions::new().deadline(Duration::from_secs(3600)),
    );
    crash_during_b(&path, &def, &counts);

    // As if `b` had begun 45 minutes before the crash: its start's row, which on a compact
    // log is `a`'s completion's (`next_step`).
    let db = rusqlite::Connection::open(&path).unwrap();
    let moved = db
        .execute(
            "UPDATE events SET at = at - ?1 WHERE run_id = 'run-1' \
             AND ((step = 'b' AND kind = 'step_started') OR next_step = 'b')",
            [45 * 60 * 1000],
        )
        .unwrap();
    assert_eq!(moved, 1);
    drop(db);

    // On a paused clock, which jumps to the next timer whenever the runtime is idle.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let (error, waited) = runtime.block_on(async {
        let engine = Engine::open(&path).unwrap();
        let resumed_at = tokio::time::Instant::now();
        let error = engine
            .start(&def, "run-1", "seed".to_owned())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap_err();
        (error, resumed_at.elapsed())
    });
    match &error {
        RunError::StepFailed { step, error, .. } => {
            assert_eq!(step, "b");
            assert!(error.message().contains("deadline"), "{error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(counts.of("b"), 2, "b ran again, for what was left");
    let quarter = Duration::from_secs(15 * 60);
    assert!(
        waited >= quarter - Duration::from_secs(5) && waited < quarter + Duration::from_secs(60),
        "b was cut {waited:?} after the restart, not about 15 minutes"
    );
}
