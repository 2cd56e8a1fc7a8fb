//! Taking up runs that an earlier process left: an engine is dropped with its runtime mid-run
//! (its tasks cut, its connections or file handles closed, nothing cleaned up, as in a crash),
//! and a new engine of the same owner (a restarted process that kept its id) takes the runs up.
//! Completed steps are not run again and their outputs come back typed; an interrupted step
//! runs again unless it is at-most-once, with only what was left of its deadline; a finished
//! run is not run or recorded again; one run that can no longer be read stops the recovery of
//! no other; a signal sent while no process ran the run is found once it is taken up. Run on a
//! [`CrashDatabase`] by [`resume_conformance!`](crate::resume_conformance), each check a
//! `#[test]` of its own (the checks make and drop runtimes, as processes come and go).
//!
//! And [`a_durable_engine_holds_no_finished_run_and_finds_it_in_the_store`], which a store's
//! tests call with its own count of the leases it holds.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::StepOptions;
use crate::runtime::{
    Builder, Definition, Engine, RunError, StepError, StepStatus, StoredRunStatus,
};

/// A runtime as a process has one: two workers.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A database whose runs outlive the process that started them, for the checks that crash
/// one.
pub trait CrashDatabase {
    /// An engine on the database whose leases are `owner`'s (`async`: a store may have to
    /// connect first). Called in a runtime of the check's, which the check drops to crash.
    fn engine(&self, owner: &str) -> impl Future<Output = Engine>;

    /// Runs `sql`, one statement, on the database behind the store's back, with `$1` bound to
    /// `param` when given; the rows it changed.
    fn execute(&self, sql: &str, param: Option<i64>) -> u64;
}

/// The owner of every engine of the checks: the process before the crash and the one after it
/// are the same service, so a run is taken up at once rather than once its lease has run out.
pub const OWNER: &str = "resumed";

/// A step's output of a type of its own: the path the run took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// The seed, then each step's name.
    pub path: Vec<String>,
}

/// Counts each step's executions, across engines.
#[derive(Default)]
pub struct Counts(Mutex<Vec<String>>);

impl Counts {
    fn hit(&self, step: &str) {
        self.0.lock().unwrap().push(step.to_owned());
    }

    /// How many times `step` was called.
    pub fn of(&self, step: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|s| *s == step).count()
    }
}

