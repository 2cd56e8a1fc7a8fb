//! The test's side: a throwaway server, the replicas' hosts, the replica processes, and what
//! the test reads back to check (the store's runs and event log, the effects table).

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sagaflow_core::runtime::store::{EventLog as _, RunStore as _, StoredRunStatus};
use sagaflow_core::runtime::{EventKind, RunId};
use sagaflow_postgres::{PgOptions, PgStore};
use tokio_postgres::{Client, NoTls};

use crate::hosts::Network;
use crate::replica::{EFFECTS_SQL, REPLICA, Settings, run_id};
use crate::support::server::TempServer;

/// The schema the replicas share on the test's server.
const SCHEMA: &str = "replicas";

/// What a test runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) replicas: usize,
    pub(crate) runs: usize,
    pub(crate) steps: usize,
    pub(crate) step_ms: u64,
    pub(crate) lease_ms: u64,
    pub(crate) takeover_ms: u64,
}

/// The program a replica runs: a test binary of `postgres/tests/replicas.rs` (this one, or
/// the previous build's), and the name of one of its tests that starts with `as_replica`.
#[derive(Clone, Debug)]
pub(crate) struct Build {
    pub(crate) exe: PathBuf,
    pub(crate) test: String,
    /// Whether it is this build (the test's own binary).
    pub(crate) this: bool,
}

impl Build {
    /// This test binary, running the test named `test` as a replica.
    pub(crate) fn this(test: &str) -> Build {
        Build {
            exe: std::env::current_exe().expect("the test binary"),
            test: test.to_owned(),
            this: true,
        }
    }
}

/// One replica process, and the `@@` lines it has said so far.
pub(crate) struct Replica {
    pub(crate) owner: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// Every line said so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("the lines").clone()
    }

    /// Waits (up to `within`) until `done` holds of the lines said; returns them.
    pub(crate) async fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let began = Instant::now();
        loop {
            let lines = self.lines();
            if done(&lines) {
                return lines;
            }
            if let Ok(Some(status)) = self.child.try_wait()
                && !done(&self.lines())
            {
                panic!("{} ended ({status}) before {what}: {lines:?}", self.owner);
            }
            assert!(
                began.elapsed() < within,
                "{}: no {what} within {within:?}: {lines:?}",
                self.owner
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until it has said it is ready (its engine runs, the workflow registered).
    pub(crate) async fn ready(&mut self) {
        self.wait_for("ready", Duration::from_secs(60), |lines| {
            lines.iter().any(|l| l == "ready")
        })
        .await;
    }

    /// SIGKILL: no destructor, no goodbye; its leases are left to expire.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("the replica is killed");
        self.child.wait().expect("the replica is reaped");
    }

    /// SIGTERM: the replica drains and exits.
    pub(crate) fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM to {}", self.owner);
    }

    /// Waits for the process to exit; its status.
    pub(crate) async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let began = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the replica's status") {
                return status;
            }
            assert!(began.elapsed() < within, "{} did not exit", self.owner);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // Closing its input ends it; a kill makes sure.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server, the hosts, the replicas, and the test's own connections.
pub(crate) struct Cluster {
    pub(crate) plan: Plan,
    pub(crate) replicas: Vec<Replica>,
    pub(crate) server: TempServer,
    pub(crate) store: PgStore,
    pub(crate) client: Client,
    pub(crate) network: Network,
}

/// The test's connection to the server (in the test's own namespace, on the loopback).
async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("the test connects");
    tokio::spawn(connection);
    client
}

impl Cluster {
    /// A server reachable from every replica's host, the schema and the effects table, and
    /// `plan.replicas` replicas started, each from the test named `test` of this binary.
    pub(crate) async fn start(test: &str, plan: Plan) -> Cluster {
        Cluster::start_from(&Build::this(test), plan).await
    }

    /// As [`Cluster::start`], the replicas running `build`. This build's schema is made by
    /// the test before any replica connects; another build's replicas make theirs (as the
    /// previous release's replicas would have, before an upgrade), and the test's store
    /// connects once they are ready.
    pub(crate) async fn start_from(build: &Build, plan: Plan) -> Cluster {
        let mut network = Network::new(plan.replicas);
        let hba = network.hba_line();
        let listen = network.listen_addresses();
        let server = TempServer::start_with(move |dir| {
            if let Some(line) = hba {
                let path = dir.join("data").join("pg_hba.conf");
                let mut text = std::fs::read_to_string(&path).expect("pg_hba.conf");
                text.push_str(&line);
                std::fs::write(&path, text).expect("pg_hba.conf is written");
            }
            vec![
                ("listen_addresses", listen),
                ("max_connections", "300".to_owned()),
            ]
        });
        network.reach(server.port, plan.replicas).await;
        let url = server.url();
        let client = connect(&url).await;
        client.batch_execute(EFFECTS_SQL).await.expect("effects");
        let connect_store = || async {
            PgStore::connect(&url, PgOptions::default().schema(SCHEMA).owner("test"))
                .await
                .expect("the test's store")
        };
        let mut replicas = Vec::new();
        let store = if build.this {
            // The schema is made here, once, before any replica connects.
            let store = connect_store().await;
            for i in 0..plan.replicas {
                replicas.push(spawn(&network, build, plan, i, owner(i), true));
            }
            store
        } else {
            for i in 0..plan.replicas {
                replicas.push(spawn(&network, build, plan, i, owner(i), true));
            }
            for replica in &mut replicas {
                replica.ready().await;
            }
            connect_store().await
        };
        Cluster {
            plan,
            replicas,
            server,
            store,
            client,
            network,
        }
    }

