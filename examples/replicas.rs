//! Three replicas of a service on one PostgreSQL database: they deploy, one drains, and all
//! three are upgraded to a new build one by one, while the runs go on.
//!
//! ```text
//! cargo run --example replicas                                      # the local server
//! cargo run --example replicas -- --db postgres://user@host:5432/db # a server of your own
//! ```
//!
//! This process is the conductor (what a deploy tool or an orchestrator is in production). It
//! starts three replica processes (this program again, with `--replica N --build B`), each an
//! engine on a [`PgStore`] under an owner id of its own, sharing the schema
//! `sagaflow_replicas_example` (made afresh, dropped at the end). Each replica registers what
//! its build runs, so that it takes up by itself the runs other replicas leave:
//!
//! - build 1 runs `Rollout` as `plan -> canary -> apply -> verify`;
//! - build 2 runs `Rollout` as `plan -> canary -> apply -> verify -> announce`: a new graph (another
//!   fingerprint), and it keeps build 1's registered, so that the runs build 1 started are
//!   finished by build 2 as they were started. A run whose graph no live replica has
//!   registered waits for one (`sagaflow replicas` lists it), it does not fail.
//!
//! Then: two replicas start six rollouts; every replica is replaced by one of build 2, one at
//! a time, as a rolling deploy does: drained (SIGTERM: it lets its running step end,
//! checkpoints, and gives its leases up, so that the others take its runs at once), then
//! started again on the new build. Build 1's rollouts move to build 2's replicas as they go. A
//! seventh rollout starts on build 2. The conductor checks that every rollout completed with
//! every step once, and shows the replicas as the store has them.

use std::io::{BufRead as _, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::runtime::EventKind;
use sagaflow::runtime::store::inspect::Inspect as _;
use sagaflow::runtime::store::{EventLog as _, RunStore as _};
use sagaflow_postgres::inspect::PgInspector;
use sagaflow_postgres::{PgOptions, PgStore};
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "sagaflow_replicas_example";
const DEFAULT_DB: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How long a step's work takes.
const STEP: Duration = Duration::from_millis(800);

/// What to roll out.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Change {
    service: String,
    version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Planned {
    change: Change,
    hosts: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Applied {
    planned: Planned,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Verified {
    applied: Applied,
    healthy: bool,
}

/// Who this replica is, for what its steps print.
static WHO: OnceLock<String> = OnceLock::new();

async fn work(ctx: &StepContext, what: &str) {
    println!(
        "  {:<20} {:<10} {what}",
        WHO.get().map_or("?", String::as_str),
        ctx.run_id().as_str()
    );
    tokio::time::sleep(STEP).await;
}

async fn plan(ctx: &StepContext, change: &Change) -> Result<Planned, StepError> {
    work(ctx, &format!("plan {} {}", change.service, change.version)).await;
    Ok(Planned {
        change: change.clone(),
        hosts: 3,
    })
}

async fn canary(ctx: &StepContext, planned: &Planned) -> Result<Planned, StepError> {
    work(ctx, "canary on 1 host").await;
    Ok(planned.clone())
}

async fn apply(ctx: &StepContext, planned: &Planned) -> Result<Applied, StepError> {
    work(ctx, &format!("apply on {} hosts", planned.hosts)).await;
    Ok(Applied {
        planned: planned.clone(),
    })
}

async fn verify(ctx: &StepContext, applied: &Applied) -> Result<Verified, StepError> {
    work(ctx, "verify").await;
    Ok(Verified {
        applied: applied.clone(),
        healthy: true,
    })
}

async fn announce(ctx: &StepContext, verified: &Verified) -> Result<Verified, StepError> {
    work(ctx, "announce (new in build 2)").await;
    Ok(verified.clone())
}

/// Build 1's rollout.
mod v1 {
    use super::*;

    sagaflow::workflow! {
        pub Rollout(Change) -> Verified {
            plan -> canary -> apply -> verify;
        }
    }
}

/// Build 2's rollout: one step more, so another graph.
mod v2 {
    use super::*;

    sagaflow::workflow! {
        pub Rollout(Change) -> Verified {
            plan -> canary -> apply -> verify -> announce;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut db, mut replica, mut build) = (DEFAULT_DB.to_owned(), None, 1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--db" => db = value()?,
            "--replica" => replica = Some(value()?.parse::<usize>()?),
            "--build" => build = value()?.parse::<u32>()?,
            _ => {
                eprintln!("usage: replicas [--db postgres://…]");
                std::process::exit(2);
            }
        }
    }
    match replica {
        Some(n) => serve(&db, n, build).await,
        None => conduct(&db).await,
    }
}

/// A replica: an engine on the shared schema that runs what its build registers, starts the
/// rollouts it is told to on its standard input (`start RUN SERVICE VERSION`), drains on
/// SIGTERM, and exits when its input closes.
async fn serve(db: &str, n: usize, build: u32) -> Result<(), Box<dyn std::error::Error>> {
    let owner = format!("replica-{n}");
    WHO.get_or_init(|| format!("{owner} (build {build})"));
    let options = PgOptions::default()
        .schema(SCHEMA)
        .owner(&owner)
        .lease(Duration::from_secs(5));
    let store = PgStore::connect(db, options).await?;
    let engine = Engine::builder()
        .store(Arc::new(store))
        .takeover_every(Duration::from_millis(200))
        .build();
    // What this build runs: build 2 keeps build 1's rollout for the runs build 1 started.
    v1::Rollout::register(&engine)?;
    if build >= 2 {
        v2::Rollout::register(&engine)?;
    }

    let (lines, mut commands) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                return;
            }
        }
        // The conductor is gone.
        std::process::exit(0);
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    println!("@ready");
    loop {
        tokio::select! {
            _ = term.recv() => {
                let drained = engine.shutdown(Duration::from_secs(10)).await;
                println!(
                    "  {:<20} drained: {} runs handed over, {} cut",
                    WHO.get().map_or("?", String::as_str),
                    drained.released.len(),
                    drained.cut.len()
                );
                return Ok(());
            }
            Some(line) = commands.recv() => {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["start", run, service, version] = words[..] {
                    let change = Change { service: service.to_owned(), version: version.to_owned() };
                    let started = if build >= 2 {
                        v2::Rollout::start(&engine, run, change).await.map(drop)
                    } else {
                        v1::Rollout::start(&engine, run, change).await.map(drop)
                    };
                    if let Err(error) = started {
                        eprintln!("{owner}: {run} did not start: {error}");
                    }
                }
            }
        }
    }
}

/// A replica process, as the conductor holds it.
struct Replica {
    child: Child,
    stdin: Option<ChildStdin>,
    ready: mpsc::Receiver<()>,
}

impl Replica {
    fn spawn(db: &str, n: usize, build: u32) -> Result<Replica, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--db", db, "--replica", &n.to_string()])
            .args(["--build", &build.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no output of the replica")?;
        let (ready, readied) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "@ready" {
                    let _ = ready.send(());
                } else {
                    println!("{line}");
                }
            }
        });
        let stdin = child.stdin.take();
        let replica = Replica {
            child,
            stdin,
            ready: readied,
        };
        replica
            .ready
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| format!("replica {n} did not start"))?;
        Ok(replica)
    }

    fn tell(&mut self, line: &str) -> std::io::Result<()> {
        match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{line}"),
            None => Ok(()),
        }
    }

    /// SIGTERM, as a deploy tool stops a replica; waits until it has drained and exited.
    fn drain(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !sent.success() {
            return Err("could not signal the replica".into());
        }
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("the replica exited with {status}").into());
        }
        Ok(())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // Its input closed, it exits.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

