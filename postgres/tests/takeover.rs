//! Runs free to take over, on PostgreSQL: the replicas that look for them at once are given
//! different ones. `LeaseStore::free_runs` claims what it lists (each run's lease taken for
//! the store's owner in the listing's one statement, `FOR UPDATE SKIP LOCKED`), and the
//! engine's take-up that follows is answered from the claim. What every store does when a
//! replica dies or drains is in the conformance suite (`tests/conformance.rs`); this is what
//! only this store promises beyond it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::store::KnownGraph;
use sagaflow_core::runtime::store::inspect::Inspect as _;
use sagaflow_core::runtime::{
    Builder, Definition, Engine, LeaseStore, RunId, StepError, StoreError, TAKEOVER_BATCH,
};
use sagaflow_postgres::PgStore;
use sagaflow_postgres::inspect::PgInspector;

const RUNS: usize = 40;

/// One step that never ends on its own: a drain cuts it, and its runs are left free.
fn hanging() -> Definition<u32, u32> {
    counted_hanging(Arc::default())
}

/// [`hanging`], counting the steps it starts in `started`.
fn counted_hanging(started: Arc<AtomicUsize>) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Hanging");
    let input = b.input();
    let out = b.step("hang", StepOptions::new(), (input,), move |_, (x,)| {
        let x = *x;
        started.fetch_add(1, Ordering::SeqCst);
        async move {
            std::future::pending::<()>().await;
            Ok::<_, StepError>(x)
        }
    });
    b.build_with_output(out)
}

fn ids(runs: &[sagaflow_core::runtime::store::FreeRun]) -> BTreeSet<RunId> {
    runs.iter().map(|r| r.run_id.clone()).collect()
}

/// An engine on `db` under the owner id `owner`.
async fn engine_of(db: &support::Db, owner: &str) -> Engine {
    let store = PgStore::connect(&db.url, db.options().owner(owner))
        .await
        .unwrap();
    Engine::builder().store(Arc::new(store)).build()
}

/// `RUNS` runs of `hanging` left free on `db`: started by a replica drained with every run
/// mid-step. The graphs to list them by.
async fn free_runs_left(db: &support::Db) -> [KnownGraph; 1] {
    let def = hanging();
    let a = engine_of(db, "A").await;
    for i in 0..RUNS {
        a.start(&def, format!("run-{i:02}"), 1).await.unwrap();
    }
    let drained = a.shutdown(Duration::from_millis(50)).await;
    assert!(drained.error.is_none(), "{:?}", drained.error);
    assert_eq!(drained.released.len(), RUNS, "{drained:?}");
    [KnownGraph {
        workflow: "Hanging".to_owned(),
        fingerprint: None,
    }]
}

