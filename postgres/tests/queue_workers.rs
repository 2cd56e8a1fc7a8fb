//! Queues over several processes: workers are child processes of this test binary (each runs
//! the test of the same name with `SAGAFLOW_QUEUE_WORKER` set, and becomes a worker), each an
//! engine on its own `PgStore` that serves one queue with the bounds the test gives it; the
//! test enqueues from its own engine, waits for the outcomes, and checks the bounds from the
//! store's own timestamps (`runs.started_at`, set when a run is first taken up from its queue,
//! and `runs.updated_at`, its end, both by the server's clock). Every step also writes a row of
//! its own (`effects`, on the worker's own connection, with the server's clock) as a real side
//! effect would, so that "each once" is counted outside the store's transactions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::store::inspect::Inspect as _;
use sagaflow_core::runtime::{Builder, Definition, Engine, Enqueue, Serve, StepError};
use sagaflow_postgres::inspect::PgInspector;
use sagaflow_postgres::{PgOptions, PgStore};
use tokio_postgres::{Client, NoTls};

/// Set in a worker process: its settings, as `key=value;…`.
const WORKER: &str = "SAGAFLOW_QUEUE_WORKER";

/// The queue every test uses.
const QUEUE: &str = "jobs";

/// One test at a time: each runs three workers on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a worker is told.
#[derive(Debug, Clone, Default)]
struct Settings {
    /// The URL the store connects to (PgBouncer's, for `pooled`).
    url: String,
    /// The server's URL itself, for the effects.
    direct: String,
    schema: String,
    owner: String,
    at_most: usize,
    overall: usize,
    per_key: usize,
    rate: usize,
    rate_ms: u64,
    step_ms: u64,
    poll_ms: u64,
    pooled: bool,
}

impl Settings {
    fn encode(&self) -> String {
        format!(
            "url={};direct={};schema={};owner={};at_most={};overall={};per_key={};rate={};rate_ms={};step_ms={};poll_ms={};pooled={}",
            self.url,
            self.direct,
            self.schema,
            self.owner,
            self.at_most,
            self.overall,
            self.per_key,
            self.rate,
            self.rate_ms,
            self.step_ms,
            self.poll_ms,
            u8::from(self.pooled)
        )
    }

    fn decode(text: &str) -> Settings {
        let get = |key: &str| {
            text.split(';')
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no `{key}` in {text}"))
                .to_owned()
        };
        let num = |key: &str| get(key).parse::<u64>().unwrap();
        Settings {
            url: get("url"),
            direct: get("direct"),
            schema: get("schema"),
            owner: get("owner"),
            at_most: usize::try_from(num("at_most")).unwrap(),
            overall: usize::try_from(num("overall")).unwrap(),
            per_key: usize::try_from(num("per_key")).unwrap(),
            rate: usize::try_from(num("rate")).unwrap(),
            rate_ms: num("rate_ms"),
            step_ms: num("step_ms"),
            poll_ms: num("poll_ms"),
            pooled: num("pooled") == 1,
        }
    }

    /// The queue as this worker serves it (0: no such bound).
    fn serve(&self) -> Serve {
        let mut serve = Serve::queue(QUEUE);
        if self.at_most > 0 {
            serve = serve.at_most(self.at_most);
        }
        if self.overall > 0 {
            serve = serve.at_most_overall(self.overall);
        }
        if self.per_key > 0 {
            serve = serve.at_most_per_key(self.per_key);
        }
        if self.rate > 0 {
            serve = serve.rate(self.rate, Duration::from_millis(self.rate_ms));
        }
        serve
    }
}

/// The job: one step that writes its effect (with its start and end by the server's clock)
/// and returns its input plus one. The effects' client is the worker's; the test's engine,
/// which never runs the step, has none.
fn job(effects: Option<(Arc<Client>, String)>, step_ms: u64) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Job");
    let input = b.input();
    let out = b.step("work", StepOptions::new(), (input,), move |ctx, (n,)| {
        let (effects, n, run) = (effects.clone(), *n, ctx.run_id().as_str().to_owned());
        async move {
            let Some((client, owner)) = effects else {
                return Err(StepError::permanent("this engine runs no job"));
            };
            let id: i64 = client
                .query_one(
                    "INSERT INTO effects (run_id, worker, began) \
                     VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) \
                     RETURNING id",
                    &[&run, &owner],
                )
                .await
                .map_err(|e| StepError::new(e.to_string()))?
                .get(0);
            tokio::time::sleep(Duration::from_millis(step_ms)).await;
            client
                .execute(
                    "UPDATE effects SET ended = (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
                     WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(|e| StepError::new(e.to_string()))?;
            Ok(n + 1)
        }
    });
    b.build_with_output(out)
}