    /// Starts a replica of `build` on replica `i`'s host, beside it, under the owner id
    /// `owner`, to take its place (put it in `replicas[i]` once that one has exited); it
    /// starts no runs, only takes them up. Waits until it is ready. Started before the one it
    /// replaces is drained, as a rolling upgrade with a surge does, it is there to take up the
    /// runs that drain gives up.
    pub(crate) async fn successor(
        &mut self,
        i: usize,
        build: &Build,
        owner: String,
        plan: Plan,
    ) -> Replica {
        let mut replica = spawn(&self.network, build, plan, i, owner, false);
        replica.ready().await;
        replica
    }

    /// Connects the test again (after a restart of the server).
    pub(crate) async fn reconnect(&mut self) {
        self.client = connect(&self.server.url()).await;
    }

    /// Waits until every replica has started its share of the runs.
    pub(crate) async fn started(&mut self) {
        for replica in &mut self.replicas {
            replica
                .wait_for("start of its runs", Duration::from_secs(60), |lines| {
                    lines.iter().any(|l| l.starts_with("started "))
                })
                .await;
        }
    }

    /// How many effects (step executions) there have been.
    pub(crate) async fn effects(&self) -> i64 {
        self.client
            .query_one("SELECT count(*) FROM public.effects", &[])
            .await
            .expect("counts effects")
            .get(0)
    }

