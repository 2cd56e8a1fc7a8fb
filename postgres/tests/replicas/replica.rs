//! One replica: a child process of the test binary, on a host of its own (see `hosts`). It
//! runs an engine on the shared PostgreSQL store under its own owner id, with a short lease
//! and a fast takeover loop, registers the workflow and starts its share of the runs (replica
//! `i` of `n` starts runs `i`, `i + n`, …); runs that others leave behind it takes up by
//! itself.
//!
//! Every step has a side effect outside the store's transactions, as a real one would: an
//! `INSERT` into the test's `effects` table on a connection of its own, with a nonce that the
//! step returns as its output. The output the event log keeps for a completed step thus names
//! the one execution whose completion was recorded, and every other row of that step is an
//! execution that was interrupted.
//!
//! It tells the test what happens on its standard output, one `@@ ` line each; it drains on
//! SIGTERM (and exits), and exits when its standard input closes (the test ended, or died).

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sagaflow_core::runtime::engine::Engine;
use sagaflow_core::runtime::{Builder, Definition, RunError, StepContext, StepError, StoreError};
use sagaflow_core::{RetryPolicy, StepOptions};
use sagaflow_postgres::{PgOptions, PgStore};
use tokio::sync::RwLock;
use tokio_postgres::{Client, NoTls};

/// Set in a child process: the replica's settings, as `key=value;…`.
pub(crate) const REPLICA: &str = "SAGAFLOW_REPLICA";

/// The workflow every replica runs.
pub(crate) const WORKFLOW: &str = "Replicated";

/// How long the drain lets running steps end.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// What a replica is told.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) owner: String,
    pub(crate) index: usize,
    pub(crate) replicas: usize,
    pub(crate) runs: usize,
    pub(crate) steps: usize,
    pub(crate) step_ms: u64,
    pub(crate) lease_ms: u64,
    pub(crate) takeover_ms: u64,
    /// Whether it starts its share of the runs (a replica started in another's place, as in a
    /// rolling upgrade, does not: it only takes runs up). Builds before b5ce0d2 do not know the
    /// key and ignore it; keep every key as it is, for the previous build's replicas need them.
    pub(crate) starts: bool,
}

impl Settings {
    /// The settings as the environment variable carries them.
    pub(crate) fn encode(&self) -> String {
        format!(
            "url={};schema={};owner={};index={};replicas={};runs={};steps={};step_ms={};lease_ms={};takeover_ms={};starts={}",
            self.url,
            self.schema,
            self.owner,
            self.index,
            self.replicas,
            self.runs,
            self.steps,
            self.step_ms,
            self.lease_ms,
            self.takeover_ms,
            u8::from(self.starts)
        )
    }

    fn decode(text: &str) -> Settings {
        let find = |key: &str| {
            text.split(';')
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        };
        let get = |key: &str| {
            find(key)
                .unwrap_or_else(|| panic!("no `{key}` in {text}"))
                .to_owned()
        };
        let num = |key: &str| get(key).parse::<u64>().expect("a number");
        Settings {
            url: get("url"),
            schema: get("schema"),
            owner: get("owner"),
            index: num("index") as usize,
            replicas: num("replicas") as usize,
            runs: num("runs") as usize,
            steps: num("steps") as usize,
            step_ms: num("step_ms"),
            lease_ms: num("lease_ms"),
            takeover_ms: num("takeover_ms"),
            starts: find("starts") != Some("0"),
        }
    }
}

/// The run ids, in the order runs are numbered.
pub(crate) fn run_id(k: usize) -> String {
    format!("run-{k:04}")
}

/// Milliseconds since the epoch, by this host's clock (every replica's host shares the
/// machine's clock with the test).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn say(line: &str) {
    println!("@@ {line}");
}

/// The effects table, as the test creates it before any replica starts.
pub(crate) const EFFECTS_SQL: &str = "CREATE TABLE effects (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id   text   NOT NULL,
    step     text   NOT NULL,
    attempt  integer NOT NULL,
    owner    text   NOT NULL,
    nonce    text   NOT NULL UNIQUE,
    begun_ms bigint NOT NULL
)";

/// A step's side effect: a row of `effects`, on connections of the replica's own, each
/// made again once it is found closed (the server restarted).
struct Effects {
    url: String,
    owner: String,
    slots: Vec<RwLock<Arc<Client>>>,
    next: AtomicUsize,
    nonce: AtomicU64,
}

async fn connect_client(url: &str) -> Result<Client, String> {
    let connecting = tokio_postgres::connect(url, NoTls);
    match tokio::time::timeout(Duration::from_secs(2), connecting).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            Ok(client)
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no connection within 2 s".to_owned()),
    }
}

impl Effects {
    async fn connect(url: &str, owner: &str, connections: usize) -> Effects {
        let mut slots = Vec::new();
        for _ in 0..connections {
            let made = connect_client(url).await.expect("the effects' connection");
            slots.push(RwLock::new(Arc::new(made)));
        }
        Effects {
            url: url.to_owned(),
            owner: owner.to_owned(),
            slots,
            next: AtomicUsize::new(0),
            nonce: AtomicU64::new(0),
        }
    }

