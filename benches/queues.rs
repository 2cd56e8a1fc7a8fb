//! How soon an enqueued run starts on an idle engine serving its queue (issue 15): one engine
//! enqueues runs one at a time on a store of its own, another (an idle replica, on a store of
//! its own, with its poll once a minute so that only the enqueue's notice wakes it) serves the
//! queue; the time from just before `enqueue` to the first step's start, as the step sees it,
//! in one process. Beside it, the same one-step run started in process (`start`) on the
//! serving engine, as the floor. Medians and the 99th percentile of `SAMPLES` runs each,
//! alternated.
//!
//! Beside both, a bare single-row `INSERT` committed on its own, on the same server: one round
//! trip that commits, as a claim does; the difference between the two medians is reported in
//! such commits (issue 15: claiming adds at most one round trip per run).
//!
//! `cargo bench --bench queues` (the server from `SAGAFLOW_PG_URL`, by default the local one;
//! `SAGAFLOW_BENCH_BOUNDED=1` for a queue with a bound over all engines, its runs admitted;
//! `SAGAFLOW_BENCH_SAMPLES`, 300 by default). Figures in `benches/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sagaflow::StepOptions;
use sagaflow::runtime::{Builder, Definition, Engine, Enqueue, Serve, StepError};
use sagaflow_postgres::{PgOptions, PgStore};

const SCHEMA: &str = "bench_queues";

fn url() -> String {
    std::env::var("SAGAFLOW_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

/// One step that notes when it started.
fn noted(started: &Arc<Mutex<Option<Instant>>>) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Noted");
    let input = b.input();
    let started = Arc::clone(started);
    let out = b.step("note", StepOptions::new(), (input,), move |_, (x,)| {
        started.lock().unwrap().get_or_insert_with(Instant::now);
        let x = *x;
        async move { Ok::<_, StepError>(x + 1) }
    });
    b.build_with_output(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn show(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let (p50, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    println!(
        "  {name:<34} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  ({} runs)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );
    (p50, p99)
}

#[tokio::main]
async fn main() {
    let samples: usize = std::env::var("SAGAFLOW_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (admin, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await
        .unwrap();
    let store = |owner: &str| {
        let options = PgOptions::default().schema(SCHEMA).owner(owner);
        async move { PgStore::connect(&url(), options).await.unwrap() }
    };
    let started = Arc::new(Mutex::new(None));
    let def = noted(&started);
    let worker = Engine::builder()
        .store(Arc::new(store("worker").await))
        .takeover_every(Duration::from_secs(60))
        .build();
    worker.register(&def).unwrap();
    // `SAGAFLOW_BENCH_BOUNDED=1`: the queue with a bound over all engines (far above what
    // runs), so that each run is reserved under the queue's lock (`QueueStore::admit`)
    // instead of claimed.
    let bounded = std::env::var("SAGAFLOW_BENCH_BOUNDED").is_ok_and(|v| v == "1");
    if bounded {
        worker
            .serve(Serve::queue("bench").at_most_overall(1_000))
            .unwrap();
    } else {
        worker.serve("bench").unwrap();
    }
    let client = Engine::builder()
        .store(Arc::new(store("client").await))
        .build();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One round trip that commits, as the claim does: a bare single-row INSERT, committed on
    // its own, over the same kind of connection.
    admin
        .batch_execute(&format!(
            "CREATE TABLE {SCHEMA}.bare (k text PRIMARY KEY, v text NOT NULL)"
        ))
        .await
        .unwrap();
    let insert = admin
        .prepare(&format!("INSERT INTO {SCHEMA}.bare (k, v) VALUES ($1, $2)"))
        .await
        .unwrap();

    let (mut queued, mut local, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..samples + 20 {
        // Enqueued elsewhere, run here.
        *started.lock().unwrap() = None;
        let id = format!("q-{k}");
        let began = Instant::now();
        client
            .enqueue(&def, id.as_str(), 1, &Enqueue::on("bench"))
            .await
            .unwrap();
        let report = client.wait_for(&def, id.as_str()).await.unwrap();
        report.wait().await.unwrap();
        let at = started.lock().unwrap().expect("the step started");
        // Started in process.
        *started.lock().unwrap() = None;
        let id = format!("s-{k}");
        let began_local = Instant::now();
        worker
            .start(&def, id.as_str(), 1)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let at_local = started.lock().unwrap().expect("the step started");
        let began_bare = Instant::now();
        admin.execute(&insert, &[&id, &"v"]).await.unwrap();
        let at_bare = Instant::now();
        // The first 20 warm up.
        if k >= 20 {
            queued.push(at - began);
            local.push(at_local - began_local);
            bare.push(at_bare - began_bare);
        }
    }
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await
        .unwrap();
    println!("from the call to the first step's start, on {}:", url());
    let (q50, q99) = show("enqueued, run by an idle replica", queued);
    let (l50, l99) = show("started in process (the floor)", local);
    let (b50, _) = show("one bare commit (a round trip)", bare);
    println!(
        "  p99 enqueued against in process: {:.2}x",
        q99.as_secs_f64() / l99.as_secs_f64()
    );
    println!(
        "  enqueued minus in process, at the median: {:.2} ms = {:.2} bare commits",
        (q50.as_secs_f64() - l50.as_secs_f64()) * 1e3,
        (q50.as_secs_f64() - l50.as_secs_f64()) / b50.as_secs_f64()
    );
}