async fn conduct(db: &str) -> Result<(), Box<dyn std::error::Error>> {
    // The example's own schema, made afresh.
    let (admin, connection) = tokio_postgres::connect(db, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await?;
    let store =
        PgStore::connect(db, PgOptions::default().schema(SCHEMA).owner("conductor")).await?;
    let began = Instant::now();

    println!("== three replicas of build 1 on {}", store.url());
    let mut replicas = Vec::new();
    for n in 0..3 {
        replicas.push(Replica::spawn(db, n, 1)?);
    }
    println!("== replicas 0 and 1 start six rollouts");
    for k in 1..=6 {
        let line = format!("start rollout-{k} service-{k} 1.{k}");
        replicas[(k - 1) % 2].tell(&line)?;
    }
    tokio::time::sleep(STEP + STEP / 2).await;

    println!("== a rolling upgrade to build 2, one replica at a time; replica 0 drains first");
    println!("   (SIGTERM: its running step ends, and its rollouts go on elsewhere at once)");
    for (n, replica) in replicas.iter_mut().enumerate() {
        replica.drain()?;
        println!("== replica {n} starts on build 2");
        *replica = Replica::spawn(db, n, 2)?;
        tokio::time::sleep(STEP / 2).await;
    }
    println!("== a seventh rollout, on build 2");
    replicas[1].tell("start rollout-7 service-7 2.0")?;

    // Every rollout ends.
    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::time::sleep(STEP).await;
    while !store.unfinished_runs().await?.is_empty() {
        if Instant::now() > deadline {
            return Err("rollouts still unfinished after 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // What the store recorded: every rollout completed, every step once; build 1's graph for
    // the six, build 2's for the seventh.
    println!(
        "== every rollout completed ({:.1} s); the store's record:",
        began.elapsed().as_secs_f64()
    );
    for k in 1..=7 {
        let run_id = RunId::from(format!("rollout-{k}"));
        let run = store
            .load_run(&run_id)
            .await?
            .ok_or_else(|| format!("{run_id} was never started"))?;
        let steps: Vec<&str> = run.steps.iter().map(|s| s.name.as_str()).collect();
        println!("  {run_id:<10} {:?}  {}", run.status, steps.join(" -> "));
        let expected = if k == 7 { 5 } else { 4 };
        if run.steps.len() != expected {
            return Err(format!("{run_id}: {expected} steps expected").into());
        }
    }
    // Every step started once: a drain lets the running step end, so nothing ran twice.
    let mut starts = std::collections::HashMap::new();
    let mut after = 0;
    loop {
        let page = store.events(None, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in page.iter().filter(|e| e.kind == EventKind::StepStarted) {
            *starts
                .entry((event.run_id.to_string(), event.step.clone()))
                .or_insert(0) += 1;
        }
    }
    if let Some(((run, step), n)) = starts.iter().find(|(_, n)| **n != 1) {
        return Err(format!("{run}/{step:?} started {n} times").into());
    }
    println!("  each of the {} steps started once", starts.len());
    let inspector = PgInspector::connect(db, SCHEMA).await?;
    let standing = inspector.replicas().await?.standing();
    println!("== the replicas as their heartbeats left them (`sagaflow replicas`):");
    for r in &standing.replicas {
        let graphs: Vec<String> = r
            .replica
            .graphs
            .iter()
            .map(|g| format!("{}:{:x}", g.workflow, g.fingerprint.unwrap_or(0)))
            .collect();
        println!(
            "  {:<10} {:<5} heard {:>5} ms ago, runs {}",
            r.replica.owner,
            if r.live { "live" } else { "gone" },
            r.silent_ms,
            graphs.join(", ")
        );
    }

    drop(replicas);
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await?;
    Ok(())
}
