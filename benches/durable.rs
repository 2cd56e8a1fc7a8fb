//! Durable steps on SQLite files, side by side in one criterion run with a bare rusqlite loop
//! that commits one small row per transaction: the physical floor of the disk.
//!
//! Four groups, one per goal of the issue:
//!
//! - `sequential_chain_40`: one run of a 40-step chain of no-op steps at a time, on
//!   `Engine::open_with(file, options)` with `synchronous` FULL and NORMAL, against the bare
//!   loop committing 40 rows, one `BEGIN IMMEDIATE … COMMIT` each, with the same pragmas (WAL,
//!   FULL / NORMAL) on a file in the same directory. One iteration is one run, or 40 bare
//!   commits, so the ratio of the two times is the ratio per step. `_writer_thread`: the same
//!   run with `commit_on_caller(false)`, every commit handed to the writer thread, which is
//!   what a worker that must never block on the disk pays.
//! - `concurrent_100_runs`: 100 runs of a 10-step chain started at once (a task each, as a
//!   service would), FULL and NORMAL; one iteration is all 100 runs to their end, 1,000 durable
//!   steps, so criterion's throughput is durable steps per second.
//! - `chain_40_overhead`: the 40-step chain with NORMAL, whose steps do nothing, so the run's
//!   time is its orchestration overhead; beside it the same run on an in-memory SQLite
//!   database (the SQL and the writer thread without the file), on a `MemoryStore` that
//!   records every change (the engine's recording path without SQL) and on
//!   `Engine::ephemeral()` (no recording at all), to show where the time goes.
//! - `reload_10000`: a finished run of 10,000 independent steps, built once before anything is
//!   timed; `load_run` reads it back from the store, and `start_finished` takes it up with
//!   `engine.start` of its id on an engine that has not seen it (as a new process would),
//!   which loads it, decodes its 10,000 outputs and hands back its report.
//!
//! Every database is a fresh file in a temporary directory under the target directory (the
//! repository's disk), one per criterion sample (`iter_custom` call), so files do not grow
//! from one sample to the next; opening and closing it is not timed. Run ids are fresh in
//! every iteration. Timed loops run in a task spawned on a 2-worker multi-thread runtime, as in
//! `engine.rs`. Before anything is timed, each contender runs once and its result is checked
//! (outputs, every step completed once, what the store holds), and the store's commit counts
//! are printed.
//!
//! Run with `cargo bench --bench durable`; figures: `benches/README.md`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sagaflow::SqliteEngine;
use sagaflow::runtime::{EventLog, MemoryStore, RunStore, StoredRunStatus};
use sagaflow::{
    Builder, Definition, Engine, RunId, SqliteOptions, SqliteStore, StepError, StepOptions,
    StepStatus, Synchronous,
};
use tempfile::TempDir;
use tokio::runtime::Runtime;

/// Steps of the sequential chain.
const CHAIN: usize = 40;
/// Runs started at once, and the steps of each.
const CONCURRENT_RUNS: usize = 100;
const CONCURRENT_CHAIN: usize = 10;
/// Steps of the run that is reloaded.
const BIG: usize = 10_000;
/// The most runs made on one database or engine before a fresh one is made (untimed).
const RUNS_PER_BATCH: u64 = 2_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs a timed loop on one of the runtime's workers, as `engine.rs` does.
async fn on_worker(timed: impl Future<Output = Duration> + Send + 'static) -> Duration {
    tokio::spawn(timed).await.expect("the timed loop ends")
}

/// A fresh temporary directory on the repository's disk: under `CARGO_TARGET_DIR` if set,
/// else the workspace's `target/`.
fn scratch() -> TempDir {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&root).expect("the target directory");
    tempfile::Builder::new()
        .prefix("sagaflow-durable-")
        .tempdir_in(root)
        .expect("a scratch directory")
}

fn options(sync: Synchronous) -> SqliteOptions {
    SqliteOptions::default().synchronous(sync)
}

fn sync_name(sync: Synchronous) -> &'static str {
    match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    }
}

// ---------------------------------------------------------------------------------------------
// Definitions

/// `s0 -> s1 -> ... -> s(n-1)`, each step its input plus one.
fn chain(n: usize) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new(format!("chain_{n}"));
    let mut last = b.input();
    for i in 0..n {
        last = b.step(
            format!("s{i}"),
            StepOptions::new(),
            (last,),
            |_ctx, (x,)| async move { Ok::<u64, StepError>(*x + 1) },
        );
    }
    b.build_with_output(last)
}

