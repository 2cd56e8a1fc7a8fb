//! The durable step on PostgreSQL against its floor, side by side in one run: the bare
//! single-row `INSERT` committed on its own, over the same kind of connection to the same
//! server. Rounds alternate between the contenders; the medians and their ratios are printed.
//!
//! `cargo bench --bench postgres` (the server from `SAGAFLOW_PG_URL`, by default the local one;
//! `SAGAFLOW_BENCH_ROUNDS` rounds, 3 by default; `SAGAFLOW_BENCH_ONLY=sequential` or
//! `concurrent` for one shape, `waves` for the compact log's concurrent runs alone, `steady`
//! for the compact log's 100 runs in waves and kept in flight, each against the 16 clients). Each round runs both shapes on two stores, each in a schema of its
//! own: one that keeps the log as before schema 10 (`compact_log(false)`, two rows for a step's
//! completion and the next one's start), one with the compact log (the default since
//! session 19: one row), and one with the compact log whose every write goes through the
//! writers' tasks (`commit_on_caller(false)`, as before session 26). Each contender's waves of
//! 100 runs are also printed in two parts: the starts (the creations committed) and the steps
//! after them. `SAGAFLOW_BENCH_TIMELINE=1` sums up each writer's batches as well, from their
//! trace (`sagaflow_postgres::BATCH_TRACE`). The concurrent rounds also run `pgbench` (16
//! clients, one single-row `INSERT` a transaction, the simple protocol), when it is installed,
//! and print the 100 runs against it as well. Figures in `benches/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "shared/timeline.rs"]
mod timeline;

use sagaflow::StepOptions;
use sagaflow::runtime::{Builder, Definition, Engine, StepError};
use sagaflow_postgres::{PgOptions, PgStore};
use tokio_postgres::NoTls;

const CHAIN: usize = 40;
const SEQUENTIAL_RUNS: usize = 10;
const CONCURRENT_RUNS: usize = 100;
/// How long each concurrent contender runs in a round.
const CONCURRENT_TIME: Duration = Duration::from_secs(3);
const CONCURRENT_STEPS: usize = 10;

/// A part of keys and run ids unique to this process, so that runs of the bench never meet.
fn salt() -> u128 {
    static SALT: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    })
}

