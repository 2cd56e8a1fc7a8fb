//! Many replicas on many hosts, with real faults (issue 14, item 5). Each replica is a child
//! process of this test binary on a host of its own (a network namespace joined to the
//! database's by a veth pair and a bridge, or, where namespaces are refused, a TCP proxy the
//! test holds; see `replicas/hosts.rs`), running an engine on one throwaway PostgreSQL server
//! under its own owner id, with a 2 s lease and a takeover poll every 200 ms. Every step's
//! effect is a row written outside the store's transactions, named by a nonce the step
//! returns (see `replicas/replica.rs`), so that what the event log kept can be checked against
//! what ran: every run completes, and every completed step ran once (an interrupted execution
//! may have run before it; nothing runs after it).
//!
//! The tests run one at a time (they measure how soon runs move), each with its own server
//! and network, removed on every exit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

#[path = "replicas/cluster.rs"]
mod cluster;
#[path = "replicas/hosts.rs"]
mod hosts;
#[path = "replicas/replica.rs"]
mod replica;

use std::collections::HashMap;
use std::time::Duration;

use cluster::{Build, Cluster, Plan};
use replica::{REPLICA, now_ms, run_id};

/// One test at a time: each measures how soon runs move from one replica to another, which
/// another test's replicas on the same two cores would blur.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LEASE_MS: u64 = 2_000;
const TAKEOVER_MS: u64 = 200;

/// Whether the figures measure the replicas: on namespaces they do; behind the fallback's
/// proxies every replica's traffic is relayed by this (debug-built) test process, whose pace
/// they would measure, so there they are printed but not asserted.
fn timed(c: &Cluster) -> bool {
    c.network.mode() == hosts::Mode::Netns
}

/// In a replica process: runs the replica (and never returns). Otherwise `false`.
async fn as_replica() -> bool {
    match std::env::var(REPLICA) {
        Ok(settings) => {
            replica::main(&settings).await;
            true
        }
        Err(_) => false,
    }
}

/// The previous build's replicas test binary: its path in `SAGAFLOW_PREVIOUS_REPLICAS`, as
/// `postgres/tests/replicas/previous.sh` builds it (and prints it) from the commit it names.
/// Without it the rolling upgrade cannot run: with `CI` set that fails, elsewhere it is skipped
/// with a line that says how to run it.
fn previous_build() -> Option<Build> {
    const VAR: &str = "SAGAFLOW_PREVIOUS_REPLICAS";
    let how = format!(
        "{VAR}=$(bash postgres/tests/replicas/previous.sh) cargo test -p sagaflow-postgres --test replicas"
    );
    match std::env::var_os(VAR) {
        Some(path) => {
            let exe = std::path::PathBuf::from(path);
            assert!(exe.is_file(), "{VAR}: no file at {}", exe.display());
            Some(Build {
                exe,
                // A test of that binary that starts with `as_replica`, as every test here
                // does (the previous build's tests are its own; this one is in every build
                // since issue 14).
                test: "replicas_the_database_restarted_under_load_loses_no_run".to_owned(),
                this: false,
            })
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("the rolling upgrade needs the previous build: {how}")
        }
        None => {
            eprintln!("skipped: the rolling upgrade needs the previous build; run it with {how}");
            None
        }
    }
}

fn plan(runs: usize, steps: usize, step_ms: u64) -> Plan {
    Plan {
        replicas: 3,
        runs,
        steps,
        step_ms,
        lease_ms: LEASE_MS,
        takeover_ms: TAKEOVER_MS,
    }
}