    /// Waits until at least `n` step executions have had their effect.
    pub(crate) async fn effects_reach(&self, n: i64, within: Duration) {
        let began = Instant::now();
        while self.effects().await < n {
            assert!(
                began.elapsed() < within,
                "fewer than {n} effects within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until no run is left unfinished; how long that took.
    pub(crate) async fn all_finished(&self, within: Duration) -> Duration {
        let began = Instant::now();
        loop {
            match self.store.unfinished_runs().await {
                Ok(left) if left.is_empty() => return began.elapsed(),
                Ok(left) => assert!(
                    began.elapsed() < within,
                    "{} runs unfinished after {within:?}: {:?}",
                    left.len(),
                    left.iter().take(5).collect::<Vec<_>>()
                ),
                Err(error) => assert!(
                    began.elapsed() < within,
                    "cannot list the unfinished runs: {error}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads back what happened, and checks what holds whatever the fault: every run
    /// completed, and every completed step ran once (see [`Ledger`]).
    pub(crate) async fn ledger(&self) -> Ledger {
        let rows = self
            .client
            .query(
                "SELECT id, run_id, step, owner, nonce, begun_ms FROM public.effects ORDER BY id",
                &[],
            )
            .await
            .expect("reads effects");
        let effects: Vec<Effect> = rows
            .iter()
            .map(|r| Effect {
                id: r.get(0),
                run_id: r.get(1),
                step: r.get(2),
                owner: r.get(3),
                nonce: r.get(4),
                begun_ms: r.get(5),
            })
            .collect();
        // The event log: every step completed once, every run completed once.
        let mut completions: HashMap<(String, String), usize> = HashMap::new();
        let mut ends: HashMap<String, usize> = HashMap::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .events(None, after, 5000)
                .await
                .expect("reads the event log");
            let Some(last) = page.last() else { break };
            after = last.seq;
            for event in &page {
                match event.kind {
                    EventKind::StepCompleted => {
                        let step = event.step.as_deref().unwrap_or("").to_owned();
                        *completions
                            .entry((event.run_id.to_string(), step))
                            .or_default() += 1;
                    }
                    EventKind::RunCompleted => {
                        *ends.entry(event.run_id.to_string()).or_default() += 1
                    }
                    _ => {}
                }
            }
        }
        let mut recorded = HashMap::new();
        for k in 0..self.plan.runs {
            let id = run_id(k);
            let run = self
                .store
                .load_run(&RunId::from(id.as_str()))
                .await
                .expect("loads a run")
                .unwrap_or_else(|| panic!("{id} was never created"));
            assert_eq!(run.status, StoredRunStatus::Completed, "{id} completed");
            assert_eq!(ends.get(&id), Some(&1), "{id}: one end in the log");
            assert_eq!(run.steps.len(), self.plan.steps, "{id}: every step");
            for step in &run.steps {
                let output = step
                    .output
                    .as_deref()
                    .unwrap_or_else(|| panic!("{id}/{}: completed without an output", step.name));
                let nonce: String = serde_json::from_str(output).expect("a nonce");
                let key = (id.clone(), step.name.clone());
                assert_eq!(
                    completions.get(&key),
                    Some(&1),
                    "{id}/{}: one completion in the log",
                    step.name
                );
                recorded.insert(key, nonce);
            }
        }
        Ledger::check(effects, recorded)
    }
}

/// The owner id of the replica first started on host `i`.
fn owner(i: usize) -> String {
    format!("replica-{i}")
}

fn spawn(
    network: &Network,
    build: &Build,
    plan: Plan,
    i: usize,
    owner: String,
    starts: bool,
) -> Replica {
    let settings = Settings {
        url: network.url(i),
        schema: SCHEMA.to_owned(),
        owner: owner.clone(),
        index: i,
        replicas: plan.replicas,
        runs: plan.runs,
        steps: plan.steps,
        step_ms: plan.step_ms,
        lease_ms: plan.lease_ms,
        takeover_ms: plan.takeover_ms,
        starts,
    };
    let mut child = network
        .command(i, &build.exe)
        .args([
            build.test.as_str(),
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(REPLICA, settings.encode())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the replica starts");
    let stdout = child.stdout.take().expect("its output");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let said = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The first line said follows libtest's `test … ... ` on the same line.
            if let Some(at) = line.find("@@ ") {
                said.lock()
                    .expect("the lines")
                    .push(line[at + 3..].to_owned());
            }
        }
    });
    Replica {
        owner,
        stdin: child.stdin.take(),
        child,
        lines,
    }
}

/// A step's execution, as its effect recorded it.
#[derive(Clone, Debug)]
pub(crate) struct Effect {
    pub(crate) id: i64,
    pub(crate) run_id: String,
    pub(crate) step: String,
    pub(crate) owner: String,
    pub(crate) nonce: String,
    pub(crate) begun_ms: i64,
}

/// The effects, checked against the completions the log recorded.
pub(crate) struct Ledger {
    pub(crate) effects: Vec<Effect>,
    /// Executions whose completion was never recorded: interrupted (by a kill, a cut, a
    /// restart), run again elsewhere or later.
    pub(crate) repeats: Vec<Effect>,
}

impl Ledger {
    /// Every completed step ran once: the execution whose nonce the log kept has exactly one
    /// effect, and no execution of that step began after it (a completed step never runs
    /// again). Executions never recorded as completed may precede it.
    fn check(effects: Vec<Effect>, recorded: HashMap<(String, String), String>) -> Ledger {
        let mut by_step: HashMap<(&str, &str), Vec<&Effect>> = HashMap::new();
        for effect in &effects {
            by_step
                .entry((&effect.run_id, &effect.step))
                .or_default()
                .push(effect);
        }
        let mut repeats = Vec::new();
        for ((run, step), nonce) in &recorded {
            let rows = by_step
                .get(&(run.as_str(), step.as_str()))
                .cloned()
                .unwrap_or_default();
            let kept: Vec<_> = rows.iter().filter(|e| e.nonce == *nonce).collect();
            assert_eq!(
                kept.len(),
                1,
                "{run}/{step}: the execution the log kept ({nonce}) had one effect: {rows:?}"
            );
            // By when each began (the replicas share the host's clock), not by when its
            // effect landed: an interrupted execution's effect may land late, held up on a
            // link that was cut while it ran.
            let last = rows.iter().max_by_key(|e| (e.begun_ms, e.id)).map(|e| e.id);
            assert_eq!(
                last,
                Some(kept[0].id),
                "{run}/{step}: nothing began after the completed execution: {rows:?}"
            );
            repeats.extend(
                rows.iter()
                    .filter(|e| e.nonce != *nonce)
                    .map(|e| (*e).clone()),
            );
        }
        assert_eq!(
            recorded.len() + repeats.len(),
            effects.len(),
            "every effect is of a step of a run of the test"
        );
        Ledger { effects, repeats }
    }

    /// The first execution by an owner other than `owner` of a step of `run`, begun at or
    /// after `since_ms`: when another replica went on with the run.
    pub(crate) fn taken_up(&self, run: &str, owner: &str, since_ms: i64) -> Option<i64> {
        self.effects
            .iter()
            .filter(|e| e.run_id == run && e.owner != owner && e.begun_ms >= since_ms)
            .map(|e| e.begun_ms)
            .min()
    }

    /// The runs `owner` ran a step of.
    pub(crate) fn runs_of(&self, owner: &str) -> Vec<String> {
        let mut runs: Vec<String> = self
            .effects
            .iter()
            .filter(|e| e.owner == owner)
            .map(|e| e.run_id.clone())
            .collect();
        runs.sort();
        runs.dedup();
        runs
    }
}
