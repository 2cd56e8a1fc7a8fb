//! A crash at every commit point of a persisted state machine's life: its creation and each
//! transition, before the commit and after it. A child process (this test binary again) drives
//! an order from `Cart` to `Shipped` with one crash point armed and aborts there; the test
//! reopens the file and checks that the machine is at the state of its last committed version,
//! that its log has exactly one row per version, in order, and that carrying on from there
//! reaches `Shipped` with the log complete.
//!
//! Needs the `fault-injection` feature: `cargo test -p sagaflow --features fault-injection
//! --test faults`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sagaflow::{ActionError, SqliteOptions, SqliteStore, fsm};
use sagaflow_core::fault::{CRASH_AT, Point};

const CHILD: &str = "SAGAFLOW_FSM_FAULT_CHILD";

fsm! {
    /// An order's lifecycle.
    pub Order {
        *Cart + Checkout(u64) = Placed(u64),
        Placed(u64) + Pay / charge = Paid(u64),
        Paid + Ship = Shipped,
        state Paid(u64) { entry = receipt },
        state Shipped { final },
    }
}

struct Shop;

impl OrderContext for Shop {
    async fn charge(&mut self, items: &u64) -> Result<u64, ActionError> {
        Ok(items * 100)
    }
    async fn receipt(&mut self, _cents: &u64) -> Result<(), ActionError> {
        Ok(())
    }
}

/// The events from `state` on, to `Shipped`.
fn rest(state: &str) -> Vec<OrderEvent> {
    let all = [
        ("Cart", OrderEvent::Checkout(3)),
        ("Placed", OrderEvent::Pay),
        ("Paid", OrderEvent::Ship),
    ];
    all.into_iter()
        .skip_while(|(from, _)| *from != state)
        .map(|(_, event)| event)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir.join("machines.db"), SqliteOptions::default()).unwrap()
}

/// The child's part: create the order (or open it) and fire every event left.
fn child(dir: &Path) {
    runtime().block_on(async {
        let store = store(dir);
        let mut order = Order::open(&store, "o").await.unwrap();
        for event in rest(order.state_name()) {
            order.fire(&mut Shop, event).await.unwrap();
        }
    });
}

#[test]
fn a_crash_at_every_commit_point_of_a_machine_keeps_its_state_and_log_in_step() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(&PathBuf::from(dir));
        return;
    }
    let mut crashes = 0;
    for point in [Point::BeforeCommit, Point::AfterCommit] {
        for n in 1.. {
            assert!(n < 50, "{} never let the machine finish", point.as_str());
            let dir = tempfile::tempdir().unwrap();
            let status = Command::new(std::env::current_exe().unwrap())
                .args([
                    "a_crash_at_every_commit_point_of_a_machine_keeps_its_state_and_log_in_step",
                    "--exact",
                    "--test-threads=1",
                ])
                .env(CHILD, dir.path())
                .env(CRASH_AT, format!("{}:{n}", point.as_str()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            let at = format!("{} #{n}", point.as_str());
            let finished = status.success();
            crashes += usize::from(!finished);
            runtime().block_on(async {
                let store = store(dir.path());
                let Some(mut order) = Order::load(&store, "o").await.unwrap() else {
                    // The crash came before the machine's creation was committed.
                    assert!(!finished, "{at}");
                    return;
                };
                let names = ["Cart", "Placed", "Paid", "Shipped"];
                let version = usize::try_from(order.version()).unwrap();
                assert_eq!(
                    order.state_name(),
                    names[version],
                    "{at}: the state of its version"
                );
                let log = order.history().await.unwrap();
                assert_eq!(log.len(), version, "{at}: one log row per version");
                for (i, row) in log.iter().enumerate() {
                    assert_eq!(
                        (row.from.as_str(), row.to.as_str()),
                        (names[i], names[i + 1]),
                        "{at}"
                    );
                }
                for event in rest(order.state_name()) {
                    order.fire(&mut Shop, event).await.unwrap();
                }
                assert_eq!(order.state_name(), "Shipped", "{at}");
                assert_eq!(order.history().await.unwrap().len(), 3, "{at}");
            });
            if finished {
                break;
            }
        }
    }
    // Creation and three transitions, each before and after its commit.
    assert_eq!(crashes, 8, "every commit point was reached");
}