/// Calls of the independent steps' function, to check that a finished run taken up runs none.
static INDEPENDENT_CALLS: AtomicU64 = AtomicU64::new(0);

/// `n` steps with no edges, each its input plus one.
fn independent(n: usize) -> Definition<u64, ()> {
    let mut b = Builder::<u64>::new(format!("independent_{n}"));
    let input = b.input();
    for i in 0..n {
        b.step(
            format!("s{i}"),
            StepOptions::new(),
            (input,),
            |_ctx, (x,)| async move {
                INDEPENDENT_CALLS.fetch_add(1, Ordering::Relaxed);
                Ok::<u64, StepError>(*x + 1)
            },
        );
    }
    b.build()
}

// ---------------------------------------------------------------------------------------------
// Engines

/// Where an engine records its runs.
#[derive(Clone, Copy, Debug)]
enum Backend {
    /// `Engine::open_with(file, options)`: a SQLite file.
    File(Synchronous),
    /// The same with `commit_on_caller(false)`: every commit on the writer thread.
    FileWriterThread(Synchronous),
    /// A file whose log is compact (`compact_log(true)`): a step's completion and the next
    /// start in one row.
    Compact(Synchronous),
    /// A `SqliteStore::in_memory()`: the schema, the SQL and the writer thread, no file.
    SqliteMemory,
    /// A `MemoryStore::new()`, which keeps every change: the engine's recording path.
    MemoryRecording,
    /// `Engine::ephemeral()`: nothing recorded.
    Memory,
}

/// An engine and the directory of its database, if any.
struct Bench {
    engine: Engine,
    _dir: Option<TempDir>,
}

impl Bench {
    fn open(backend: Backend) -> Bench {
        match backend {
            Backend::File(sync) | Backend::FileWriterThread(sync) | Backend::Compact(sync) => {
                let dir = scratch();
                let on_caller = !matches!(backend, Backend::FileWriterThread(_));
                let compact = matches!(backend, Backend::Compact(_));
                let engine = Engine::open_with(
                    dir.path().join("sagaflow.db"),
                    options(sync)
                        .commit_on_caller(on_caller)
                        .compact_log(compact),
                )
                .expect("the database opens");
                Bench {
                    engine,
                    _dir: Some(dir),
                }
            }
            Backend::SqliteMemory => Bench {
                engine: Engine::builder()
                    .store(Arc::new(
                        SqliteStore::in_memory().expect("an in-memory store"),
                    ))
                    .build(),
                _dir: None,
            },
            Backend::MemoryRecording => Bench {
                engine: Engine::builder()
                    .store(Arc::new(MemoryStore::new()))
                    .build(),
                _dir: None,
            },
            Backend::Memory => Bench {
                engine: Engine::ephemeral(),
                _dir: None,
            },
        }
    }

    /// Drops the engine, closing its database (the writer thread checkpoints the WAL), off the
    /// runtime's workers and after the runs' last tasks have let go of it, so that none of it
    /// lands in the next sample's timing.
    async fn close(self) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        tokio::task::spawn_blocking(move || drop(self))
            .await
            .expect("the engine drops");
    }
}

/// Starts `def` as `id` with input 0 and waits for its output.
async fn run_chain(engine: &Engine, def: &Definition<u64, u64>, id: RunId) -> u64 {
    *engine
        .start(def, id, 0)
        .await
        .expect("the run starts")
        .wait()
        .await
        .expect("the run completes")
        .output
}

/// Starts the 100 chains at once, a task each, and waits for all of them.
async fn run_concurrent(engine: &Engine, def: &Definition<u64, u64>, ids: Vec<RunId>) {
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let engine = engine.clone();
            let def = def.clone();
            tokio::spawn(async move { run_chain(&engine, &def, id).await })
        })
        .collect();
    for task in tasks {
        black_box(task.await.expect("the run's task ends"));
    }
}

// ---------------------------------------------------------------------------------------------
// Timed loops

