//! Durable steps per second with 1, 2 and 4 replicas on one PostgreSQL (issue 14): the same
//! work (`RUNS` runs of `STEPS` steps, each `x + 1`) split among the replicas, all started at
//! once. Each replica is a process of its own (this bench again, with `SAGAFLOW_BENCH_REPLICA`
//! set), an engine on a `PgStore` under its own owner id, with its own writer connection. The
//! replicas connect and get ready, then start their share together at the conductor's word;
//! the time is from that word to the last replica's end, as the conductor sees it. Rounds
//! alternate the replica counts; medians and their ratios to one replica are printed.
//!
//! `cargo bench --bench replicas` (the server from `SAGAFLOW_PG_URL`, by default the local
//! one; `SAGAFLOW_BENCH_ROUNDS` rounds, 3 by default; `SAGAFLOW_BENCH_RUNS`, 2000 by default;
//! `SAGAFLOW_BENCH_COUNTS`, the replica counts, `1,2,4` by default). With
//! `SAGAFLOW_BENCH_QUEUE=1` the runs are put on a queue first (not timed) and the replicas
//! serve it (issue 15: "throughput with 1, 2 and 4 replicas never drops as replicas are
//! added"); the time is then from the word to the last run's end as the store shows it.
//! Figures in `benches/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sagaflow::StepOptions;
use sagaflow::runtime::{Builder, Definition, Engine, Enqueue, StepError};
use sagaflow_postgres::{PgOptions, PgStore};

const STEPS: usize = 10;
const SCHEMA: &str = "bench_replicas";
const REPLICA: &str = "SAGAFLOW_BENCH_REPLICA";
const COUNTS: [usize; 3] = [1, 2, 4];

