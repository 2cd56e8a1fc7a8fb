//! Stores whose runs outlive their engine: what one process committed, another reads; a lease
//! keeps a run to one owner at a time, and an owner that lost it writes nothing more; the
//! event log replays in pages. Run on a [`TestDatabase`]: a database that several stores
//! (several processes, as far as the store can tell) open at once.

use std::time::{Duration, Instant};

use super::runs::{complete, create, start};
use crate::runtime::error::StoreError;
use crate::runtime::id::RunId;
use crate::runtime::report::StepStatus;
use crate::runtime::store::{
    Created, EventLog, LeaseStore, RunStore, Store, StoredRunStatus, UnfinishedRun,
};

/// A database for the durable checks, fresh for each check.
pub trait TestDatabase {
    /// The store under test.
    type Store: Store + Clone;

    /// Another store on this database, as another process would open it: holding leases as
    /// `owner`, each for `lease` unless renewed, and parking a run taken up more than
    /// `max_recoveries` times.
    /// (`async`, since a store may have to connect to a server first.)
    fn open(
        &self,
        owner: &str,
        lease: Duration,
        max_recoveries: u32,
    ) -> impl std::future::Future<Output = Self::Store>;
}

const LEASE: Duration = Duration::from_secs(30);

/// The recoveries the checks allow a run unless they are about parking.
pub(crate) const RECOVERIES: u32 = 100;

/// What one store committed, a store opened on the database afterwards reads back whole: the
/// run, its input, its graph fingerprint (all 64 bits), each step's status, attempts and
/// output; a step started and not finished comes back as running.
pub async fn a_reopened_store_has_every_committed_change(db: &impl TestDatabase) {
    let store = db.open("one", LEASE, RECOVERIES).await;
    assert!(
        store.keeps_finished_runs(),
        "a durable store keeps its runs"
    );
    assert_eq!(create(&store, "r", "W").await.unwrap(), Created::New);
    start(&store, "r", "a").await.unwrap();
    complete(&store, "r", "a", &"out".to_owned()).await.unwrap();
    start(&store, "r", "b").await.unwrap();
    let before = store.load_run(&"r".into()).await.unwrap();
    drop(store);

    let store = db.open("two", LEASE, RECOVERIES).await;
    let after = store.load_run(&"r".into()).await.unwrap();
    assert_eq!(before, after);
    let run = after.expect("the run is there");
    assert_eq!(run.workflow, "W");
    assert_eq!(run.graph_fingerprint, u64::MAX - 1, "all 64 bits survive");
    assert_eq!(run.input, "\"in\"");
    assert_eq!(run.status, StoredRunStatus::Running);
    let steps: Vec<_> = run
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status, s.attempts, s.output.as_deref()))
        .collect();
    assert_eq!(
        steps,
        [
            ("a", StepStatus::Completed, 1, Some("\"out\"")),
            ("b", StepStatus::Running, 1, None),
        ],
        "a step started and not finished comes back as running"
    );
    assert_eq!(
        store.unfinished_runs().await.unwrap(),
        [UnfinishedRun {
            run_id: "r".into(),
            workflow: "W".into()
        }]
    );
    assert_eq!(store.load_run(&"nope".into()).await.unwrap(), None);
}

/// While one owner's lease is live, another owner is refused, told who holds it and for how
/// long. Once the holder lets it go, the other takes it with a greater fencing token, and
/// from then on every write of the old holder is refused as fenced, naming the run.
pub async fn a_lease_keeps_a_run_to_one_owner_and_fences_the_one_that_lost_it(
    db: &impl TestDatabase,
) {
    let a = db.open("A", Duration::from_millis(300), RECOVERIES).await;
    let b = db.open("B", Duration::from_millis(300), RECOVERIES).await;
    create(&a, "r", "W").await.unwrap();
    let run = RunId::from("r");
    let held = a.acquire(&run).await.unwrap();
    match b.acquire(&run).await {
        Err(StoreError::Leased {
            run_id,
            owner,
            expires_in,
            ..
        }) => {
            assert_eq!((run_id.as_str(), owner.as_str()), ("r", "A"));
            assert!(expires_in <= Duration::from_millis(300), "{expires_in:?}");
        }
        other => panic!("A's lease is live, yet B got {other:?}"),
    }
    start(&a, "r", "a").await.unwrap();
    // A lets the run go (its step hangs, say); B takes it once the lease is free.
    a.release(&run);
    let began = Instant::now();
    let taken = loop {
        match b.acquire(&run).await {
            Ok(lease) => break lease,
            Err(StoreError::Leased { .. }) if began.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("B could not take the run over: {other}"),
        }
    };
    assert!(taken.token > held.token, "{taken:?} after {held:?}");
    assert!(taken.recoveries >= held.recoveries);
    match complete(&a, "r", "a", &"late".to_owned()).await {
        Err(StoreError::Fenced { run_id, token }) => {
            // The token the old holder wrote under: its lease's, or none once let go.
            assert_eq!(run_id.as_str(), "r");
            assert!(token < taken.token, "{token} against {taken:?}");
        }
        other => panic!("A's write after losing the lease: {other:?}"),
    }
    complete(&b, "r", "a", &"b's".to_owned()).await.unwrap();
    let stored = b.load_run(&run).await.unwrap().unwrap();
    assert_eq!(stored.steps[0].output.as_deref(), Some("\"b's\""));
}