/// `iters` runs of `def`, one at a time, on a fresh engine (and database) per batch; opening and
/// closing it and making the ids are not timed.
async fn sequential_timed(backend: Backend, def: Definition<u64, u64>, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(RUNS_PER_BATCH);
        left -= batch;
        let bench = Bench::open(backend);
        let ids: Vec<RunId> = (0..batch).map(|i| RunId::from(format!("r{i}"))).collect();
        let started = Instant::now();
        for id in ids {
            black_box(run_chain(&bench.engine, &def, id).await);
        }
        total += started.elapsed();
        bench.close().await;
    }
    total
}

/// `iters` rounds of 100 concurrent runs of `def`, on a fresh database per batch.
async fn concurrent_timed(backend: Backend, def: Definition<u64, u64>, iters: u64) -> Duration {
    let rounds_per_batch = (RUNS_PER_BATCH / CONCURRENT_RUNS as u64).max(1);
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(rounds_per_batch);
        left -= batch;
        let bench = Bench::open(backend);
        let rounds: Vec<Vec<RunId>> = (0..batch)
            .map(|round| {
                (0..CONCURRENT_RUNS)
                    .map(|k| RunId::from(format!("r{round}-{k}")))
                    .collect()
            })
            .collect();
        let started = Instant::now();
        for ids in rounds {
            run_concurrent(&bench.engine, &def, ids).await;
        }
        total += started.elapsed();
        bench.close().await;
    }
    total
}

/// A bare rusqlite connection on a fresh file, with the store's pragmas, and one table.
struct Bare {
    conn: rusqlite::Connection,
    _dir: TempDir,
}

impl Bare {
    fn open(sync: Synchronous) -> Bare {
        let dir = scratch();
        let conn = rusqlite::Connection::open(dir.path().join("bare.db")).expect("bare opens");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .expect("WAL");
        assert!(mode.eq_ignore_ascii_case("wal"), "journal_mode {mode}");
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;
             CREATE TABLE rows (run INTEGER NOT NULL, step INTEGER NOT NULL,
                                output TEXT NOT NULL, PRIMARY KEY (run, step)) STRICT;",
            sync_name(sync)
        ))
        .expect("pragmas and table");
        Bare { conn, _dir: dir }
    }

    /// One small row in a transaction of its own.
    fn commit_one(&self, run: i64, step: i64) {
        self.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        self.conn
            .prepare_cached("INSERT INTO rows (run, step, output) VALUES (?1, ?2, '1')")
            .expect("insert prepares")
            .execute((run, step))
            .expect("insert");
        self.conn.execute_batch("COMMIT").expect("commit");
    }

    fn rows(&self) -> i64 {
        self.conn
            .query_row("SELECT count(*) FROM rows", [], |row| row.get(0))
            .expect("count")
    }
}

/// `iters` times [`CHAIN`] bare commits, on a fresh file per call; opening it is not timed.
fn bare_timed(sync: Synchronous, iters: u64) -> Duration {
    let bare = Bare::open(sync);
    let started = Instant::now();
    for run in 0..iters as i64 {
        for step in 0..CHAIN as i64 {
            bare.commit_one(run, step);
        }
    }
    let elapsed = started.elapsed();
    drop(bare);
    elapsed
}

// ---------------------------------------------------------------------------------------------
// Checks, before anything is timed

/// Runs `def` once on a store opened by hand (to read its counters), checks its output and
/// what the store holds, and prints the commits it took.
async fn check_sequential(sync: Synchronous, on_caller: bool, def: &Definition<u64, u64>) {
    let dir = scratch();
    let store = SqliteStore::open(
        dir.path().join("check.db"),
        options(sync).commit_on_caller(on_caller),
    )
    .expect("opens");
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let (commits, writes) = (store.commits(), store.writes());
    let on_caller_before = store.commits_on_caller();
    let report = engine
        .start(def, "check", 0)
        .await
        .expect("starts")
        .wait()
        .await
        .expect("completes");
    assert_eq!(*report.output, CHAIN as u64);
    assert_eq!(report.steps.len(), CHAIN);
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Completed && s.attempts == 1)
    );
    let stored = store
        .load_run(&"check".into())
        .await
        .expect("loads")
        .expect("stored");
    assert_eq!(stored.status, StoredRunStatus::Completed);
    assert_eq!(stored.steps.len(), CHAIN);
    assert!(
        stored
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Completed)
    );
    assert_eq!(stored.steps[CHAIN - 1].output.as_deref(), Some("40"));
    eprintln!(
        "check: one {CHAIN}-step run, {}, commit_on_caller({on_caller}): {} writes in {} commits, {} of them on the caller's thread",
        sync_name(sync),
        store.writes() - writes,
        store.commits() - commits,
        store.commits_on_caller() - on_caller_before,
    );
    release(engine, store, dir).await;
}