fn url() -> String {
    std::env::var("SAGAFLOW_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `steps` steps, each `x + 1`, each counted in `done` as it runs.
fn chain(steps: usize, done: &Arc<AtomicU64>) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Chain");
    let mut last = b.input();
    for i in 0..steps {
        let done = Arc::clone(done);
        last = b.step(
            format!("s{i}"),
            StepOptions::new(),
            (last,),
            move |_, (x,)| {
                done.fetch_add(1, Ordering::Relaxed);
                let x = *x;
                async move { Ok::<_, StepError>(x + 1) }
            },
        );
    }
    b.build_with_output(last)
}

/// Unix milliseconds, as every replica on this host counts them.
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

/// A replica: `index` of `replicas`, `runs` runs between them; says `ready`, waits for a line
/// on its input, runs its share at once, says `done`.
async fn replica(settings: &str) {
    let mut parts = settings.split(',').map(|p| p.parse::<usize>().unwrap());
    let (index, replicas, runs, round) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let queued = parts.next() == Some(1);
    // `SAGAFLOW_BENCH_WRITERS`: each replica's writer connections (`PgOptions::writers`).
    let writers = std::env::var("SAGAFLOW_BENCH_WRITERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(PgOptions::default().writers);
    let options = PgOptions::default()
        .schema(SCHEMA)
        .owner(format!("replica-{index}"))
        .writers(writers);
    let store = PgStore::connect(&url(), options).await.unwrap();
    let engine = Engine::builder()
        .store(Arc::new(store))
        .takeover_every(Duration::from_millis(50))
        .build();
    let counted = Arc::new(AtomicU64::new(0));
    let def = chain(STEPS, &counted);
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    if queued {
        // The runs wait on the queue: serve it until the conductor has seen them all end.
        engine.register(&def).unwrap();
        engine.serve(QUEUE).unwrap();
        println!("serving");
        let _ =
            tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
        println!("done");
        return;
    }
    // Its steps so far, every 2 ms, for the conductor's steady-state rate.
    let ticking = {
        let counted = Arc::clone(&counted);
        tokio::spawn(async move {
            loop {
                println!("tick {:.3} {}", unix_ms(), counted.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Every run of its share started at once, each in a task of its own, as requests of a
    // service would.
    let mut tasks = tokio::task::JoinSet::new();
    for k in (index..runs).step_by(replicas) {
        let (engine, def) = (engine.clone(), def.clone());
        tasks.spawn(async move {
            let id = format!("r{round}-{replicas}-{k}");
            let handle = engine.start(&def, id.as_str(), 0).await.unwrap();
            assert_eq!(*handle.wait().await.unwrap().output, STEPS as u64);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    ticking.abort();
    println!("tick {:.3} {}", unix_ms(), counted.load(Ordering::Relaxed));
    println!("done");
}

/// The queue of `SAGAFLOW_BENCH_QUEUE=1`.
const QUEUE: &str = "bench";

/// One measurement: `n` replicas, `runs` runs between them, on a fresh schema; steps/s. With
/// `queued`, the runs are put on a queue first (not timed) and the replicas serve it; the time
/// is from their word to the last run's end, as the store shows it.
async fn measure(
    admin: &tokio_postgres::Client,
    n: usize,
    runs: usize,
    round: usize,
    queued: bool,
) -> (f64, Option<f64>) {
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await
        .unwrap();
    // Made once here, so that the replicas' start-up does not race to migrate it.
    let conductor = PgStore::connect(
        &url(),
        PgOptions::default().schema(SCHEMA).owner("conductor"),
    )
    .await
    .unwrap();
    if queued {
        let engine = Engine::builder().store(Arc::new(conductor.clone())).build();
        let def = chain(STEPS, &Arc::new(AtomicU64::new(0)));
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..runs {
            let (engine, def) = (engine.clone(), def.clone());
            tasks.spawn(async move {
                engine
                    .enqueue(
                        &def,
                        format!("q{round}-{n}-{k}").as_str(),
                        0,
                        &Enqueue::on(QUEUE),
                    )
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }
    drop(conductor);
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for i in 0..n {
        let mut child = Command::new(&exe)
            .env(
                REPLICA,
                format!("{i},{n},{runs},{round},{}", u8::from(queued)),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        children.push((child, lines));
    }
    let began = Instant::now();
    for (child, _) in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    }
    if queued {
        for (_, lines) in &mut children {
            assert_eq!(lines.next().unwrap().unwrap(), "serving");
        }
        let target = i64::try_from(runs).unwrap();
        loop {
            let done: i64 = admin
                .query_one(
                    &format!("SELECT count(*) FROM {SCHEMA}.runs WHERE status = 'completed'"),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if done >= target {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = began.elapsed();
        for (child, _) in &mut children {
            writeln!(child.stdin.as_mut().unwrap(), "stop").unwrap();
        }
        for (child, lines) in &mut children {
            assert_eq!(lines.next().unwrap().unwrap(), "done");
            assert!(child.wait().unwrap().success());
        }
        return ((runs * STEPS) as f64 / took.as_secs_f64(), None);
    }
    let (ended, ticks) = tokio::task::spawn_blocking(move || {
        let mut ticks: Vec<Vec<(f64, u64)>> = Vec::new();
        for (child, lines) in &mut children {
            let mut mine = Vec::new();
            loop {
                let line = lines.next().unwrap().unwrap();
                if line == "done" {
                    break;
                }
                let mut parts = line.split(' ').skip(1);
                let at: f64 = parts.next().unwrap().parse().unwrap();
                let count: u64 = parts.next().unwrap().parse().unwrap();
                mine.push((at, count));
            }
            assert!(child.wait().unwrap().success());
            ticks.push(mine);
        }
        (Instant::now(), ticks)
    })
    .await
    .unwrap();
    let took = ended.duration_since(began);
    let total = (runs * STEPS) as f64;
    (total / took.as_secs_f64(), steady(&ticks, total))
}

/// The rate between the moments 20% and 80% of `total` steps were done, from each replica's
/// counts every 2 ms (the start and the end of a round, where processes start and the last
/// one finishes alone, left out).
fn steady(ticks: &[Vec<(f64, u64)>], total: f64) -> Option<f64> {
    // Every moment any replica told, and the steps done by all at it (each replica's last
    // count told by then).
    let mut moments: Vec<f64> = ticks.iter().flatten().map(|(at, _)| *at).collect();
    moments.sort_by(f64::total_cmp);
    let done_at = |t: f64| -> f64 {
        ticks
            .iter()
            .map(|mine| {
                mine.iter()
                    .take_while(|(at, _)| *at <= t)
                    .last()
                    .map_or(0.0, |(_, count)| *count as f64)
            })
            .sum()
    };
    let first_past = |share: f64| {
        moments
            .iter()
            .copied()
            .find(|t| done_at(*t) >= share * total)
    };
    let (from, to) = (first_past(0.2)?, first_past(0.8)?);
    (to > from).then(|| (done_at(to) - done_at(from)) / ((to - from) / 1e3))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    if let Ok(settings) = std::env::var(REPLICA) {
        replica(&settings).await;
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is taken.
    let rounds = env_usize("SAGAFLOW_BENCH_ROUNDS", 3);
    let runs = env_usize("SAGAFLOW_BENCH_RUNS", 2000);
    // `SAGAFLOW_BENCH_COUNTS=4` (or `1,2`): only these counts, as a profile of one wants.
    let counts: Vec<usize> = std::env::var("SAGAFLOW_BENCH_COUNTS").map_or_else(
        |_| COUNTS.to_vec(),
        |list| list.split(',').map(|n| n.trim().parse().unwrap()).collect(),
    );
    let (admin, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // A warm-up of each count, not counted.
    // `SAGAFLOW_BENCH_QUEUE=1`: the runs wait on a queue the replicas serve (issue 15).
    let queued = std::env::var("SAGAFLOW_BENCH_QUEUE").is_ok_and(|q| q == "1");
    for &n in &counts {
        measure(&admin, n, runs / 4, 0, queued).await;
    }
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); counts.len()];
    let mut steadies: Vec<Vec<f64>> = vec![Vec::new(); counts.len()];
    for round in 1..=rounds {
        for (i, n) in counts.iter().enumerate() {
            let (rate, steady) = measure(&admin, *n, runs, round, queued).await;
            match steady {
                Some(steady) => {
                    println!(
                        "round {round}: {n} replica(s): {rate:.0} steps/s (steady: {steady:.0})"
                    );
                    steadies[i].push(steady);
                }
                None => println!("round {round}: {n} replica(s): {rate:.0} steps/s"),
            }
            figures[i].push(rate);
        }
    }
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await
        .unwrap();
    let one = median(figures[0].clone());
    println!(
        "{runs} runs of {STEPS} steps, split among the replicas, started together; medians of {rounds} rounds:"
    );
    for (i, n) in counts.iter().enumerate() {
        let m = median(figures[i].clone());
        println!(
            "  {n} replica(s): {m:>8.0} steps/s  ({:.2}x one replica)",
            m / one
        );
    }
    if steadies.iter().all(|s| !s.is_empty()) {
        let one = median(steadies[0].clone());
        println!("steady state (the rate between 20% and 80% of the steps done):");
        for (i, n) in counts.iter().enumerate() {
            let m = median(steadies[i].clone());
            println!(
                "  {n} replica(s): {m:>8.0} steps/s  ({:.2}x one replica)",
                m / one
            );
        }
    }
}