/// A run taken up more times than a store allows is parked: refused to every owner from then
/// on, with the count, and logged; its unfinished siblings are still taken up.
pub async fn a_run_taken_up_too_often_is_parked(db: &impl TestDatabase) {
    let first = db.open("owner-0", Duration::from_millis(50), 2).await;
    create(&first, "crashy", "W").await.unwrap();
    create(&first, "calm", "W").await.unwrap();
    let run = RunId::from("crashy");
    first.release(&run);
    first.release(&"calm".into());
    let mut parked = None;
    let began = Instant::now();
    for n in 1..=10 {
        let owner = db
            .open(&format!("owner-{n}"), Duration::from_millis(50), 2)
            .await;
        loop {
            match owner.acquire(&run).await {
                Ok(_) => {
                    owner.release(&run);
                    break;
                }
                Err(StoreError::Leased { .. }) => {
                    assert!(
                        began.elapsed() < Duration::from_secs(10),
                        "a lease never expired"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(StoreError::Parked { run_id, recoveries }) => {
                    assert_eq!(run_id.as_str(), "crashy");
                    parked = Some((n, recoveries));
                    break;
                }
                Err(other) => panic!("taking the run up: {other}"),
            }
        }
        if parked.is_some() {
            break;
        }
    }
    let (n, recoveries) = parked.expect("the run was parked");
    assert_eq!(recoveries, 3, "parked on the take-up past the maximum of 2");
    assert_eq!(n, 3);
    let later = db.open("later", Duration::from_millis(50), 100).await;
    assert!(
        matches!(later.acquire(&run).await, Err(StoreError::Parked { .. })),
        "a parked run stays parked, whatever the next owner allows"
    );
    // Another store's committed event is in the log read after it: a store numbering its log
    // by transaction waits for it to be final, up to a second (`EventLog::events`). A
    // transaction of another test on the same server left open longer than that would hold
    // it back: it is waited for, as a replica would.
    loop {
        let logged = later.events(Some(&run), 0, 100).await.unwrap();
        let kind = crate::runtime::events::EventKind::RunParked;
        if logged.iter().any(|e| e.kind == kind) {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the parking is not logged: {logged:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    loop {
        match later.acquire(&"calm".into()).await {
            Ok(_) => break,
            Err(StoreError::Leased { .. }) if began.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(other) => panic!("the other run is not taken up: {other}"),
        }
    }
}

/// The event log replays every run's events in `seq` order, in pages from any position, or
/// one run's alone; an empty page ends it.
pub async fn the_log_replays_in_pages_from_a_position(db: &impl TestDatabase) {
    let store = db.open("one", LEASE, RECOVERIES).await;
    for id in ["p", "q"] {
        create(&store, id, "W").await.unwrap();
        start(&store, id, "a").await.unwrap();
        complete(&store, id, "a", &"x".to_owned()).await.unwrap();
    }
    let all = store.events(None, 0, usize::MAX).await.unwrap();
    assert!(all.len() >= 4, "{all:?}");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events(None, after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 3);
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(store.events(None, 0, 0).await.unwrap().is_empty());
    assert!(store.events(None, u64::MAX, 10).await.unwrap().is_empty());
    let q = store.events(Some(&"q".into()), 0, 100).await.unwrap();
    let expected: Vec<_> = all
        .iter()
        .filter(|e| e.run_id.as_str() == "q")
        .cloned()
        .collect();
    assert!(!q.is_empty());
    assert_eq!(q, expected);
    let none = store.events(Some(&"nope".into()), 0, 100).await.unwrap();
    assert!(none.is_empty());
    // Another store on the database replays the same log.
    let other = db.open("two", LEASE, RECOVERIES).await;
    assert_eq!(other.events(None, 0, usize::MAX).await.unwrap(), all);
}

/// Runs every durable check as a test of its own, each on a fresh database made by `$make`
/// (an expression whose value implements [`TestDatabase`]).
#[macro_export]
macro_rules! durable_conformance {
    ($make:expr) => {
        $crate::__conformance_checks!(durable, $make, []:
            a_reopened_store_has_every_committed_change,
            a_lease_keeps_a_run_to_one_owner_and_fences_the_one_that_lost_it,
            a_run_taken_up_too_often_is_parked,
            the_log_replays_in_pages_from_a_position,
        );
    };
}