async fn check_in_memory(backend: Backend, def: &Definition<u64, u64>) {
    let bench = Bench::open(backend);
    assert_eq!(
        run_chain(&bench.engine, def, "check".into()).await,
        CHAIN as u64,
        "{backend:?}"
    );
    bench.close().await;
}

async fn check_concurrent(sync: Synchronous, compact: bool, def: &Definition<u64, u64>) {
    let dir = scratch();
    let store = SqliteStore::open(
        dir.path().join("check.db"),
        options(sync).compact_log(compact),
    )
    .expect("opens");
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let ids: Vec<RunId> = (0..CONCURRENT_RUNS)
        .map(|k| RunId::from(format!("c{k}")))
        .collect();
    let (commits, writes) = (store.commits(), store.writes());
    run_concurrent(&engine, def, ids.clone()).await;
    let (commits, writes) = (store.commits() - commits, store.writes() - writes);
    for id in &ids {
        let stored = store.load_run(id).await.expect("loads").expect("stored");
        assert_eq!(stored.status, StoredRunStatus::Completed);
        assert_eq!(stored.steps.len(), CONCURRENT_CHAIN);
        assert_eq!(
            stored.steps[CONCURRENT_CHAIN - 1].output.as_deref(),
            Some("10")
        );
        // Every event read back, numbered without a gap: one per change, in either log.
        let events = store.events(Some(id), 0, 100).await.expect("reads");
        assert_eq!(events.len(), 2 + 2 * CONCURRENT_CHAIN, "{id}");
    }
    eprintln!(
        "check: {CONCURRENT_RUNS} concurrent {CONCURRENT_CHAIN}-step runs, {}{}: {writes} writes \
         in {commits} commits ({:.1} writes per commit)",
        sync_name(sync),
        if compact { ", compact log" } else { "" },
        writes as f64 / commits as f64,
    );
    release(engine, store, dir).await;
}

/// Drops an engine and its store (closing the database) off the workers, then the directory.
async fn release(engine: Engine, store: SqliteStore, dir: TempDir) {
    drop(engine);
    tokio::time::sleep(Duration::from_millis(5)).await;
    tokio::task::spawn_blocking(move || drop((store, dir)))
        .await
        .expect("dropped");
}

fn check_bare(sync: Synchronous) {
    let bare = Bare::open(sync);
    for step in 0..CHAIN as i64 {
        bare.commit_one(0, step);
    }
    assert_eq!(bare.rows(), CHAIN as i64);
}

/// The finished 10,000-step run that `reload_10000` reads: its database, a store on it, the
/// definition and the run's id.
struct BigRun {
    _dir: TempDir,
    store: SqliteStore,
    def: Definition<u64, ()>,
    id: RunId,
}

/// Builds and checks the finished 10,000-step run (NORMAL: how it was written does not change
/// how it reads).
async fn big_run() -> BigRun {
    let dir = scratch();
    let store =
        SqliteStore::open(dir.path().join("big.db"), options(Synchronous::Normal)).expect("opens");
    let def = independent(BIG);
    let id = RunId::from("big");
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let started = Instant::now();
    let report = engine
        .start(&def, id.clone(), 0)
        .await
        .expect("starts")
        .wait()
        .await
        .expect("completes");
    assert_eq!(report.steps.len(), BIG);
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Completed && s.attempts == 1)
    );
    eprintln!(
        "setup: a {BIG}-step run written in {:.2?}: {} writes in {} commits",
        started.elapsed(),
        store.writes(),
        store.commits(),
    );
    drop(engine);
    tokio::time::sleep(Duration::from_millis(5)).await;

    let stored = store.load_run(&id).await.expect("loads").expect("stored");
    assert_eq!(stored.status, StoredRunStatus::Completed);
    assert_eq!(stored.steps.len(), BIG);
    assert!(
        stored
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Completed && s.output.as_deref() == Some("1"))
    );

    // Taken up by an engine that has not seen it: nothing runs again.
    let calls = INDEPENDENT_CALLS.load(Ordering::Relaxed);
    let fresh = Engine::builder().store(Arc::new(store.clone())).build();
    let report = fresh
        .start(&def, id.clone(), 0)
        .await
        .expect("takes the run up")
        .wait()
        .await
        .expect("its outcome");
    assert_eq!(
        INDEPENDENT_CALLS.load(Ordering::Relaxed),
        calls,
        "no step ran again"
    );
    assert_eq!(report.steps.len(), BIG);
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Completed && s.attempts == 1)
    );
    BigRun {
        _dir: dir,
        store,
        def,
        id,
    }
}

