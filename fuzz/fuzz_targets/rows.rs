//! The decoding of stored rows: a database whose rows hold arbitrary values (statuses, event
//! kinds, attempts, outputs, errors, details, graphs, inputs, start times), as a damaged file or a newer
//! writer could leave them. Opening it, loading its runs, listing and replaying its events and
//! resuming a run must give values or errors, never a panic.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{Builder, Definition, Engine, RunId, StepError, Store};
use sagaflow_sqlite::{SqliteOptions, SqliteStore};

#[derive(Arbitrary, Debug)]
struct Damage {
    run_status: String,
    run_input: String,
    run_graph: Option<String>,
    run_created_at: i64,
    step_status: String,
    step_attempts: i64,
    step_output: Option<String>,
    step_error: Option<String>,
    step_started_at: Option<i64>,
    event_kind: String,
    event_attempt: Option<i64>,
    event_detail: Option<String>,
}

fn chain() -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Fuzzed");
    let input = b.input();
    let a = b.step("a", StepOptions::new(), (input,), |_, (x,)| async move {
        Ok::<u32, StepError>(*x + 1)
    });
    let c = b.step("b", StepOptions::new(), (a,), |_, (x,)| async move {
        Ok::<u32, StepError>(*x + 1)
    });
    b.build_with_output(c)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// A database with one finished run of `chain`, made once; each input damages a copy.
fn template() -> &'static PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sagaflow-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join("template.db");
        let _ = std::fs::remove_file(&path);
        runtime().block_on(async {
            let engine = Engine::open(&path).expect("opens");
            engine
                .start(&chain(), "r", 1)
                .await
                .expect("starts")
                .wait()
                .await
                .expect("completes");
        });
        // Checkpoint the WAL into the file, so that a copy of the file alone has everything.
        let conn = rusqlite::Connection::open(&path).expect("opens");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoints");
        path
    })
}

fuzz_target!(|damage: Damage| {
    let template = template();
    let path = template.with_file_name("damaged.db");
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));
    std::fs::copy(template, &path).expect("copies");
    {
        let conn = rusqlite::Connection::open(&path).expect("opens");
        // STRICT tables and CHECK constraints refuse some values: that is the schema doing its
        // job, and the rest is what the decoder must cope with.
        let _ = conn.execute(
            "UPDATE runs SET status = ?1, input = ?2, graph = ?3, created_at = ?4",
            rusqlite::params![
                damage.run_status,
                damage.run_input,
                damage.run_graph,
                damage.run_created_at
            ],
        );
        let _ = conn.execute(
            // `steps` is a view of the events (schema 11): damage the step's completion.
            "UPDATE events SET kind = ?1, attempt = ?2, output = ?3, detail = ?4, at = coalesce(?5, at) WHERE step = 'a' AND kind = 'step_completed'",
            rusqlite::params![damage.step_status, damage.step_attempts, damage.step_output, damage.step_error, damage.step_started_at],
        );
        let _ = conn.execute(
            "UPDATE events SET kind = ?1, attempt = ?2, detail = ?3 WHERE seq = 2",
            rusqlite::params![damage.event_kind, damage.event_attempt, damage.event_detail],
        );
    }
    runtime().block_on(async {
        let Ok(store) = SqliteStore::open(&path, SqliteOptions::default()) else {
            return;
        };
        let run = RunId::from("r");
        let _ = store.load_run(&run).await;
        let _ = store.events(None, 0, 100).await;
        let _ = store.unfinished_runs().await;
        let engine = Engine::builder().store(std::sync::Arc::new(store)).build();
        if let Ok(handle) = engine.resume(&chain(), run).await {
            let _ = handle.wait().await;
        }
    });
});