/// A replica drained with every run mid-step leaves `RUNS` runs free. Two replicas that list
/// them at once share them out: no run is listed to both, and every one is listed to one of
/// them. A replica listing after another is not given the runs the other just listed. A run
/// listed is this replica's to take up (from the claim: no statement of its own), and the
/// other's take-up of it is refused; a run listed and never taken up is free again once its
/// lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_looking_for_free_runs_at_once_are_given_different_ones() {
    let db = fresh_db!();
    let known = free_runs_left(&db).await;
    let lease = Duration::from_secs(1);
    let open = |owner: &'static str| {
        let options = db.options().owner(owner).lease(lease);
        let url = db.url.clone();
        async move { PgStore::connect(&url, options).await.unwrap() }
    };
    let (b, c, d) = tokio::join!(open("B"), open("C"), open("D"));

    // At once: the two listings share the runs out.
    let (by_b, by_c) = tokio::join!(b.free_runs(&known, 30), c.free_runs(&known, 30));
    let (by_b, by_c) = (ids(&by_b.unwrap()), ids(&by_c.unwrap()));
    let listed_at = Instant::now();
    assert!(
        by_b.is_disjoint(&by_c),
        "listed to both B and C: {:?}",
        by_b.intersection(&by_c).collect::<Vec<_>>()
    );
    assert_eq!(
        by_b.len() + by_c.len(),
        RUNS,
        "every free run listed to one of them (B {}, C {})",
        by_b.len(),
        by_c.len()
    );
    assert!(by_b.len() >= RUNS - 30 && by_c.len() >= RUNS - 30);
    // After them, nothing is left: what they listed is theirs.
    assert!(d.free_runs(&known, 100).await.unwrap().is_empty());

    // B takes up a run it was given, answered from its claim; C's take-up of it is refused.
    let run = by_b.first().unwrap().clone();
    assert_eq!(b.take_ups_from_claims(), 0);
    let lease_of_b = b.acquire(&run).await.unwrap();
    assert_eq!(
        b.take_ups_from_claims(),
        1,
        "the take-up was answered from the claim"
    );
    assert_eq!(lease_of_b.recoveries, 1, "the claim counted the take-up");
    match c.acquire(&run).await {
        Err(error @ StoreError::Leased { .. }) => {
            assert!(error.to_string().contains(run.as_str()), "{error}");
        }
        other => panic!("C took up a run B holds: {other:?}"),
    }

    // The runs listed and never taken up (C's, and B's but the one B took) are free again
    // once the lease of the claim runs out; the run B took up is B's while B renews it.
    let mut expected: BTreeSet<RunId> = by_b.union(&by_c).cloned().collect();
    expected.remove(&run);
    let mut again = BTreeSet::new();
    while again != expected {
        assert!(
            listed_at.elapsed() < lease + Duration::from_secs(5),
            "the runs listed and not taken up are not free again: {} of {} listed",
            again.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listed = ids(&d.free_runs(&known, 100).await.unwrap());
        assert!(!listed.contains(&run), "the run B holds was listed");
        again.extend(listed);
    }
    assert!(
        listed_at.elapsed() >= lease - Duration::from_millis(100),
        "listed again before the claim's lease ran out: after {:?}",
        listed_at.elapsed()
    );
}

