//! A crash at every commit point of a run, the harness of every durable store's crash-point
//! suite (`sqlite/tests/faults.rs`, `postgres/tests/crash_points.rs`; with the
//! `fault-injection` feature too).
//!
//! A child process (the store's test binary again, running the same test) runs a 5-step chain
//! ([`chain`]) with one crash point armed ([`fault::CRASH_AT`]) and aborts there; the test then
//! opens the store again as the same service, takes the run up and checks
//! ([`check_recovery`]) that it completes, that no step whose completion was committed ran
//! again, and that at most the step in flight ran twice. [`crash_at_every_point`] walks every
//! point, the `n`-th time it is reached for every `n` until the run finishes untouched. Each
//! step's effect is a line of the side file in the case's directory ([`side`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::StepOptions;
pub use crate::conformance::side::{side, side_lines};
use crate::fault::{self, CRASH_AT, Point};
use crate::runtime::{Builder, Definition, Engine, RunId, StepError, StepStatus};

/// Set in a child: the directory of its case (its side file; a file store's database).
pub const CHILD: &str = "SAGAFLOW_FAULT_CHILD";
/// Set in a child: the id of the run it runs.
pub const RUN: &str = "SAGAFLOW_FAULT_RUN";
/// The chain's steps.
pub const STEPS: usize = 5;

/// The case a child plays, when this process is one: its directory and its run's id.
pub fn child() -> Option<(PathBuf, String)> {
    let dir = std::env::var_os(CHILD)?;
    let run = std::env::var(RUN).unwrap_or_else(|_| "run".to_owned());
    Some((PathBuf::from(dir), run))
}

/// `s1 -> ... -> s5`, each adding one and writing its name to the side file as its effect.
pub fn chain(dir: &Path) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Chain");
    let mut prev = b.input();
    for i in 1..=STEPS {
        let dir = dir.to_owned();
        prev = b.step(
            &format!("s{i}"),
            StepOptions::new(),
            (prev,),
            move |ctx, (x,)| {
                side(&dir, ctx.step());
                async move { Ok::<u32, StepError>(*x + 1) }
            },
        );
    }
    b.build_with_output(prev)
}

/// The runtime of a child and of a check: two workers, as a service has.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The child's part: runs the chain as `run` on `engine` to its end, unless the armed crash
/// point stops the process first.
pub async fn run_child(engine: &Engine, dir: &Path, run: &str) {
    run_to_end(engine, dir, run, "the child").await;
}

/// Starts (or takes up) the chain as `run` on `engine` and waits for its output, which must
/// be the chain's; a failure names `at`.
async fn run_to_end(engine: &Engine, dir: &Path, run: &str, at: &str) {
    let report = engine
        .start(&chain(dir), run, 0)
        .await
        .unwrap_or_else(|e| panic!("{at}: {e}"))
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{at}: {e}"));
    assert_eq!(*report.output, STEPS as u32, "{at}");
}

/// Starts this test binary again as a child playing `test` in `dir` with `run`, the crash
/// point `armed` (`None`: none, with [`fault::RUN_TWICE`] instead) and whatever `configure`
/// adds; gives whether it ran to its end.
pub fn spawn_child(
    (test, dir, run): (&str, &Path, &str),
    armed: Option<(Point, u64)>,
    configure: &dyn Fn(&mut Command),
) -> bool {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--test-threads=1"])
        .env(CHILD, dir)
        .env(RUN, run)
        .stdout(Stdio::null());
    match armed {
        Some((point, n)) => {
            command
                .env(CRASH_AT, format!("{}:{n}", point.as_str()))
                .stderr(Stdio::null());
        }
        None => {
            command.env(fault::RUN_TWICE, "1").stderr(Stdio::inherit());
        }
    }
    configure(&mut command);
    command.status().unwrap().success()
}

/// Crashes a child playing `test` at each crash point in turn, the `n`-th time it is reached
/// for every `n` until the run finishes untouched, each case in a fresh directory with a run
/// id of its own (`<point>-<n>`); `configure` adds what the store's child needs to its
/// command, `check` takes each crashed case's run up (with [`check_recovery`], and whatever
/// the store checks besides). Gives the number of crashes, after checking that every point
/// was reached once a step at least.
pub fn crash_at_every_point(
    test: &str,
    configure: &dyn Fn(&mut Command),
    mut check: impl FnMut(&Path, &str, &str),
) -> usize {
    let mut crashes = 0;
    for point in Point::ALL {
        for n in 1.. {
            assert!(n < 100, "{} never let the run finish", point.as_str());
            let dir = CaseDir::new(point, n);
            let run = format!("{}-{n}", point.as_str());
            let at = format!("{} #{n}", point.as_str());
            if spawn_child((test, &dir.0, &run), Some((point, n)), configure) {
                // Past the last time the run reaches this point: it finished untouched.
                let names: Vec<String> = (1..=STEPS).map(|i| format!("s{i}")).collect();
                assert_eq!(side_lines(&dir.0), names, "{at}");
                break;
            }
            crashes += 1;
            check(&dir.0, &run, &at);
        }
    }
    eprintln!("{crashes} crashes");
    // Every point was reached several times (each commit of the run, each step's effect).
    assert!(crashes >= 3 * STEPS, "only {crashes} crashes");
    crashes
}

/// A case's directory under the system's temporary one, removed with it.
struct CaseDir(PathBuf);

impl CaseDir {
    fn new(point: Point, n: u64) -> CaseDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "sagaflow-crash-{}-{nanos}-{}-{n}",
            std::process::id(),
            point.as_str()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        CaseDir(dir)
    }
}

impl Drop for CaseDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Takes the crashed run `run` up on `engine` (a store opened again as the same service) and
/// checks what ran: the run completes, no step whose completion was committed before ran
/// again, each step ran at most twice, and only one (the step in flight) twice.
pub async fn check_recovery(engine: &Engine, dir: &Path, run: &str, at: &str) {
    let before = engine.store().load_run(&RunId::from(run)).await.unwrap();
    let committed: Vec<String> = before
        .iter()
        .flat_map(|run| &run.steps)
        .filter(|s| s.status == StepStatus::Completed)
        .map(|s| s.name.clone())
        .collect();
    run_to_end(engine, dir, run, at).await;
    let lines = side_lines(dir);
    let mut twice = 0;
    for i in 1..=STEPS {
        let name = format!("s{i}");
        let count = lines.iter().filter(|l| **l == name).count();
        assert!(count >= 1, "{at}: {name} never ran: {lines:?}");
        if committed.contains(&name) {
            assert_eq!(
                count, 1,
                "{at}: {name} had completed, yet ran again: {lines:?}"
            );
        }
        assert!(count <= 2, "{at}: {name} ran {count} times: {lines:?}");
        twice += usize::from(count == 2);
    }
    assert!(
        twice <= 1,
        "{at}: only the step in flight may run twice: {lines:?}"
    );
}

/// Checks the side file of a child run with every step run twice on purpose
/// ([`fault::RUN_TWICE`], [`spawn_child`] with no crash point armed): each step's effect
/// twice, in order.
pub fn twice_in_order(dir: &Path) {
    let twice: Vec<String> = (1..=STEPS)
        .flat_map(|i| [format!("s{i}"), format!("s{i}")])
        .collect();
    assert_eq!(side_lines(dir), twice, "each step ran twice, in order");
}