/// In a worker process: serves the queue until the test closes its standard input, then
/// exits. Otherwise `false`.
async fn as_worker() -> bool {
    let Ok(text) = std::env::var(WORKER) else {
        return false;
    };
    let settings = Settings::decode(&text);
    let (client, connection) = tokio_postgres::connect(&settings.direct, NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path TO \"{}\"", settings.schema))
        .await
        .unwrap();
    let options = PgOptions::default()
        .schema(&settings.schema)
        .owner(&settings.owner)
        .lease(Duration::from_secs(10));
    let options = if settings.pooled {
        options.transaction_pooling(true)
    } else {
        options
    };
    let store = PgStore::connect(&settings.url, options).await.unwrap();
    let engine = Engine::builder()
        .store(Arc::new(store))
        .takeover_every(Duration::from_millis(settings.poll_ms))
        .build();
    engine
        .register(&job(
            Some((Arc::new(client), settings.owner.clone())),
            settings.step_ms,
        ))
        .unwrap();
    engine.serve(settings.serve()).unwrap();
    println!("@@ ready");
    // Until the test is done with it (or gone).
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await;
    std::process::exit(0);
}

/// The workers of a test, killed when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `n` workers running `test` with `settings` (each under an owner of its own), and
/// waits until each is serving.
fn start_workers(test: &str, n: usize, settings: &Settings) -> Workers {
    let mut workers = Workers(Vec::new());
    for i in 0..n {
        let mine = Settings {
            owner: format!("worker-{i}"),
            ..settings.clone()
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--test-threads=1", "--nocapture"])
            .env(WORKER, mine.encode())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the worker starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("worker {i} ended before it was ready"))
                .unwrap();
            if line.contains("@@ ready") {
                break;
            }
        }
        // Its further output is not read; keep the pipe open so that it never blocks.
        std::thread::spawn(move || for _ in lines {});
        workers.0.push(child);
    }
    workers
}

/// The test's side: a schema of its own with the `effects` table, the store migrated, and
/// an engine to enqueue with and wait from.
struct Setup {
    db: support::Db,
    client: Client,
    engine: Engine,
    def: Definition<u64, u64>,
}

async fn setup() -> Option<Setup> {
    let db = support::Db::new().await?;
    let store = PgStore::connect(&db.url, db.options().owner("test"))
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "SET search_path TO \"{}\";
             CREATE TABLE effects (id bigserial PRIMARY KEY, run_id text NOT NULL,
                 worker text NOT NULL, began bigint NOT NULL, ended bigint);",
            db.schema
        ))
        .await
        .unwrap();
    let engine = Engine::builder().store(Arc::new(store)).build();
    Some(Setup {
        db,
        client,
        engine,
        def: job(None, 0),
    })
}

impl Setup {
    fn settings(&self) -> Settings {
        Settings {
            url: self.db.url.clone(),
            direct: self.db.url.clone(),
            schema: self.db.schema.clone(),
            step_ms: 20,
            poll_ms: 100,
            rate_ms: 1000,
            ..Settings::default()
        }
    }

    /// Waits for every run of `runs` (`job-<k>` with input `k`) to complete with `k + 1`.
    async fn wait_all(&self, runs: impl Iterator<Item = u64>) {
        for k in runs {
            let report = tokio::time::timeout(Duration::from_secs(120), async {
                self.engine
                    .wait_for(&self.def, format!("job-{k}").as_str())
                    .await
                    .unwrap()
                    .wait()
                    .await
                    .unwrap()
            })
            .await
            .unwrap_or_else(|_| panic!("job-{k} did not complete within 120 s"));
            assert_eq!(*report.output, k + 1);
        }
    }

    /// Each run's `(key, started_at, ended_at)` as the store keeps them.
    async fn spans(&self) -> BTreeMap<String, (Option<String>, i64, i64)> {
        self.client
            .query(
                "SELECT run_id, queue_key, started_at, updated_at FROM runs \
                 WHERE queue = $1 AND status = 'completed'",
                &[&QUEUE],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row.get::<_, String>(0),
                    (row.get(1), row.get::<_, i64>(2), row.get::<_, i64>(3)),
                )
            })
            .collect()
    }

    /// Each run's effects, and the workers that ran any.
    async fn effects(&self) -> (BTreeMap<String, usize>, BTreeSet<String>) {
        let mut per_run = BTreeMap::new();
        let mut workers = BTreeSet::new();
        for row in self
            .client
            .query("SELECT run_id, worker FROM effects", &[])
            .await
            .unwrap()
        {
            *per_run.entry(row.get::<_, String>(0)).or_default() += 1;
            workers.insert(row.get::<_, String>(1));
        }
        (per_run, workers)
    }
}

