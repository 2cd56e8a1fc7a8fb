//! A crash at every commit point of a run on PostgreSQL: before each commit, after each, and
//! between each step's effect and its checkpoint (`sagaflow_core::conformance::crash`, the
//! harness SQLite's `tests/faults.rs` runs too). A child process (this test binary again)
//! runs a 5-step workflow with one crash point armed and aborts there (its connections die
//! with it); the test then connects again as the same service, takes the run up, and checks
//! that it completes, that no step whose completion was committed ran again, and that at most
//! the step in flight ran twice.
//!
//! And the same for a persisted state machine: its creation and each transition, before the
//! commit and after it (`a_crash_at_every_commit_point_of_a_machine_...`).
//!
//! Each case has a run of its own in one schema of the test's, on the server named by
//! `SAGAFLOW_PG_URL`. Needs the `fault-injection` feature: `cargo test -p sagaflow-postgres
//! --features fault-injection --test crash_points`.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use sagaflow_core::conformance::crash::{self, runtime};
use sagaflow_core::fault::{CRASH_AT, Point};
use sagaflow_core::runtime::store::{Advanced, MachineStep, MachineStore};
use sagaflow_core::runtime::{Engine, RunId, StepStatus};
use sagaflow_postgres::{PgOptions, PgStore};

#[macro_use]
mod support;

const SCHEMA: &str = "SAGAFLOW_FAULT_SCHEMA";
/// Set when the child's store keeps a compact log (`PgOptions::compact_log`).
const COMPACT: &str = "SAGAFLOW_FAULT_COMPACT";

/// An engine as the service: the same owner in every process, so a restarted one takes its
/// run up at once.
async fn engine(url: &str, schema: &str, compact: bool) -> Engine {
    let options = PgOptions::default()
        .schema(schema)
        .owner("svc")
        .compact_log(compact);
    let store = PgStore::connect(url, options).await.unwrap();
    Engine::builder().store(std::sync::Arc::new(store)).build()
}

/// Plays the child's part if this process is a child: runs the chain to its end, unless the
/// armed crash point stops it. `true` if it was one.
fn child() -> bool {
    let Some((dir, run)) = crash::child() else {
        return false;
    };
    let schema = std::env::var(SCHEMA).unwrap();
    runtime().block_on(async {
        let compact = std::env::var_os(COMPACT).is_some();
        let engine = engine(&support::url(), &schema, compact).await;
        crash::run_child(&engine, &dir, &run).await;
    });
    true
}

#[test]
fn a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step() {
    crash_at_every_point(
        "a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step",
        false,
    );
}

/// The same on a compact log, where a step's completion and the next one's start are a row.
#[test]
fn a_crash_at_every_commit_point_of_a_compact_log_loses_nothing() {
    crash_at_every_point(
        "a_crash_at_every_commit_point_of_a_compact_log_loses_nothing",
        true,
    );
}

/// Crashes a child process running the chain at each crash point in turn and checks each
/// recovery.
fn crash_at_every_point(test: &str, compact: bool) {
    if child() {
        return;
    }
    let Some(db) = runtime().block_on(support::Db::new()) else {
        return;
    };
    let configure = |command: &mut Command| {
        command.env(SCHEMA, &db.schema);
        if compact {
            command.env(COMPACT, "1");
        }
    };
    crash::crash_at_every_point(test, &configure, |dir, run, at| {
        runtime().block_on(async {
            let engine = engine(&support::url(), &db.schema, compact).await;
            crash::check_recovery(&engine, dir, run, at).await;
        });
    });
    if compact {
        // The run's checkpoints did write compact rows.
        let rows: i64 = runtime().block_on(async {
            support::client(&db.url)
                .await
                .query_one(
                    &format!("SELECT count(next_step) FROM \"{}\".events", db.schema),
                    &[],
                )
                .await
                .unwrap()
                .get(0)
        });
        assert!(rows > 0, "no row of the compact log logs a next start");
    }
}