async fn load_timed(store: SqliteStore, id: RunId, iters: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        black_box(store.load_run(&id).await.expect("loads"));
    }
    started.elapsed()
}

/// `iters` take-ups of the finished run, each on an engine of its own made beforehand.
async fn start_finished_timed(
    store: SqliteStore,
    def: Definition<u64, ()>,
    id: RunId,
    iters: u64,
) -> Duration {
    let engines: Vec<Engine> = (0..iters)
        .map(|_| Engine::builder().store(Arc::new(store.clone())).build())
        .collect();
    let started = Instant::now();
    for engine in &engines {
        let report = engine
            .start(&def, id.clone(), 0)
            .await
            .expect("takes the run up")
            .wait()
            .await
            .expect("its outcome");
        black_box(report);
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(engines);
    elapsed
}

// ---------------------------------------------------------------------------------------------

fn durable(c: &mut Criterion) {
    let rt = runtime();
    let chain_40 = chain(CHAIN);
    let chain_10 = chain(CONCURRENT_CHAIN);

    rt.block_on(async {
        for sync in [Synchronous::Full, Synchronous::Normal] {
            check_sequential(sync, true, &chain_40).await;
            check_sequential(sync, false, &chain_40).await;
            check_bare(sync);
            check_concurrent(sync, false, &chain_10).await;
            check_concurrent(sync, true, &chain_10).await;
        }
        for backend in [
            Backend::SqliteMemory,
            Backend::MemoryRecording,
            Backend::Memory,
        ] {
            check_in_memory(backend, &chain_40).await;
        }
    });
    if let Some(pairs) = std::env::var("SAGAFLOW_BENCH_PAIRS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        rt.block_on(paired(pairs, &chain_40, &chain_10));
        return;
    }
    let big = rt.block_on(on_worker_value(big_run()));

    // 1. One durable step after another, against one commit after another.
    let mut group = c.benchmark_group("sequential_chain_40");
    group.throughput(Throughput::Elements(CHAIN as u64));
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let name = sync_name(sync).to_lowercase();
        group.bench_function(format!("sagaflow_{name}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(sequential_timed(
                    Backend::File(sync),
                    chain_40.clone(),
                    iters,
                ))
            });
        });
        group.bench_function(format!("sagaflow_{name}_writer_thread"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(sequential_timed(
                    Backend::FileWriterThread(sync),
                    chain_40.clone(),
                    iters,
                ))
            });
        });
        group.bench_function(format!("sagaflow_{name}_compact"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(sequential_timed(
                    Backend::Compact(sync),
                    chain_40.clone(),
                    iters,
                ))
            });
        });
        group.bench_function(format!("bare_commit_{name}"), |b| {
            b.iter_custom(|iters| bare_timed(sync, iters));
        });
    }
    group.finish();

    // 2. 100 runs at once: durable steps per second, by group commit.
    let mut group = c.benchmark_group("concurrent_100_runs");
    group.throughput(Throughput::Elements(
        (CONCURRENT_RUNS * CONCURRENT_CHAIN) as u64,
    ));
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let name = sync_name(sync).to_lowercase();
        for (suffix, backend) in [
            ("", Backend::File(sync)),
            ("_compact", Backend::Compact(sync)),
        ] {
            group.bench_function(format!("sagaflow_{name}{suffix}"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    on_worker(concurrent_timed(backend, chain_10.clone(), iters))
                });
            });
        }
    }
    group.finish();

    // 3. What a 40-step chain of no-op steps costs with NORMAL, and where it goes.
    let mut group = c.benchmark_group("chain_40_overhead");
    for (name, backend) in [
        ("sqlite_file_normal", Backend::File(Synchronous::Normal)),
        ("sqlite_in_memory", Backend::SqliteMemory),
        ("memory_store_recording", Backend::MemoryRecording),
        ("engine_in_memory", Backend::Memory),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| on_worker(sequential_timed(backend, chain_40.clone(), iters)));
        });
    }
    group.finish();

    // 4. Reading a finished 10,000-step run back.
    let mut group = c.benchmark_group("reload_10000");
    group.sample_size(10);
    group.bench_function("load_run", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| on_worker(load_timed(big.store.clone(), big.id.clone(), iters)));
    });
    group.bench_function("start_finished", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            on_worker(start_finished_timed(
                big.store.clone(),
                big.def.clone(),
                big.id.clone(),
                iters,
            ))
        });
    });
    group.finish();

    drop(big);
}