/// A number no other call of this process gets.
fn next() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The server, over plain TCP for both contenders (the bare side has no TLS): by default the
/// local one, `sslmode=disable`; a `SAGAFLOW_PG_URL` must say `sslmode=disable` too.
fn url() -> String {
    std::env::var("SAGAFLOW_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

fn chain(steps: usize) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Chain");
    let mut last = b.input();
    for i in 0..steps {
        last = b.step(format!("s{i}"), StepOptions::new(), (last,), |_, (x,)| {
            let x = *x;
            async move { Ok::<_, StepError>(x + 1) }
        });
    }
    b.build_with_output(last)
}

async fn client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Microseconds per bare single-row INSERT, each committed on its own, one client.
async fn bare_sequential(n: usize) -> f64 {
    let client = client().await;
    let insert = client
        .prepare("INSERT INTO sagaflow_bench.bare (k, v) VALUES ($1, $2)")
        .await
        .unwrap();
    let began = Instant::now();
    for i in 0..n {
        let k = format!("k{i}-{}", next());
        client.execute(&insert, &[&k, &"x"]).await.unwrap();
    }
    began.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Commits per second of `clients` clients each doing single-row INSERTs for `time`.
async fn bare_concurrent(clients: usize, time: Duration) -> f64 {
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(async move {
            let client = client().await;
            let insert = client
                .prepare("INSERT INTO sagaflow_bench.bare (k, v) VALUES ($1, $2)")
                .await
                .unwrap();
            let began = Instant::now();
            let mut n = 0u64;
            while began.elapsed() < time {
                let k = format!("c{c}-{n}-{}", next());
                client.execute(&insert, &[&k, &"x"]).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / time.as_secs_f64()
}

/// Commits per second of `pgbench` with `clients` clients (2 threads) for `time`, each
/// transaction one single-row `INSERT` with a text key into a table like the bare one, in
/// pgbench's default (simple) protocol: the floor as the issue measured it. `None` without
/// `pgbench` on the `PATH` or in PostgreSQL's own directory.
async fn pgbench_concurrent(clients: usize, time: Duration) -> Option<f64> {
    let pgbench = ["pgbench", "/usr/lib/postgresql/15/bin/pgbench"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok()
        })?;
    let script = std::env::temp_dir().join(format!("sagaflow-pgbench-{}.sql", salt()));
    std::fs::write(
        &script,
        "\\set r random(1, 9223372036854775807)\n\
         INSERT INTO sagaflow_bench.bare (k, v) VALUES ('pgbench-' || :client_id || '-' || :r, 'x');\n",
    )
    .ok()?;
    let (url, script_path) = (url(), script.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(pgbench)
            .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T"])
            .arg(time.as_secs().max(1).to_string())
            .arg("-f")
            .arg(&script_path)
            .arg(&url)
            .output()
    })
    .await
    .ok()?
    .ok()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
}

/// Microseconds per durable step of sequential runs of a 40-step chain.
async fn sagaflow_sequential(engine: &Engine, round: usize) -> f64 {
    let def = chain(CHAIN);
    let began = Instant::now();
    for r in 0..SEQUENTIAL_RUNS {
        let report = engine
            .start(&def, format!("seq-{round}-{r}-{}", salt()), 0)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert_eq!(*report.output, CHAIN as u64);
    }
    began.elapsed().as_secs_f64() * 1e6 / (SEQUENTIAL_RUNS * CHAIN) as f64
}

/// Durable steps per second of 100 concurrent runs of a 10-step chain, started together, wave
/// after wave for `time` (as long as the bare clients commit). One wave is about 25 ms here:
/// timed alone (until session 16), it read the server's and the workers' warm-up as much as
/// sagaflow (a pause of 300 ms before it cost 12-19%).
///
/// Each wave's two parts go into `parts`: the time until every start has returned (the runs'
/// creations committed), and the rest, until every run has ended.
async fn sagaflow_concurrent(
    engine: &Engine,
    round: usize,
    time: Duration,
    parts: &mut Parts,
) -> f64 {
    let def = chain(CONCURRENT_STEPS);
    let began = Instant::now();
    let mut waves = 0;
    while waves == 0 || began.elapsed() < time {
        let wave = Instant::now();
        // Started together, as 100 requests arriving at once would start them.
        let handles = futures::future::join_all(
            (0..CONCURRENT_RUNS)
                .map(|r| engine.start(&def, format!("con-{round}-{waves}-{r}-{}", salt()), 0)),
        )
        .await;
        let started = wave.elapsed();
        for handle in handles {
            let handle = handle.unwrap();
            assert_eq!(
                *handle.wait().await.unwrap().output,
                CONCURRENT_STEPS as u64
            );
        }
        waves += 1;
        parts.starts.push(started.as_secs_f64() * 1e3);
        parts
            .steps
            .push((wave.elapsed() - started).as_secs_f64() * 1e3);
    }
    (waves * CONCURRENT_RUNS * CONCURRENT_STEPS) as f64 / began.elapsed().as_secs_f64()
}

/// Durable steps per second of 100 runs of a 10-step chain kept in flight for `time`: 100
/// tasks, each starting its next run as soon as its last one ended (no wave waits for its
/// slowest run). The runs still in flight at `time` finish and are counted.
async fn sagaflow_steady(engine: &Engine, round: usize, time: Duration) -> f64 {
    let def = chain(CONCURRENT_STEPS);
    let began = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_RUNS)
        .map(|r| {
            let (engine, def) = (engine.clone(), def.clone());
            tokio::spawn(async move {
                let mut runs = 0usize;
                while began.elapsed() < time {
                    let id = format!("steady-{round}-{r}-{runs}-{}", salt());
                    let report = engine
                        .start(&def, id, 0)
                        .await
                        .unwrap()
                        .wait()
                        .await
                        .unwrap();
                    assert_eq!(*report.output, CONCURRENT_STEPS as u64);
                    runs += 1;
                }
                runs
            })
        })
        .collect();
    let mut runs = 0;
    for task in tasks {
        runs += task.await.unwrap();
    }
    (runs * CONCURRENT_STEPS) as f64 / began.elapsed().as_secs_f64()
}

/// A contender's waves of 100 runs, each in two parts (milliseconds): its starts, and its
/// steps after the last start returned.
#[derive(Default)]
struct Parts {
    starts: Vec<f64>,
    steps: Vec<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A store the bench runs on: its options but the schema, and what its figures are called.
struct Contender {
    name: &'static str,
    schema: &'static str,
    options: PgOptions,
}

fn main() {
    // `SAGAFLOW_BENCH_THREADS`: the runtime's worker threads (2 by default; 1 shows what the
    // hand-offs between threads cost).
    let threads = std::env::var("SAGAFLOW_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    // `SAGAFLOW_BENCH_TIMELINE=1`: each writer's batches, as their trace reports them, summed
    // up at the end (with `SAGAFLOW_BENCH_ONLY=waves`, the compact log's writers alone).
    let timeline = std::env::var_os("SAGAFLOW_BENCH_TIMELINE").map(|_| {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let timeline = timeline::Timeline::default();
        let batches = tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() == sagaflow_postgres::BATCH_TRACE
        });
        let subscriber = tracing_subscriber::registry().with(timeline.clone().with_filter(batches));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        timeline
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rounds: usize = std::env::var("SAGAFLOW_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3);
        // `SAGAFLOW_BENCH_WRITERS`: the store's writer connections (`PgOptions::writers`).
        let writers = std::env::var("SAGAFLOW_BENCH_WRITERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(PgOptions::default().writers);
        let options = PgOptions::default().writers(writers);
        let contenders = [
            Contender {
                name: "two-row log",
                schema: "sagaflow_bench",
                options: options.clone().compact_log(false),
            },
            Contender {
                name: "compact log",
                schema: "sagaflow_bench_compact",
                options: options.clone().compact_log(true),
            },
            Contender {
                name: "compact, via the writer",
                schema: "sagaflow_bench_handed",
                options: options.clone().compact_log(true).commit_on_caller(false),
            },
        ];
        let drop_all = contenders
            .iter()
            .map(|c| format!("DROP SCHEMA IF EXISTS {} CASCADE;", c.schema))
            .collect::<String>();
        let setup = client().await;
        setup
            .batch_execute(&format!(
                "{drop_all} CREATE SCHEMA sagaflow_bench;
                 CREATE TABLE sagaflow_bench.bare (k text PRIMARY KEY, v text NOT NULL);"
            ))
            .await
            .unwrap();
        let mut stores = Vec::new();
        for c in &contenders {
            let store = PgStore::connect(&url(), c.options.clone().schema(c.schema))
                .await
                .unwrap();
            let engine = Engine::builder().store(Arc::new(store.clone())).build();
            stores.push((store, engine));
        }
        let (mut bare_seq, mut bare_con, mut pgb) = (Vec::new(), Vec::new(), Vec::new());
        let mut seq = vec![Vec::new(); contenders.len()];
        let mut con = vec![Vec::new(); contenders.len()];
        let mut parts: Vec<Parts> = contenders.iter().map(|_| Parts::default()).collect();
        // A warm-up of each.
        bare_sequential(200).await;
        for (_, engine) in &stores {
            sagaflow_sequential(engine, 999).await;
        }
        // `SAGAFLOW_BENCH_ONLY=concurrent` (or `sequential`) runs one shape alone, as a profile
        // of it wants; `waves`, the compact log's 100 concurrent runs alone, 3 s a round, and
        // nothing else between them (for `perf record`).
        let only = std::env::var("SAGAFLOW_BENCH_ONLY").unwrap_or_default();
        let measured = Instant::now();
        for round in 0..rounds {
            // Each round starts with the next contender, so that none always runs first; every
            // other cycle of rounds runs them in the reverse order, so that none always runs
            // right after the same one either (with 3 contenders, 6 rounds give each ordered
            // pair twice: the rotation alone ran the compact log after the two-row log whenever
            // it was not first, benches/README.md, session 27).
            let n = stores.len();
            let forward = (round / n) % 2 == 0;
            let order = (0..n).map(move |i| {
                let k = (i + round) % n;
                if forward { k } else { n - 1 - k }
            });
            if !["concurrent", "waves", "steady"].contains(&only.as_str()) {
                bare_seq.push(bare_sequential(SEQUENTIAL_RUNS * CHAIN).await);
                for i in order.clone() {
                    seq[i].push(sagaflow_sequential(&stores[i].1, round).await);
                }
            }
            if only == "steady" {
                // The 16 bare clients, then the compact log's 100 runs in waves and kept in
                // flight, in turns.
                bare_con.push(bare_concurrent(16, CONCURRENT_TIME).await);
                let (engine, time) = (&stores[1].1, CONCURRENT_TIME);
                let waves = sagaflow_concurrent(engine, round, time, &mut parts[1]).await;
                let steady = sagaflow_steady(engine, round, time).await;
                let bare = bare_con.last().copied().unwrap_or(f64::NAN);
                println!(
                    "round {round}: bare {bare:.0}/s; waves {waves:.0} steps/s ({:.2}×); 100 in flight {steady:.0} steps/s ({:.2}×)",
                    waves / bare,
                    steady / bare
                );
                continue;
            }
            if only == "waves" {
                let time = CONCURRENT_TIME;
                con[1].push(sagaflow_concurrent(&stores[1].1, round, time, &mut parts[1]).await);
            } else if only != "sequential" {
                bare_con.push(bare_concurrent(16, CONCURRENT_TIME).await);
                pgb.push(pgbench_concurrent(16, CONCURRENT_TIME).await.unwrap_or(f64::NAN));
                for i in order {
                    let (store, time) = (&stores[i].1, CONCURRENT_TIME);
                    con[i].push(sagaflow_concurrent(store, round, time, &mut parts[i]).await);
                }
            }
        }
        if only == "steady" {
            // Its figures are printed round by round, above.
            setup.batch_execute(&drop_all).await.unwrap();
            return;
        }
        // Every round's figures, each contender's against the bare commits of its own round.
        let at = |figures: &[f64], round: usize| figures.get(round).copied().unwrap_or(f64::NAN);
        for round in 0..bare_seq.len().max(bare_con.len()) {
            let (b_seq, b_con) = (at(&bare_seq, round), at(&bare_con, round));
            let ratios = |figures: &[Vec<f64>], bare: f64| -> String {
                figures
                    .iter()
                    .map(|f| format!("{:.2}×", at(f, round) / bare))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let b_pgb = at(&pgb, round);
            println!(
                "round {round}: sequential {} (bare {b_seq:.1} µs); concurrent {} (bare {b_con:.0}/s); against pgbench {} ({b_pgb:.0}/s)",
                ratios(&seq, b_seq),
                ratios(&con, b_con),
                ratios(&con, b_pgb)
            );
        }
        let (bs, bc) = (median(bare_seq), median(bare_con));
        println!("rounds: {rounds} (medians); writer connections: {writers}");
        println!("bare INSERT + COMMIT, 1 client:          {bs:8.1} µs");
        println!("bare INSERT + COMMIT, 16 clients:         {bc:8.0} commits/s");
        let bp = median(pgb);
        println!("pgbench INSERT, 16 clients (simple):      {bp:8.0} commits/s (NaN: no pgbench found)");
        for (i, c) in contenders.iter().enumerate() {
            let (fs, fc) = (median(std::mem::take(&mut seq[i])), median(std::mem::take(&mut con[i])));
            let name = c.name;
            println!("{name:<24} sequential step: {fs:8.1} µs   ratio {:.2}× the bare commit", fs / bs);
            println!("{name:<24} 100 concurrent runs: {fc:8.0} steps/s   ratio {:.2}× the 16-client commit rate ({:.2}× pgbench's)", fc / bc, fc / bp);
        }
        for (c, (store, _)) in contenders.iter().zip(&stores) {
            println!(
                "{:<24} writer: {} writes in {} commits ({:.1} a commit), {} committed by their callers",
                c.name,
                store.writes(),
                store.commits(),
                store.writes() as f64 / store.commits().max(1) as f64,
                store.writes_on_caller()
            );
        }
        // Where a wave of 100 runs spends its time: its 100 creations, then its 1,000 steps.
        for (c, parts) in contenders.iter().zip(parts) {
            if parts.starts.is_empty() {
                continue;
            }
            let waves = parts.starts.len();
            let (starts, steps) = (median(parts.starts), median(parts.steps));
            println!(
                "{:<24} waves: {waves}, medians: starts {starts:.2} ms, then steps {steps:.2} ms ({:.2} ms a step of the 100)",
                c.name,
                steps / CONCURRENT_STEPS as f64
            );
        }
        for line in timeline.iter().flat_map(|t| t.summary(measured)) {
            println!("{line}");
        }
        setup.batch_execute(&drop_all).await.unwrap();
    });
}
