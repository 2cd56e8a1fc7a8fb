//! Taking up a run that an earlier engine started on the same SQLite file
//! (`sagaflow_core::conformance::resume`, the checks PostgreSQL's `tests/resume.rs` runs on a
//! schema): the earlier engine is dropped with its runtime mid-run (no cleanup, as in a crash),
//! a new one of the same owner resumes the run. Completed steps are not run again and their
//! outputs come back typed; an interrupted step runs again unless it is at-most-once; a
//! finished run is not run or recorded again; a broken run stops the recovery of no other; a
//! signal sent while no process ran is found. Here too, on a paused clock: an interrupted step
//! has only what was left of its deadline.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::conformance::resume::{
    Counts, CrashDatabase, OWNER, chain, crash_runs_during_b,
};
use sagaflow_core::runtime::{Engine, RunError};
use sagaflow_sqlite::{SqliteEngine, SqliteOptions};

/// A SQLite file in a folder of the test's own.
struct File {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl File {
    fn new() -> File {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        File { _dir: dir, path }
    }
}

impl CrashDatabase for File {
    async fn engine(&self, owner: &str) -> Engine {
        Engine::open_with(&self.path, SqliteOptions::default().owner(owner)).unwrap()
    }

    fn execute(&self, sql: &str, param: Option<i64>) -> u64 {
        let db = rusqlite::Connection::open(&self.path).unwrap();
        let changed = match param {
            Some(p) => db.execute(sql, [p]),
            None => db.execute(sql, []),
        };
        changed.unwrap() as u64
    }
}

sagaflow_core::resume_conformance!(File::new());

#[test]
fn an_interrupted_step_has_only_what_was_left_of_its_deadline() {
    let file = File::new();
    let counts = Arc::new(Counts::default());
    // `b` hangs in both processes: only its deadline of an hour ends it.
    let hang = Arc::new(AtomicU32::new(1));
    let def = chain(
        Arc::clone(&counts),
        Arc::clone(&hang),
        StepOptions::new().deadline(Duration::from_secs(3600)),
    );
    crash_runs_during_b(&file, &def, &counts, &["run-1"]);

    // As if `b` had begun 45 minutes before the crash: its start's row, which on a compact
    // log is `a`'s completion's (`next_step`).
    let moved = file.execute(
        "UPDATE events SET at = at - $1 WHERE run_id = 'run-1' \
         AND ((step = 'b' AND kind = 'step_started') OR next_step = 'b')",
        Some(45 * 60 * 1000),
    );
    assert_eq!(moved, 1);

    // On a paused clock, which jumps to the next timer whenever the runtime is idle.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let (error, waited) = runtime.block_on(async {
        let engine = file.engine(OWNER).await;
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