/// 1,000 runs over 3 replicas, one killed with SIGKILL while its runs are mid-step: every run
/// completes, every completed step ran once, the only executions run again are the killed
/// replica's (at most one per run, begun before the kill), and its runs go on elsewhere,
/// every one of them within its lease plus 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_one_killed_mid_step_its_runs_resume_elsewhere() {
    if as_replica().await {
        return;
    }
    let _one = SERIAL.lock().await;
    let plan = plan(1_000, 4, 500);
    let mut c = Cluster::start(
        "replicas_one_killed_mid_step_its_runs_resume_elsewhere",
        plan,
    )
    .await;
    c.started().await;
    let total = (plan.runs * plan.steps) as i64;
    c.effects_reach(total / 3, Duration::from_secs(120)).await;
    let killed_at = now_ms();
    c.replicas[0].kill();
    let left = total - c.effects().await;
    assert!(
        left > total / 3,
        "the kill came mid-load ({left} effects left)"
    );
    c.all_finished(Duration::from_secs(60)).await;

    let ledger = c.ledger().await;
    let killed = c.replicas[0].owner.clone();
    let mut delays: Vec<i64> = ledger
        .runs_of(&killed)
        .iter()
        .filter_map(|run| ledger.taken_up(run, &killed, killed_at))
        .map(|at| at - killed_at)
        .collect();
    delays.sort_unstable();
    let taken = delays.len();
    let slowest = delays.last().copied().unwrap_or(0);
    eprintln!(
        "replicas/kill: take-overs after the kill, ms: first {:?}, median {:?}, last {slowest}",
        delays.first(),
        delays.get(taken / 2)
    );
    assert!(
        taken >= plan.runs / 3 / 2,
        "most of the killed replica's runs were mid-way: {taken} taken over"
    );
    // A killed replica's runs resume within its lease plus 1 s, every one of them: each
    // survivor claims up to 100 of them in one statement (different ones: the claim skips
    // rows another holds) and takes them up 16 at a time (`TAKEOVER_AT_ONCE`), so 334 came
    // within 0.12-0.15 s of the first here, in a debug build on 2 cores (0.33-0.36 s when
    // both tried every run listed, a statement each, and half were refused; one after the
    // other, 1.0-1.6 s). The lease may run out as late as 2 s after the kill, and the poll
    // comes within 0.2 s of that.
    assert!(
        !timed(&c) || slowest <= (LEASE_MS + 1_000) as i64,
        "a killed replica's {taken} runs resume within its lease plus 1 s: the last after {slowest} ms"
    );
    let mut again: HashMap<&str, usize> = HashMap::new();
    for repeat in &ledger.repeats {
        assert_eq!(
            repeat.owner, killed,
            "only the killed replica's executions were cut: {repeat:?}"
        );
        assert!(repeat.begun_ms <= killed_at, "cut by the kill: {repeat:?}");
        *again.entry(&repeat.run_id).or_default() += 1;
    }
    assert!(
        again.values().all(|n| *n == 1),
        "at most the step in flight at the kill ran again per run: {again:?}"
    );
    eprintln!(
        "replicas/kill: {} runs x {} steps on {} replicas ({:?}); {taken} runs taken over, the last {slowest} ms after the kill; {} executions cut and run again",
        plan.runs,
        plan.steps,
        plan.replicas,
        c.network.mode(),
        ledger.repeats.len()
    );
}

/// A replica drained (SIGTERM) under load: it lets its running steps end, hands its runs
/// over, and they go on elsewhere within 1 s; nothing runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_one_drained_under_load_its_runs_continue_within_a_second() {
    if as_replica().await {
        return;
    }
    let _one = SERIAL.lock().await;
    // About 100 runs handed over at once; taken up 16 at a time by the others, 50 went on
    // within 0.25-0.3 s of the drain here (one after the other, 100 took 0.7-1.02 s).
    let plan = plan(300, 8, 50);
    let mut c = Cluster::start(
        "replicas_one_drained_under_load_its_runs_continue_within_a_second",
        plan,
    )
    .await;
    c.started().await;
    let total = (plan.runs * plan.steps) as i64;
    c.effects_reach(total / 4, Duration::from_secs(120)).await;
    c.replicas[0].terminate();
    let lines = c.replicas[0]
        .wait_for("the end of its drain", Duration::from_secs(30), |lines| {
            lines.iter().any(|l| l.starts_with("drained "))
        })
        .await;
    let status = c.replicas[0].exited(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "the drained replica exits cleanly: {status}"
    );
    let drained = lines.iter().find(|l| l.starts_with("drained ")).unwrap();
    let field = |name: &str| -> i64 {
        drained
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        field("cut"),
        0,
        "every running step ended within the grace: {drained}"
    );
    assert!(
        drained.ends_with("error=None"),
        "the leases were given up: {drained}"
    );
    let began = field("began");
    let released: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("released "))
        .collect();
    assert!(
        released.len() >= plan.runs / 3 / 2,
        "the drain came mid-load: {} runs released",
        released.len()
    );
    c.all_finished(Duration::from_secs(60)).await;

    let ledger = c.ledger().await;
    assert!(
        ledger.repeats.is_empty(),
        "a drain cuts nothing: no execution ran again: {:?}",
        ledger.repeats
    );
    let owner = c.replicas[0].owner.clone();
    let mut slowest = 0;
    for run in &released {
        let at = ledger
            .taken_up(run, &owner, began)
            .unwrap_or_else(|| panic!("{run} went on elsewhere"));
        slowest = slowest.max(at - began);
    }
    assert!(
        !timed(&c) || slowest <= 1_000,
        "a drained replica's runs go on elsewhere within 1 s of the drain: the last after {slowest} ms"
    );
    eprintln!(
        "replicas/drain: {} runs released, the last going on {slowest} ms after SIGTERM ({:?})",
        released.len(),
        c.network.mode()
    );
}

