//! DBOS Rust (the `dbos` crate) on the shapes of sagaflow's `benches/postgres.rs`: µs per durable
//! step over sequential workflows of 40 steps, and steps/s of 100 concurrent workflows of 10
//! steps, every step returning `x + 1`. The server from `DBOS_BENCH_URL` (a database of its own:
//! DBOS migrates its schema into it), rounds from `DBOS_BENCH_ROUNDS` (3 by default); medians.

use std::time::Instant;

use dbos::{Config, DBOS};

const CHAIN: u64 = 40;
const SEQUENTIAL_RUNS: usize = 5;
const CONCURRENT_RUNS: usize = 100;
const CONCURRENT_STEPS: u64 = 10;

/// A workflow of `steps` sequential durable steps, each returning its input + 1.
async fn chain(steps: u64) -> dbos::Result<u64> {
    let mut x = 0u64;
    for i in 0..steps {
        x = dbos::step(
            &format!("s{i}"),
            move || async move { dbos::Result::Ok(x + 1) },
        )
        .await?;
    }
    Ok(x)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let url = std::env::var("DBOS_BENCH_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/dbos_bench".to_owned());
        let rounds: usize = std::env::var("DBOS_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3);
        let dbos = DBOS::new(Config {
            app_version: Some("dbos-rust-bench-1".to_owned()),
            ..Config::new("dbos-rust-bench", url)
        });
        let chain = dbos.register_workflow("chain", chain).expect("registered");
        dbos.launch().await.expect("DBOS launched");

        let sequential = async || {
            let began = Instant::now();
            for _ in 0..SEQUENTIAL_RUNS {
                assert_eq!(chain.run(CHAIN).await.expect("a workflow"), CHAIN);
            }
            began.elapsed().as_secs_f64() * 1e6 / (SEQUENTIAL_RUNS as f64 * CHAIN as f64)
        };
        let concurrent = async || {
            let began = Instant::now();
            let runs = (0..CONCURRENT_RUNS).map(|_| chain.run(CONCURRENT_STEPS));
            for out in futures::future::join_all(runs).await {
                assert_eq!(out.expect("a workflow"), CONCURRENT_STEPS);
            }
            (CONCURRENT_RUNS as f64 * CONCURRENT_STEPS as f64) / began.elapsed().as_secs_f64()
        };

        // A warm-up of each.
        sequential().await;
        concurrent().await;
        let (mut seq, mut con) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            seq.push(sequential().await);
            con.push(concurrent().await);
        }
        println!(
            "rounds: {rounds} (medians); sequential {seq:.0?} µs; concurrent {con:.0?} steps/s"
        );
        println!(
            "DBOS Rust durable step, sequential:     {:8.1} µs",
            median(seq)
        );
        println!(
            "DBOS Rust, 100 concurrent workflows:    {:8.0} steps/s",
            median(con)
        );
        dbos.shutdown().await;
    });
}