/// `SAGAFLOW_BENCH_PAIRS=n`: issue 17's protocol for items 1 and 2, instead of the groups. Each
/// of `n` pairs times, back to back and in alternating order, 25 runs of the 40-step chain with
/// FULL against 25 × 40 bare commits, and 5 rounds of 100 concurrent 10-step runs against
/// 1,000 bare commits; it prints each pair's ratios, then their medians. A pair shares the
/// disk's mood of its moment, which swings the absolute figures by 2× between minutes. Each
/// pair times sagaflow's runs twice, on a plain log and on a compact one
/// (`SqliteOptions::compact_log`), against the same bare commits.
async fn paired(pairs: usize, chain_40: &Definition<u64, u64>, chain_10: &Definition<u64, u64>) {
    const RUNS: u64 = 25;
    const ROUNDS: u64 = 5;
    let bare = |runs: u64| tokio::task::block_in_place(|| bare_timed(Synchronous::Full, runs));
    let sync = Synchronous::Full;
    let logs = [Backend::File(sync), Backend::Compact(sync)];
    let (mut sequential, mut concurrent) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for pair in 0..pairs {
        let mut steps = [Duration::ZERO; 2];
        let floor = if pair % 2 == 0 {
            for (log, step) in logs.iter().zip(&mut steps) {
                *step = on_worker(sequential_timed(*log, chain_40.clone(), RUNS)).await;
            }
            bare(RUNS)
        } else {
            let floor = bare(RUNS);
            for (log, step) in logs.iter().zip(&mut steps).rev() {
                *step = on_worker(sequential_timed(*log, chain_40.clone(), RUNS)).await;
            }
            floor
        };
        let mut many = [Duration::ZERO; 2];
        for (log, many) in logs.iter().zip(&mut many) {
            *many = on_worker(concurrent_timed(*log, chain_10.clone(), ROUNDS)).await;
        }
        let alone = bare(ROUNDS * (CONCURRENT_RUNS * CONCURRENT_CHAIN / CHAIN) as u64);
        let count = (RUNS * CHAIN as u64) as f64;
        let steps_done = (ROUNDS * (CONCURRENT_RUNS * CONCURRENT_CHAIN) as u64) as f64;
        let bare_rate = steps_done / alone.as_secs_f64();
        let mut line = format!(
            "pair {pair}: bare {:.1} µs a commit, {bare_rate:.0} commits/s;",
            floor.as_secs_f64() * 1e6 / count
        );
        for (i, name) in ["plain", "compact"].into_iter().enumerate() {
            let ratio = steps[i].as_secs_f64() / floor.as_secs_f64();
            let rate = steps_done / many[i].as_secs_f64();
            line += &format!(
                " {name}: sequential {:.1} µs a step {ratio:.3}×, 100 runs {rate:.0} steps/s {:.2}×;",
                steps[i].as_secs_f64() * 1e6 / count,
                rate / bare_rate
            );
            sequential[i].push(ratio);
            concurrent[i].push(rate / bare_rate);
        }
        println!("{}", line.trim_end_matches(';'));
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (i, name) in ["plain", "compact"].into_iter().enumerate() {
        println!(
            "median of {pairs} pairs, {name} log: sequential {:.3}× the bare commit, 100 runs \
             {:.2}× the bare commit rate",
            median(&sequential[i]),
            median(&concurrent[i])
        );
    }
}

/// Runs `fut` on a worker and hands back its value.
async fn on_worker_value<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(fut).await.expect("the task ends")
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = durable
}
criterion_main!(benches);