#[test]
fn every_step_run_twice_on_purpose_changes_no_outcome() {
    if child() {
        return; // the child's part is the other test's
    }
    let Some(db) = runtime().block_on(support::Db::new()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let test = "a_crash_at_every_commit_point_loses_nothing_and_repeats_no_completed_step";
    let completed = crash::spawn_child((test, dir.path(), "twice"), None, &|command| {
        command.env(SCHEMA, &db.schema);
    });
    assert!(completed, "the run did not complete");
    crash::twice_in_order(dir.path());
    // And the file says each step completed once, after one attempt.
    runtime().block_on(async {
        let run = engine(&support::url(), &db.schema, false)
            .await
            .store()
            .load_run(&RunId::from("twice"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            run.steps
                .iter()
                .all(|s| s.status == StepStatus::Completed && s.attempts == 1)
        );
    });
}

const MACHINE_CHILD: &str = "SAGAFLOW_FAULT_MACHINE_CHILD";
const MACHINE: &str = "SAGAFLOW_FAULT_MACHINE";
/// An order's states from creation to its final one, and the events between them.
const STATES: [&str; 4] = ["Cart", "Placed", "Paid", "Shipped"];
const EVENTS: [&str; 3] = ["Checkout", "Pay", "Ship"];

/// A state as the machine store keeps it: JSON.
fn state(version: u64) -> String {
    format!("\"{}\"", STATES[usize::try_from(version).unwrap()])
}

/// The transition from `version` to the next.
fn transition(version: u64) -> MachineStep {
    let i = usize::try_from(version).unwrap();
    MachineStep {
        expected_version: version,
        state: state(version + 1),
        from: STATES[i].to_owned(),
        event: EVENTS[i].to_owned(),
        to: STATES[i + 1].to_owned(),
    }
}

/// Advances the machine `id` from `version` to its final state, each transition expecting the
/// version before it.
async fn advance_to_the_end(store: &PgStore, id: &str, mut version: u64) {
    while version < 3 {
        match store
            .advance_machine(id, transition(version))
            .await
            .unwrap()
        {
            Advanced::Applied { version: next, .. } => {
                assert_eq!(next, version + 1, "{id}");
                version = next;
            }
            Advanced::Conflict { found } => panic!("{id}: conflict at {version}, found {found:?}"),
        }
    }
}

/// The machine child's part: create the order, then take it to `Shipped`.
fn machine_child(schema: &str, id: &str) {
    runtime().block_on(async {
        let options = PgOptions::default().schema(schema).owner("svc");
        let store = PgStore::connect(&support::url(), options).await.unwrap();
        let (created, new) = store.insert_machine(id, "Order", &state(0)).await.unwrap();
        assert!(new && created.version == 0, "{id}: {created:?}");
        advance_to_the_end(&store, id, 0).await;
    });
}

#[test]
fn a_crash_at_every_commit_point_of_a_machine_keeps_its_state_and_log_in_step() {
    if let (Some(_), Ok(schema), Ok(id)) = (
        std::env::var_os(MACHINE_CHILD),
        std::env::var(SCHEMA),
        std::env::var(MACHINE),
    ) {
        machine_child(&schema, &id);
        return;
    }
    let Some(db) = runtime().block_on(support::Db::new()) else {
        return;
    };
    let mut crashes = 0;
    for point in [Point::BeforeCommit, Point::AfterCommit] {
        for n in 1_u64.. {
            assert!(n < 20, "{} never let the machine finish", point.as_str());
            let id = format!("order-{}-{n}", point.as_str());
            let status = Command::new(std::env::current_exe().unwrap())
                .args([
                    "a_crash_at_every_commit_point_of_a_machine_keeps_its_state_and_log_in_step",
                    "--exact",
                    "--test-threads=1",
                ])
                .env(MACHINE_CHILD, "1")
                .env(SCHEMA, &db.schema)
                .env(MACHINE, &id)
                .env(CRASH_AT, format!("{}:{n}", point.as_str()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            let at = format!("{} #{n}", point.as_str());
            let finished = status.success();
            // Commit #1 creates the machine, #k (k > 1) is the transition to version k - 1.
            let committed = match (finished, point) {
                (true, _) => Some(3),
                (false, Point::BeforeCommit) => n.checked_sub(2),
                (false, _) => Some(n - 1),
            };
            crashes += usize::from(!finished);
            runtime().block_on(check_machine(&db.schema, &id, committed, &at));
            if finished {
                break;
            }
        }
    }
    // The creation and three transitions, each before and after its commit.
    assert_eq!(crashes, 8, "every commit point of the machine was reached");
}

/// Checks, in a process that is not the crashed one, that the machine `id` is at `committed`
/// (the version of the last commit before the crash; `None`: its creation was not committed),
/// its state and log agreeing with it; that the write in flight at the crash, sent again as it
/// was, is applied at most once; and that the machine goes on to its end from there.
async fn check_machine(schema: &str, id: &str, committed: Option<u64>, at: &str) {
    let options = PgOptions::default().schema(schema).owner("svc");
    let store = PgStore::connect(&support::url(), options).await.unwrap();
    let stored = store.load_machine(id).await.unwrap();
    assert_eq!(
        stored.as_ref().map(|m| m.version),
        committed,
        "{at}: the version of the last commit, no more, no less"
    );
    let Some(stored) = stored else {
        // The creation was cut before its commit: nothing of the machine was written.
        assert!(
            store.machine_log(id, 0, 100).await.unwrap().is_empty(),
            "{at}"
        );
        let (created, new) = store.insert_machine(id, "Order", &state(0)).await.unwrap();
        assert!(new && created.version == 0, "{at}: {created:?}");
        advance_to_the_end(&store, id, 0).await;
        return check_log(&store, id, 3, at).await;
    };
    let version = stored.version;
    assert_eq!(
        stored.state,
        state(version),
        "{at}: the state of its version"
    );
    assert_eq!(stored.machine, "Order", "{at}");
    check_log(&store, id, version, at).await;

    // The write in flight at the crash, sent again: after its commit it changes nothing.
    if version == 0 {
        let (again, new) = store.insert_machine(id, "Order", &state(0)).await.unwrap();
        assert!(!new && again.version == 0, "{at}: created twice: {again:?}");
    } else {
        let replay = store
            .advance_machine(id, transition(version - 1))
            .await
            .unwrap();
        assert_eq!(
            replay,
            Advanced::Conflict {
                found: Some(version)
            },
            "{at}: a transition already committed was applied again"
        );
    }
    check_log(&store, id, version, at).await;

    // A fresh process goes on from the stored version, under optimistic concurrency.
    advance_to_the_end(&store, id, version).await;
    check_log(&store, id, 3, at).await;
    let done = store.load_machine(id).await.unwrap().unwrap();
    assert_eq!((done.version, done.state), (3, state(3)), "{at}");
}

/// The log of `id` is one row per version up to `version`, in order, each the transition
/// between the states of the versions it joins.
async fn check_log(store: &PgStore, id: &str, version: u64, at: &str) {
    let log = store.machine_log(id, 0, 100).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|row| row.seq).collect();
    assert_eq!(
        seqs,
        (1..=version).collect::<Vec<_>>(),
        "{at}: one log row per version"
    );
    for (i, row) in log.iter().enumerate() {
        assert_eq!(
            (row.from.as_str(), row.event.as_str(), row.to.as_str()),
            (STATES[i], EVENTS[i], STATES[i + 1]),
            "{at}: log row {}",
            row.seq
        );
    }
}