/// A replica cut off from the database while it runs: its leases expire and the others take
/// its runs over; once its link is back, its writes are refused (fenced) and it lets go of
/// those runs with no further effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_one_cut_off_is_fenced_when_its_link_returns() {
    if as_replica().await {
        return;
    }
    let _one = SERIAL.lock().await;
    let plan = plan(60, 10, 100);
    let mut c = Cluster::start("replicas_one_cut_off_is_fenced_when_its_link_returns", plan).await;
    c.started().await;
    let total = (plan.runs * plan.steps) as i64;
    c.effects_reach(total / 5, Duration::from_secs(60)).await;
    let cut_at = now_ms();
    c.network.cut(0, true);
    // The others finish every run, the cut-off replica's too, once its leases have run out.
    c.all_finished(Duration::from_secs(60)).await;
    let restored_at = now_ms();
    c.network.cut(0, false);
    let mine: Vec<String> = (0..plan.runs).step_by(plan.replicas).map(run_id).collect();
    let lines = c.replicas[0]
        .wait_for(
            "the end of every run it started",
            Duration::from_secs(60),
            |lines| lines.iter().filter(|l| l.starts_with("end ")).count() == mine.len(),
        )
        .await;
    let mut fenced = 0;
    for line in lines.iter().filter_map(|l| l.strip_prefix("end ")) {
        let (run, how) = line.split_once(' ').unwrap();
        match how {
            "fenced" => fenced += 1,
            // Finished before the cut.
            "completed" => {}
            other => panic!("{run}: its writes once the link is back are fenced, not `{other}`"),
        }
    }
    assert!(fenced > 0, "the cut came while its runs ran: {lines:?}");

    let ledger = c.ledger().await;
    let owner = c.replicas[0].owner.clone();
    let late: Vec<_> = ledger
        .effects
        .iter()
        .filter(|e| e.owner == owner && e.begun_ms >= restored_at)
        .collect();
    assert!(late.is_empty(), "no effect once the link is back: {late:?}");
    let mut taken = 0;
    let mut slowest = 0;
    for run in ledger.runs_of(&owner) {
        if let Some(at) = ledger.taken_up(&run, &owner, cut_at) {
            taken += 1;
            slowest = slowest.max(at - cut_at);
        }
    }
    assert!(
        taken >= fenced,
        "every fenced run was taken over ({taken} of {fenced})"
    );
    assert!(
        !timed(&c) || slowest <= (LEASE_MS + 1_000) as i64,
        "a cut-off replica's run goes on within its lease plus 1 s: the last after {slowest} ms"
    );
    for repeat in &ledger.repeats {
        assert_eq!(
            repeat.owner, owner,
            "only the cut-off replica's executions were cut: {repeat:?}"
        );
    }
    eprintln!(
        "replicas/cut: {fenced} runs fenced when the link came back, {taken} taken over (the last {slowest} ms after the cut), {} executions cut ({:?})",
        ledger.repeats.len(),
        c.network.mode()
    );
}

/// The database restarted under load: no run is lost, and every completed step ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_the_database_restarted_under_load_loses_no_run() {
    if as_replica().await {
        return;
    }
    let _one = SERIAL.lock().await;
    let plan = plan(300, 6, 20);
    let mut c = Cluster::start(
        "replicas_the_database_restarted_under_load_loses_no_run",
        plan,
    )
    .await;
    c.started().await;
    let total = (plan.runs * plan.steps) as i64;
    c.effects_reach(total / 3, Duration::from_secs(60)).await;
    c.server.restart();
    c.reconnect().await;
    let left = total - c.effects().await;
    assert!(left > 0, "the restart came mid-load");
    c.all_finished(Duration::from_secs(90)).await;
    let ledger = c.ledger().await;
    eprintln!(
        "replicas/restart: {} runs completed across the restart; {} executions cut and run again ({:?})",
        plan.runs,
        ledger.repeats.len(),
        c.network.mode()
    );
}