/// The most intervals of `spans` open at once (an end at the instant another starts is not
/// an overlap).
fn most_at_once<'a>(spans: impl Iterator<Item = &'a (i64, i64)>) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (start, end) in spans {
        edges.push((*start, 1));
        edges.push((*end, -1));
    }
    // Ends before starts at the same instant.
    edges.sort();
    let (mut open, mut most) = (0_i32, 0_i32);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    usize::try_from(most).unwrap()
}

/// 1,000 runs enqueued, served by three worker processes with at most 4 at once each and 8
/// over all: every run completes, each step ran once (one effect a run), all three workers
/// ran some, and the store's own start and end times never have more than 8 runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_enqueued_runs_complete_once_over_three_workers_within_the_bound() {
    if as_worker().await {
        return;
    }
    let _serial = SERIAL.lock().await;
    let Some(setup) = setup().await else {
        return;
    };
    for k in 0..1000_u64 {
        setup
            .engine
            .enqueue(
                &setup.def,
                format!("job-{k}").as_str(),
                k,
                &Enqueue::on(QUEUE),
            )
            .await
            .unwrap();
    }
    let settings = Settings {
        at_most: 4,
        overall: 8,
        step_ms: 5,
        ..setup.settings()
    };
    let _workers = start_workers(
        "a_thousand_enqueued_runs_complete_once_over_three_workers_within_the_bound",
        3,
        &settings,
    );
    setup.wait_all(0..1000).await;
    let spans = setup.spans().await;
    assert_eq!(spans.len(), 1000);
    let most = most_at_once(
        spans
            .values()
            .map(|(_, s, e)| (*s, *e))
            .collect::<Vec<_>>()
            .iter(),
    );
    assert!(most <= 8, "{most} runs at once by the store's times");
    println!("at most {most} of the queue's runs at once (bound 8), by the store's times");
    let (effects, workers) = setup.effects().await;
    assert_eq!(effects.len(), 1000, "every run's step ran");
    assert!(
        effects.values().all(|n| *n == 1),
        "a step ran twice: {:?}",
        effects.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert_eq!(workers.len(), 3, "every worker ran some: {workers:?}");
    // What `sagaflow queues` reads: nothing waits or runs, a thousand started this minute,
    // and each worker's bounds as its heartbeat told them.
    let inspector = PgInspector::connect(&setup.db.url, &setup.db.schema)
        .await
        .unwrap();
    let queues = inspector.queues().await.unwrap();
    assert_eq!(queues.queues.len(), 1, "{queues:?}");
    let q = &queues.queues[0];
    assert_eq!((q.waiting, q.running, q.parked), (0, 0, 0), "{q:?}");
    assert_eq!(q.started_last_minute, 1000, "{q:?}");
    let replicas = inspector.replicas().await.unwrap();
    let serving: Vec<_> = replicas
        .replicas
        .iter()
        .filter(|r| {
            r.queues
                .iter()
                .any(|s| s.queue == QUEUE && s.overall == Some(8))
        })
        .map(|r| r.owner.as_str())
        .collect();
    assert_eq!(
        serving,
        ["worker-0", "worker-1", "worker-2"],
        "{replicas:?}"
    );
}