    /// Does the step's effect; returns the nonce that names this execution.
    async fn record(&self, ctx: &StepContext) -> Result<String, StepError> {
        let nonce = format!(
            "{}#{}",
            self.owner,
            self.nonce.fetch_add(1, Ordering::SeqCst)
        );
        let begun = now_ms();
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        let client = Arc::clone(&*slot.read().await);
        let attempt = i32::try_from(ctx.attempt()).unwrap_or(i32::MAX);
        let inserted = client
            .execute(
                "INSERT INTO public.effects (run_id, step, attempt, owner, nonce, begun_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &ctx.run_id().as_str(),
                    &ctx.step(),
                    &attempt,
                    &self.owner,
                    &nonce,
                    &begun,
                ],
            )
            .await;
        match inserted {
            Ok(_) => Ok(nonce),
            Err(error) => {
                if client.is_closed() {
                    let mut held = slot.write().await;
                    if Arc::ptr_eq(&held, &client)
                        && let Ok(fresh) = connect_client(&self.url).await
                    {
                        *held = Arc::new(fresh);
                    }
                }
                Err(StepError::new(format!(
                    "the effect of {}: {error}",
                    ctx.step()
                )))
            }
        }
    }
}

/// The workflow: `steps` steps in a chain, each its effect, then `step_ms` of work.
fn workflow(steps: usize, step_ms: u64, effects: &Arc<Effects>) -> Definition<u32, String> {
    // Retried for as long as it takes (a server restart): quickly, then every second.
    let options = StepOptions::new().retry(RetryPolicy {
        initial_interval: Duration::from_millis(100),
        backoff_coefficient: 2.0,
        maximum_interval: Some(Duration::from_secs(1)),
        maximum_attempts: 0,
        jitter: 0.0,
    });
    let work = Duration::from_millis(step_ms);
    let step = move |fx: Arc<Effects>| {
        move |ctx: StepContext| {
            let fx = Arc::clone(&fx);
            async move {
                let nonce = fx.record(&ctx).await?;
                tokio::time::sleep(work).await;
                Ok::<_, StepError>(nonce)
            }
        }
    };
    let mut b = Builder::<u32>::new(WORKFLOW);
    let input = b.input();
    let first = step(Arc::clone(effects));
    let mut last = b.step("s01", options.clone(), (input,), move |ctx, _| first(ctx));
    for i in 2..=steps {
        let next = step(Arc::clone(effects));
        last = b.step(
            format!("s{i:02}"),
            options.clone(),
            (last,),
            move |ctx, _| next(ctx),
        );
    }
    b.build_with_output(last)
}

/// How a run this replica started ended here.
fn ending(outcome: &Result<sagaflow_core::runtime::Report<String>, RunError>) -> String {
    match outcome {
        Ok(_) => "completed".to_owned(),
        Err(RunError::Store {
            source: StoreError::Fenced { .. },
            ..
        }) => "fenced".to_owned(),
        Err(RunError::Released { .. }) => "released".to_owned(),
        Err(other) => format!("error {other}"),
    }
}

/// The replica's life; never returns (the process exits).
pub(crate) async fn main(settings: &str) {
    let s = Settings::decode(settings);
    // A replica outlives no test: past this, something hangs, and the process goes.
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(300)).await;
        eprintln!("replica: still running after 300 s; exiting");
        std::process::exit(3);
    });
    // The test ends (or dies): the pipe closes.
    std::thread::spawn(|| {
        let mut rest = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut rest);
        std::process::exit(0);
    });
    let options = PgOptions::default()
        .schema(&s.schema)
        .owner(&s.owner)
        .lease(Duration::from_millis(s.lease_ms))
        .reconnect_timeout(Duration::from_secs(120));
    let store = PgStore::connect(&s.url, options)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.owner));
    let engine = Engine::builder()
        .store(Arc::new(store))
        .takeover_every(Duration::from_millis(s.takeover_ms))
        .build();
    let effects = Arc::new(Effects::connect(&s.url, &s.owner, 4).await);
    let def = workflow(s.steps, s.step_ms, &effects);
    engine.register(&def).expect("the workflow registers");

    let drainer = engine.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM is caught");
        term.recv().await;
        let began = now_ms();
        let drained = drainer.shutdown(GRACE).await;
        for run in &drained.released {
            say(&format!("released {run}"));
        }
        say(&format!(
            "drained began={began} ended={} released={} cut={} finished={} error={:?}",
            now_ms(),
            drained.released.len(),
            drained.cut.len(),
            drained.finished.len(),
            drained.error.map(|e| e.to_string())
        ));
        std::process::exit(0);
    });
    say("ready");

    let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
    let mut mine = 0;
    let share = if s.starts { s.index..s.runs } else { 0..0 };
    for k in share.step_by(s.replicas) {
        mine += 1;
        let (engine, def, started) = (engine.clone(), def.clone(), started.clone());
        tokio::spawn(async move {
            let id = run_id(k);
            match engine
                .start(&def, id.as_str(), u32::try_from(k).unwrap_or(0))
                .await
            {
                Ok(handle) => {
                    let _ = started.send(());
                    let outcome = handle.wait().await;
                    say(&format!("end {id} {}", ending(&outcome)));
                }
                Err(error) => {
                    let _ = started.send(());
                    say(&format!("end {id} not-started {error}"));
                }
            }
        });
    }
    for _ in 0..mine {
        starts.recv().await;
    }
    say(&format!("started {mine}"));
    std::future::pending::<()>().await;
}