/// A rolling upgrade (issue 14, item 3): three replicas of the previous build (a binary built
/// from the commit `replicas/previous.sh` names) run under load and are replaced one by one,
/// as a deploy does it: SIGTERM, the replica drains and exits, a replica of this build starts
/// on its host. No run is lost, no step runs twice (a drain cuts nothing), the old build's
/// replicas work on beside the new one's, and the new build's replicas finish the old ones'
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_rolled_one_by_one_to_this_build_lose_no_run() {
    const TEST: &str = "replicas_rolled_one_by_one_to_this_build_lose_no_run";
    if as_replica().await {
        return;
    }
    let Some(previous) = previous_build() else {
        return;
    };
    let _one = SERIAL.lock().await;
    // Runs of 10 s or more (20 steps of 500 ms), all started at once, so that the load lasts
    // through the three replacements.
    let plan = plan(150, 20, 500);
    let mut c = Cluster::start_from(&previous, plan).await;
    c.started().await;
    let total = (plan.runs * plan.steps) as i64;
    c.effects_reach(total / 6, Duration::from_secs(120)).await;
    let this = Build::this(TEST);
    // While both builds run: from the first new replica's start to the last old one's drain.
    let (mut mixed_from, mut mixed_to) = (0, 0);
    let (drained_at, ledger) = replace_one_by_one(&mut c, &this, "new", |i| {
        if i == 0 {
            mixed_from = now_ms();
        }
        if i + 1 == plan.replicas {
            mixed_to = now_ms();
        }
    })
    .await;
    let new = |owner: &str| owner.ends_with("-new");
    let mixed = |of_new: bool| {
        ledger
            .effects
            .iter()
            .any(|e| new(&e.owner) == of_new && e.begun_ms >= mixed_from && e.begun_ms < mixed_to)
    };
    // Each owner's effects: how many, the first and the last begun (ms), for the message.
    let mut by_owner = std::collections::BTreeMap::<&str, (usize, i64, i64)>::new();
    for e in &ledger.effects {
        let seen = by_owner.entry(&e.owner).or_insert((0, i64::MAX, 0));
        *seen = (seen.0 + 1, seen.1.min(e.begun_ms), seen.2.max(e.begun_ms));
    }
    let (previous_ran, this_ran) = (mixed(false), mixed(true));
    assert!(
        previous_ran && this_ran,
        "both builds ran steps side by side while the replicas were rolled, from {mixed_from} to \
         {mixed_to} ms (the previous build did: {previous_ran}, this one did: {this_ran}); \
         drained: {drained_at:?}; effects by owner (count, first, last): {by_owner:?}"
    );
    // Runs begun on the previous build and finished on this one.
    let crossed = crossed(&ledger, plan, new);
    assert!(
        crossed >= plan.runs / 2,
        "most runs went from the previous build's replicas to this build's: {crossed}"
    );
    eprintln!(
        "replicas/upgrade: {} runs x {} steps, 3 replicas rolled from {} to this build; {crossed} runs crossed builds ({:?})",
        plan.runs,
        plan.steps,
        previous.exe.display(),
        c.network.mode()
    );
}