/// Runs of four keys, at most one per key at once and 10 starts a second over three worker
/// processes: by the store's times no two runs of one key overlap, and no second holds more
/// than 10 starts; runs of different keys did run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_rate_hold_over_three_workers() {
    if as_worker().await {
        return;
    }
    let _serial = SERIAL.lock().await;
    let Some(setup) = setup().await else {
        return;
    };
    for k in 0..32_u64 {
        let key = format!("service-{}", k % 4);
        setup
            .engine
            .enqueue(
                &setup.def,
                format!("job-{k}").as_str(),
                k,
                &Enqueue::on(QUEUE).key(key),
            )
            .await
            .unwrap();
    }
    let settings = Settings {
        per_key: 1,
        rate: 10,
        rate_ms: 1000,
        step_ms: 40,
        ..setup.settings()
    };
    let _workers = start_workers("keys_and_rate_hold_over_three_workers", 3, &settings);
    setup.wait_all(0..32).await;
    let spans = setup.spans().await;
    assert_eq!(spans.len(), 32);
    let mut by_key: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    for (key, start, end) in spans.values() {
        by_key
            .entry(key.clone().unwrap())
            .or_default()
            .push((*start, *end));
    }
    assert_eq!(by_key.len(), 4);
    for (key, runs) in &by_key {
        assert_eq!(most_at_once(runs.iter()), 1, "two runs of `{key}` at once");
    }
    let all: Vec<(i64, i64)> = spans.values().map(|(_, s, e)| (*s, *e)).collect();
    assert!(
        most_at_once(all.iter()) > 1,
        "no two keys ever ran side by side"
    );
    let mut starts: Vec<i64> = spans.values().map(|(_, s, _)| *s).collect();
    starts.sort_unstable();
    for (i, start) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .take_while(|s| **s < start + 1000)
            .count();
        assert!(within <= 10, "{within} starts in the second from {start}");
    }
    // 32 starts at 10 a second: the last no sooner than 3 s after the first.
    assert!(starts[31] - starts[0] >= 3000, "{starts:?}");
}

/// A backlog of 30 runs at priority 0 and then 10 at priority 5, enqueued before any worker
/// serves the queue, with at most 2 at once over three worker processes: every run of the
/// higher priority starts (by the store's times) before any of the lower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_starts_in_priority_order_over_three_workers() {
    if as_worker().await {
        return;
    }
    let _serial = SERIAL.lock().await;
    let Some(setup) = setup().await else {
        return;
    };
    for k in 0..40_u64 {
        let priority = if k < 30 { 0 } else { 5 };
        setup
            .engine
            .enqueue(
                &setup.def,
                format!("job-{k}").as_str(),
                k,
                &Enqueue::on(QUEUE).priority(priority),
            )
            .await
            .unwrap();
    }
    let settings = Settings {
        overall: 2,
        step_ms: 10,
        ..setup.settings()
    };
    let _workers = start_workers(
        "a_backlog_starts_in_priority_order_over_three_workers",
        3,
        &settings,
    );
    setup.wait_all(0..40).await;
    let spans = setup.spans().await;
    let start = |k: u64| spans[&format!("job-{k}")].1;
    let last_high = (30..40).map(start).max().unwrap();
    let first_low = (0..30).map(start).min().unwrap();
    assert!(
        last_high <= first_low,
        "a run of priority 0 started at {first_low}, before the last of priority 5 at {last_high}"
    );
    let all: Vec<(i64, i64)> = spans.values().map(|(_, s, e)| (*s, *e)).collect();
    assert!(most_at_once(all.iter()) <= 2);
}

/// Workers behind PgBouncer in transaction mode, where no notice reaches them (the pooler
/// drops notifications), polling every 200 ms: runs enqueued one by one over two seconds all
/// complete, each once, and each starts within a second of its enqueue by the store's times
/// (the poll, and the run's take-up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_go_on_by_polling_when_notices_are_lost() {
    if as_worker().await {
        return;
    }
    let _serial = SERIAL.lock().await;
    let Some(setup) = setup().await else {
        return;
    };
    let Some(bouncer) = support::bouncer::Bouncer::start(&setup.db.url, 4) else {
        return;
    };
    let settings = Settings {
        url: bouncer.url(),
        pooled: true,
        poll_ms: 200,
        step_ms: 5,
        ..setup.settings()
    };
    let _workers = start_workers(
        "claims_go_on_by_polling_when_notices_are_lost",
        3,
        &settings,
    );
    for k in 0..40_u64 {
        setup
            .engine
            .enqueue(
                &setup.def,
                format!("job-{k}").as_str(),
                k,
                &Enqueue::on(QUEUE),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    setup.wait_all(0..40).await;
    let waits: Vec<i64> = setup
        .client
        .query(
            "SELECT started_at - created_at FROM runs WHERE queue = $1 ORDER BY 1",
            &[&QUEUE],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(waits.len(), 40);
    println!("from enqueue to start, by the store's times: {waits:?} ms");
    assert!(
        waits.iter().all(|w| *w <= 1000),
        "a run waited more than a second: {waits:?}"
    );
    let (effects, _) = setup.effects().await;
    assert_eq!(effects.len(), 40);
    assert!(effects.values().all(|n| *n == 1));
}