/// Told that `RUNS` runs were handed over, each replica takes its share: the runs divided by
/// the live replicas (heard from lately) that run their workflow and hold none of them,
/// rounded up. Replicas asking one after the other take one share each, not the first every
/// run; the replica that handed them over (A, heard from too) does not count, nor does one
/// that runs other workflows (E); a share nobody took is found by the next plain poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_told_of_runs_handed_over_take_a_share_each() {
    let db = fresh_db!();
    let known = free_runs_left(&db).await;
    let open = |owner: &'static str| {
        let options = db.options().owner(owner);
        let url = db.url.clone();
        async move { PgStore::connect(&url, options).await.unwrap() }
    };
    let (a, b, c, d) = tokio::join!(open("A"), open("B"), open("C"), open("D"));
    for store in [&a, &b, &c, &d] {
        store.heartbeat(&known, &[]).await.unwrap();
    }
    let e = open("E").await;
    let other = [KnownGraph {
        workflow: "Other".to_owned(),
        fingerprint: None,
    }];
    e.heartbeat(&other, &[]).await.unwrap();

    // Three live replicas besides A: a share is 14 of the 40.
    let share = RUNS.div_ceil(3);
    let by_b = ids(&b.free_runs_shared(&known, 100, RUNS).await.unwrap());
    assert_eq!(
        by_b.len(),
        share,
        "B's share of {RUNS} runs among B, C and D"
    );
    let by_c = ids(&c.free_runs_shared(&known, 100, RUNS).await.unwrap());
    assert_eq!(by_c.len(), share, "C's share, after B took its own");
    assert!(by_b.is_disjoint(&by_c));
    // D did not hear: its tick finds what is left, whole.
    let by_d = ids(&d.free_runs(&known, 100).await.unwrap());
    assert_eq!(by_d.len(), RUNS - 2 * share);
    assert!(by_d.is_disjoint(&by_b) && by_d.is_disjoint(&by_c));
    // A share of nothing left is nothing.
    assert!(
        b.free_runs_shared(&known, 100, RUNS)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A replica that drains hands its runs over and says so on the schema's channel: the
/// replicas listening take them up at once, though their own polls are an hour apart, and
/// share them out, half each, rather than the first to hear taking every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_replica_s_runs_are_shared_by_the_replicas_told_of_them() {
    let db = fresh_db!();
    let a = engine_of(&db, "A").await;
    let def = hanging();
    for i in 0..RUNS {
        a.start(&def, format!("run-{i:02}"), 1).await.unwrap();
    }
    let mut replicas = Vec::new();
    for owner in ["B", "C"] {
        let store = Arc::new(
            PgStore::connect(&db.url, db.options().owner(owner))
                .await
                .unwrap(),
        );
        // Listening: its listener's first connection counts a poll's worth of hand-overs
        // that may have gone unheard, which the engine, built after, does not take as news.
        let mut heard = store.freed_notices().expect("the store listens");
        heard
            .wait_for(|n| *n >= TAKEOVER_BATCH as u64)
            .await
            .unwrap();
        let engine = Engine::builder()
            .store(store)
            .takeover_every(Duration::from_secs(3_600))
            .build();
        let started = Arc::new(AtomicUsize::new(0));
        engine
            .register(&counted_hanging(Arc::clone(&started)))
            .unwrap();
        replicas.push((engine, started));
    }
    // Both have told the store they live (at their first poll, on registering).
    let inspector = PgInspector::connect(&db.url, &db.schema).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while inspector.replicas().await.unwrap().replicas.len() < 2 {
        assert!(Instant::now() < deadline, "B and C were never heard from");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let drained = a.shutdown(Duration::from_millis(50)).await;
    assert_eq!(drained.released.len(), RUNS, "{drained:?}");
    let taken = || {
        replicas
            .iter()
            .map(|(_, started)| started.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while taken().iter().sum::<usize>() < RUNS {
        assert!(
            Instant::now() < deadline,
            "the runs handed over were not all taken up within 10 s (B and C poll hourly): {:?}",
            taken()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        taken(),
        [RUNS / 2, RUNS / 2],
        "B and C took half each (steps started on B, on C)"
    );
}

/// A store closed with leases still held (its process ends without a drain) lets them go
/// and says so: a replica listening hears how many runs were let go, and takes its share at
/// once rather than at its next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_closed_with_leases_held_announces_the_runs_it_lets_go() {
    use sagaflow_core::conformance::runs::create;

    let db = fresh_db!();
    let a = PgStore::connect(&db.url, db.options().owner("A"))
        .await
        .unwrap();
    for i in 0..5 {
        create(&a, &format!("run-{i}"), "W").await.unwrap();
    }
    let b = PgStore::connect(&db.url, db.options().owner("B"))
        .await
        .unwrap();
    let mut heard = b.freed_notices().expect("the store listens");
    heard
        .wait_for(|n| *n >= TAKEOVER_BATCH as u64)
        .await
        .unwrap();
    let before = *heard.borrow_and_update();

    drop(a);
    tokio::time::timeout(Duration::from_secs(10), heard.changed())
        .await
        .expect("the runs let go were announced within 10 s")
        .unwrap();
    assert_eq!(*heard.borrow() - before, 5, "five runs let go");
}

/// Runs a replica listed (and so leased) and then gave up, without taking them up (its
/// engine began to drain meanwhile), are free at once for another replica, though the
/// claim's lease would have held them for a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_listed_and_given_up_are_free_at_once() {
    let db = fresh_db!();
    let known = free_runs_left(&db).await;
    let options = |owner: &str| db.options().owner(owner).lease(Duration::from_secs(60));
    let b = PgStore::connect(&db.url, options("B")).await.unwrap();
    let c = PgStore::connect(&db.url, options("C")).await.unwrap();

    let by_b = ids(&b.free_runs(&known, 100).await.unwrap());
    assert_eq!(by_b.len(), RUNS);
    assert!(c.free_runs(&known, 100).await.unwrap().is_empty());
    let given: Vec<RunId> = by_b.iter().take(10).cloned().collect();
    b.give_up(&given).await.unwrap();

    let by_c = ids(&c.free_runs(&known, 100).await.unwrap());
    assert_eq!(
        by_c,
        given.iter().cloned().collect(),
        "free again at once: the ten given up"
    );
    // Given up, the claim answers no take-up: B's take-up of one goes to the table, where C
    // holds it now.
    match b.acquire(&given[0]).await {
        Err(StoreError::Leased { .. }) => {}
        other => panic!("B took up a run it gave up and C took: {other:?}"),
    }
    assert_eq!(b.take_ups_from_claims(), 0);
}

/// A run whose lease ran out while this store held it (the database out of reach for a
/// lease, say) may still be running here, and goes on if its next write finds the token
/// unchanged: this store's own listing leaves it out rather than take it again (which
/// would fence it), while another replica's lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_ran_out_here_is_left_to_the_other_replicas() {
    let db = fresh_db!();
    let known = free_runs_left(&db).await;
    let lease = Duration::from_millis(500);
    let b = PgStore::connect(&db.url, db.options().owner("B").lease(lease))
        .await
        .unwrap();
    let c = PgStore::connect(&db.url, db.options().owner("C").lease(lease))
        .await
        .unwrap();

    let by_b = ids(&b.free_runs(&known, 100).await.unwrap());
    let run = by_b.first().unwrap().clone();
    let held = b.acquire(&run).await.unwrap();
    assert_eq!(b.leases_held(), 1);
    b.pause_heartbeats();
    tokio::time::sleep(lease + Duration::from_millis(200)).await;

    let again_by_b = ids(&b.free_runs(&known, 100).await.unwrap());
    assert!(!again_by_b.contains(&run), "B took its own run again");
    assert_eq!(
        again_by_b.len(),
        RUNS - 1,
        "the runs B listed and never took up are free again"
    );
    let by_c = ids(&c.free_runs(&known, 100).await.unwrap());
    assert_eq!(
        by_c,
        [run.clone()].into_iter().collect(),
        "the run is free for another replica"
    );
    let taken = c.acquire(&run).await.unwrap();
    assert!(taken.recoveries > held.recoveries);
}

/// The listing's statement is prepared once per connection and planned as the server likes:
/// made while the tables are empty (a replica's first polls), its plan must still look the
/// free runs up by index once `runs` holds thousands of finished runs, not read it whole at
/// every poll. Counted by the server once the store's connections have gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_does_not_scan_the_runs_table_whole() {
    let db = fresh_db!();
    let known = [KnownGraph {
        workflow: "Quick".to_owned(),
        fingerprint: None,
    }];
    let mut b = Builder::<u32>::new("Quick");
    let input = b.input();
    let out = b.step("one", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x) }
    });
    let quick = b.build_with_output(out);
    {
        let lister = PgStore::connect(&db.url, db.options().owner("B").pool_size(1))
            .await
            .unwrap();
        for _ in 0..10 {
            assert!(lister.free_runs(&known, 100).await.unwrap().is_empty());
        }
        let a = engine_of(&db, "A").await;
        for wave in 0..30 {
            let handles = futures_util::future::join_all(
                (0..100).map(|r| a.start(&quick, format!("q{wave}-{r}"), 1)),
            )
            .await;
            for handle in handles {
                handle.unwrap().wait().await.unwrap();
            }
        }
        for _ in 0..50 {
            assert!(lister.free_runs(&known, 100).await.unwrap().is_empty());
        }
    }
    let scans = db.runs_scans().await;
    let (scans, rows) = (scans.sequential, scans.rows_read_sequentially);
    eprintln!("runs: {scans} sequential scans reading {rows} rows");
    assert!(
        rows < 3_000,
        "{scans} sequential scans of `runs` read {rows} rows"
    );
}