/// A release rolled back: three replicas of this build run under load and are replaced one
/// by one by the previous release's, as in a rolling upgrade the other way. The previous
/// release takes up runs this build began, reading what this build wrote (its steps completed
/// in the compact log's rows, the default since session 19: one it missed would run again,
/// a repeat in the ledger), and finishes them: no run lost, no step run twice, this build's
/// replicas do nothing once drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_rolled_back_to_the_previous_release_lose_no_run() {
    const TEST: &str = "replicas_rolled_back_to_the_previous_release_lose_no_run";
    if as_replica().await {
        return;
    }
    let Some(previous) = previous_build() else {
        return;
    };
    let _one = SERIAL.lock().await;
    let plan = plan(150, 20, 500);
    let this = Build::this(TEST);
    let mut c = Cluster::start_from(&this, plan).await;
    c.started().await;
    let total = (plan.runs * plan.steps) as i64;
    c.effects_reach(total / 6, Duration::from_secs(120)).await;
    let (_, ledger) = replace_one_by_one(&mut c, &previous, "previous", |_| {}).await;
    // Runs begun on this build and finished on the previous release.
    let crossed = crossed(&ledger, plan, |owner| owner.ends_with("-previous"));
    assert!(
        crossed >= plan.runs / 2,
        "most runs went from this build's replicas to the previous release's: {crossed}"
    );
    eprintln!(
        "replicas/rollback: {} runs x {} steps, 3 replicas rolled back from this build to {}; {crossed} runs crossed builds ({:?})",
        plan.runs,
        plan.steps,
        previous.exe.display(),
        c.network.mode()
    );
}

/// Replaces the cluster's replicas one by one, under load, by replicas of `to` (owner ids
/// `replica-<i>-<name>`), as a deploy does it: the successor starts (and looks for runs to take
/// over ten times as often as the others, so that the runs the drain gives up go to it: started
/// after the drain, or looking as often, it found them taken by the replicas of the other
/// build, which claim free runs as they list them since a6d0e67), `started(i)` is called, the
/// replica it replaces gets SIGTERM, drains (cutting nothing, its leases given up) and exits
/// cleanly, and the load goes on under the mix before the next. Then waits for every run to
/// finish, and checks the ledger: no execution ran twice, and no drained replica did anything
/// once drained. Returns when each replica drained, and the ledger.
async fn replace_one_by_one(
    c: &mut Cluster,
    to: &Build,
    name: &str,
    mut started: impl FnMut(usize),
) -> (Vec<(String, i64)>, cluster::Ledger) {
    let plan = c.plan;
    let total = (plan.runs * plan.steps) as i64;
    let mut drained_at = Vec::new();
    for i in 0..plan.replicas {
        let old = c.replicas[i].owner.clone();
        let quick = Plan {
            takeover_ms: TAKEOVER_MS / 10,
            ..plan
        };
        let successor = c
            .successor(i, to, format!("replica-{i}-{name}"), quick)
            .await;
        started(i);
        c.replicas[i].terminate();
        let lines = c.replicas[i]
            .wait_for("the end of its drain", Duration::from_secs(30), |lines| {
                lines.iter().any(|l| l.starts_with("drained "))
            })
            .await;
        let status = c.replicas[i].exited(Duration::from_secs(10)).await;
        assert!(status.success(), "{old} exits cleanly: {status}");
        let drained = lines.iter().find(|l| l.starts_with("drained ")).unwrap();
        assert!(
            drained.contains(" cut=0 ") && drained.ends_with("error=None"),
            "{old}: its running steps ended and its leases were given up: {drained}"
        );
        drained_at.push((old, now_ms()));
        c.replicas[i] = successor;
        // The load goes on under the mix of builds before the next replacement.
        let now = c.effects().await;
        assert!(
            now < total,
            "the replacement came mid-load ({now} of {total} effects)"
        );
        c.effects_reach((now + total / 20).min(total), Duration::from_secs(60))
            .await;
    }
    c.all_finished(Duration::from_secs(120)).await;

    let ledger = c.ledger().await;
    assert!(
        ledger.repeats.is_empty(),
        "drains cut nothing: no execution ran again: {:?}",
        ledger.repeats
    );
    for (old, at) in &drained_at {
        let late: Vec<_> = ledger
            .effects
            .iter()
            .filter(|e| e.owner == *old && e.begun_ms > *at)
            .collect();
        assert!(late.is_empty(), "{old} did nothing once drained: {late:?}");
    }
    (drained_at, ledger)
}

/// How many runs have effects both by owners `to` says are the new ones and by others: runs
/// that crossed from one build to the other.
fn crossed(ledger: &cluster::Ledger, plan: Plan, to: impl Fn(&str) -> bool) -> usize {
    (0..plan.runs)
        .filter(|&k| {
            let run = run_id(k);
            let by_new: Vec<bool> = ledger
                .effects
                .iter()
                .filter(|e| e.run_id == run)
                .map(|e| to(&e.owner))
                .collect();
            by_new.contains(&true) && by_new.contains(&false)
        })
        .count()
}