/// `a -> b -> c`, workflow `Chain`; `b`, with `b_options`, hangs while `hang` is 1 (the crash
/// comes while it runs).
pub fn chain(
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

/// Starts each of `ids` on an engine of `db`, waits until every one is inside `b`, then drops
/// the runtime with the engine: `b`'s attempts are cut, and nothing is cleaned up.
pub fn crash_runs_during_b(
    db: &impl CrashDatabase,
    def: &Definition<String, Tally>,
    counts: &Counts,
    ids: &[&str],
) {
    let runtime = runtime();
    runtime.block_on(async {
        let engine = db.engine(OWNER).await;
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

/// A run taken up after a crash skips its completed steps (their outputs typed), runs the
/// interrupted one again (the cut attempt counted), and keeps the input it began with.
pub fn a_resumed_run_skips_completed_steps_and_reruns_the_interrupted_one(db: &impl CrashDatabase) {
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(Arc::clone(&counts), Arc::clone(&hang), StepOptions::new());
    crash_runs_during_b(db, &def, &counts, &["run-1"]);

    hang.store(0, Ordering::SeqCst);
    runtime().block_on(async {
        let engine = db.engine(OWNER).await;
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

/// An at-most-once step cut by a crash is not run again: it comes back `Interrupted`, and the
/// run fails at it.
pub fn an_interrupted_at_most_once_step_comes_back_interrupted(db: &impl CrashDatabase) {
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(
        Arc::clone(&counts),
        Arc::clone(&hang),
        StepOptions::new().at_most_once(),
    );
    crash_runs_during_b(db, &def, &counts, &["run-1"]);

    hang.store(0, Ordering::SeqCst);
    let error = runtime().block_on(async {
        let engine = db.engine(OWNER).await;
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

/// A finished run started again by its id in a new process is handed back from the store:
/// nothing runs, nothing is recorded again.
pub fn a_finished_run_is_returned_from_the_store_and_not_run_again(db: &impl CrashDatabase) {
    let counts = Arc::new(Counts::default());
    let def = chain(
        Arc::clone(&counts),
        Arc::new(AtomicU32::new(0)),
        StepOptions::new(),
    );
    runtime().block_on(async {
        let engine = db.engine(OWNER).await;
        let handle = engine.start(&def, "done", "x".to_owned()).await.unwrap();
        handle.wait().await.unwrap();
    });
    let (report, before, after) = runtime().block_on(async {
        let engine = db.engine(OWNER).await;
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
}

/// `recover` takes up every unfinished run; one whose stored output no longer decodes is
/// reported, naming the run and the step, and the others complete.
pub fn recovery_takes_up_every_unfinished_run_and_one_broken_run_stops_no_other(
    db: &impl CrashDatabase,
) {
    let counts = Arc::new(Counts::default());
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(Arc::clone(&counts), Arc::clone(&hang), StepOptions::new());
    crash_runs_during_b(db, &def, &counts, &["first", "broken", "last"]);

    // The stored output of `a` in run "broken" no longer decodes into a Tally.
    let changed = db.execute(
        "UPDATE events SET output = '\"not a tally\"' \
         WHERE run_id = 'broken' AND step = 'a' AND kind = 'step_completed'",
        None,
    );
    assert_eq!(changed, 1);

    hang.store(0, Ordering::SeqCst);
    let (mut done, failed) = runtime().block_on(async {
        let engine = db.engine(OWNER).await;
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
/// checked on a paused clock where a store has no timers of its own: `sqlite/tests/resume.rs`.)
pub fn an_interrupted_step_whose_deadline_is_spent_is_cut_at_once(db: &impl CrashDatabase) {
    let counts = Arc::new(Counts::default());
    // `b` hangs in both processes: only its deadline ends it.
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(
        Arc::clone(&counts),
        Arc::clone(&hang),
        StepOptions::new().deadline(Duration::from_secs(3600)),
    );
    crash_runs_during_b(db, &def, &counts, &["run-1"]);

    let moved = db.execute(
        "UPDATE events SET at = at - $1 WHERE run_id = 'run-1' \
         AND ((step = 'b' AND kind = 'step_started') OR next_step = 'b')",
        Some(2 * 3600 * 1000),
    );
    assert_eq!(moved, 1);

    let error = runtime().block_on(async {
        let engine = db.engine(OWNER).await;
        let handle = engine
            .start(&def, "run-1", "seed".to_owned())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), handle.wait())
            .await
            .expect("the spent deadline cuts the attempt")
            .unwrap_err()
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
}

/// What [`approval_flow`]'s step waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: String,
    /// Whether they did.
    pub ok: bool,
}

/// `prepare -> approve`, workflow `Approval`: `approve` waits for the signal "approval";
/// `prepared` and `asked` count the calls of each.
pub fn approval_flow(prepared: Arc<AtomicU32>, asked: Arc<AtomicU32>) -> Definition<(), String> {
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

/// A run waits for a signal; its process dies; the signal is sent while no process runs the
/// run (through an engine of another owner); a new process takes the run up, and the waiting
/// step, asked again, finds it.
pub fn a_signal_sent_while_no_process_runs_the_run_is_delivered_after_the_restart(
    db: &impl CrashDatabase,
) {
    let (prepared, asked) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let def = approval_flow(Arc::clone(&prepared), Arc::clone(&asked));

    // A first process starts the run; it waits for the approval; the process dies.
    let first = runtime();
    first.block_on(async {
        let engine = db.engine(OWNER).await;
        let _handle = engine.start(&def, "doc-4", ()).await.unwrap();
        let began = Instant::now();
        while asked.load(Ordering::SeqCst) < 1 && began.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1, "approve never asked");
    });
    drop(first);

    // While nothing runs it, the approval arrives (an operator's command, another service).
    runtime().block_on(async {
        let engine = db.engine("operator").await;
        let approval = Approval {
            by: "cy".into(),
            ok: true,
        };
        engine.signal("doc-4", "approval", &approval).await.unwrap();
    });

    // A new process recovers the run: the waiting step asks again and finds the signal.
    let output = runtime().block_on(async {
        let engine = db.engine(OWNER).await;
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

/// `one -> two`, workflow `Counted`, adding 1 and then 2, counting the calls of `one`.
pub fn counted(calls: &Arc<AtomicUsize>) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Counted");
    let input = b.input();
    let calls = Arc::clone(calls);
    let one = b.step("one", StepOptions::new(), (input,), move |_, (x,)| {
        calls.fetch_add(1, Ordering::SeqCst);
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    let two = b.step("two", StepOptions::new(), (one,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x + 2) }
    });
    b.build_with_output(two)
}

/// Starts `def` as `id` with `x` on `engine` and waits for its output.
pub async fn start_and_wait(engine: &Engine, def: &Definition<u64, u64>, id: &str, x: u64) -> u64 {
    *engine
        .start(def, id, x)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap()
        .output
}

/// A durable engine's memory does not grow with the runs it has finished: over `runs` runs it
/// holds none once each has ended, and its store (`leases_held`: how many leases it holds)
/// lets each one's lease go; a finished run's id started again hands that run back from the
/// store, running nothing; a run still going is held, and found by its id.
pub async fn a_durable_engine_holds_no_finished_run_and_finds_it_in_the_store(
    engine: &Engine,
    leases_held: impl Fn() -> usize,
    runs: u64,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let def = counted(&calls);
    for i in 0..runs {
        assert_eq!(
            start_and_wait(engine, &def, &format!("r{i}"), i).await,
            i + 3
        );
        assert_eq!(engine.runs_in_memory(), 0, "run {i} is still held");
        assert_eq!(leases_held(), 0, "run {i}'s lease is still held");
    }
    let ran = usize::try_from(runs).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), ran);
    // Starting a finished id hands that run back, read from the store: nothing runs again.
    assert_eq!(start_and_wait(engine, &def, "r7", 1_000).await, 10);
    assert_eq!(calls.load(Ordering::SeqCst), ran);
    assert_eq!(engine.runs_in_memory(), 0);
    // A run still going is held, and found by its id.
    let mut b = Builder::<u64>::new("Slow");
    let input = b.input();
    let out = b.step("wait", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, StepError>(x)
        }
    });
    let slow = b.build_with_output(out);
    let first = engine.start(&slow, "slow", 5).await.unwrap();
    assert_eq!((engine.runs_in_memory(), leases_held()), (1, 1));
    let second = engine.start(&slow, "slow", 6).await.unwrap();
    assert_eq!(*first.wait().await.unwrap().output, 5);
    assert_eq!(*second.wait().await.unwrap().output, 5);
    assert_eq!((engine.runs_in_memory(), leases_held()), (0, 0));
}

/// The checks of [`resume`](crate::conformance::resume) as `#[test]`s in a module `resume`,
/// each on a fresh [`CrashDatabase`] made by `$make` (which may `return` from the test, when
/// the database cannot be had).
#[macro_export]
macro_rules! resume_conformance {
    ($make:expr) => {
        $crate::resume_conformance!(resume, $make);
    };
    ($group:ident, $make:expr) => {
        mod $group {
            #[allow(unused_imports)]
            use super::*;

            $crate::resume_conformance!(@tests $make;
                a_resumed_run_skips_completed_steps_and_reruns_the_interrupted_one,
                an_interrupted_at_most_once_step_comes_back_interrupted,
                a_finished_run_is_returned_from_the_store_and_not_run_again,
                recovery_takes_up_every_unfinished_run_and_one_broken_run_stops_no_other,
                an_interrupted_step_whose_deadline_is_spent_is_cut_at_once,
                a_signal_sent_while_no_process_runs_the_run_is_delivered_after_the_restart,
            );
        }
    };
    (@tests $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                let db = $make;
                $crate::conformance::resume::$check(&db);
            }
        )+
    };
}
