//! The store behind PgBouncer in transaction mode (`pool_mode = transaction`), which drops
//! notifications, keeps no prepared statement from one transaction to the next and refuses
//! startup parameters. With `transaction_pooling` the conformance suite passes there, and so
//! do a service's workloads: many runs side by side, a signal another replica delivers,
//! replicas migrating a fresh schema at once, a read-only inspector. Without it, PgBouncer
//! refuses the store.
//!
//! PgBouncer has two server connections (`default_pool_size = 2`), so that the transactions
//! of every store of a test, and of the conformance checks running side by side on one
//! PgBouncer, interleave on the same server connections. Each test besides the conformance
//! checks runs a PgBouncer of its own (`tests/support/bouncer.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::conformance::durable::TestDatabase;
use sagaflow_core::runtime::store::StoredRunStatus;
use sagaflow_core::runtime::store::inspect::Inspect as _;
use sagaflow_core::runtime::{
    Builder, Definition, Engine, EventLog, RunId, RunStore, SignalStore, StepError, StoreError,
};
use sagaflow_postgres::inspect::PgInspector;
use sagaflow_postgres::{PgOptions, PgStore, SCHEMA_VERSION};
use support::bouncer::Bouncer;

/// PgBouncer's server connections.
const POOL: u32 = 2;

/// A schema of its own on the server, reached through a PgBouncer.
struct Bounced {
    /// The schema, on the server directly: dropped with it.
    db: support::Db,
    /// The server's database through PgBouncer.
    url: String,
}

impl Bounced {
    /// A fresh schema behind `bouncer`, or `None` (after saying so) without a server.
    async fn new(bouncer: &Bouncer) -> Option<Bounced> {
        Some(Bounced {
            db: support::Db::new().await?,
            url: bouncer.url(),
        })
    }

    fn options(&self) -> PgOptions {
        self.db.options().transaction_pooling(true)
    }

    async fn store(&self) -> PgStore {
        PgStore::connect(&self.url, self.options())
            .await
            .expect("connects through PgBouncer")
    }
}

impl TestDatabase for Bounced {
    type Store = PgStore;

    async fn open(&self, owner: &str, lease: Duration, max_recoveries: u32) -> PgStore {
        let options = self
            .options()
            .owner(owner)
            .lease(lease)
            .max_recoveries(max_recoveries);
        PgStore::connect(&self.url, options)
            .await
            .expect("connects through PgBouncer")
    }
}

/// The server's URL and a PgBouncer of this test's own in front of it, or `None` (after
/// saying so) without either.
async fn bouncer() -> Option<(String, Bouncer)> {
    let url = support::server().await?;
    let bouncer = Bouncer::start(&url, POOL)?;
    Some((url, bouncer))
}

/// The conformance suite, on one PgBouncer for every check of this binary: its process ends
/// with the test process (see `tests/support/bouncer.rs`).
mod conformance {
    use super::*;

    static SHARED: OnceLock<Option<Bouncer>> = OnceLock::new();

    /// A fresh schema behind the shared PgBouncer, or `None` as [`Bounced::new`] says.
    pub(super) async fn bounced() -> Option<Bounced> {
        let url = support::server().await?;
        let bouncer = SHARED.get_or_init(|| Bouncer::start(&url, POOL)).as_ref()?;
        Bounced::new(bouncer).await
    }

    macro_rules! bounced_store {
        () => {
            match super::bounced().await {
                Some(db) => {
                    let store = db.store().await;
                    // The schema outlives this test's store; the sweep drops it later.
                    std::mem::forget(db);
                    store
                }
                None => return,
            }
        };
    }

    macro_rules! bounced_db {
        () => {
            match super::bounced().await {
                Some(db) => db,
                None => return,
            }
        };
    }

    sagaflow_core::run_conformance!(bounced_store!());
    sagaflow_core::durable_conformance!(bounced_db!());
    sagaflow_core::machine_conformance!(bounced_store!());
    sagaflow_core::takeover_conformance!(bounced_db!());
    sagaflow_core::replica_conformance!(bounced_db!());
    sagaflow_core::queue_conformance!(bounced_db!());
}

/// A chain of `steps` steps, each adding one.
fn chain(steps: usize) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Chain");
    let mut last = b.input();
    for i in 0..steps {
        last = b.step(format!("s{i}"), StepOptions::new(), (last,), |_, (x,)| {
            let x = *x;
            async move { Ok::<_, StepError>(x + 1) }
        });
    }
    b.build_with_output(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_side_by_side_complete_through_pgbouncer() {
    let Some((_, bouncer)) = bouncer().await else {
        return;
    };
    let db = Bounced::new(&bouncer).await.unwrap();
    // Two replicas, so that two writers' batches interleave on the two server connections.
    let stores = [db.store().await, db.store().await];
    assert!(
        stores.iter().all(|s| s.signal_notices().is_none()),
        "behind PgBouncer no connection listens"
    );
    // No session lock can hold a default owner id there: each store's is random (see
    // `tests/owner.rs` for the `<host>-N` ids on a server of the store's own).
    let owners: Vec<&str> = stores.iter().map(PgStore::owner).collect();
    assert_ne!(owners[0], owners[1]);
    for owner in &owners {
        let (_, random) = owner.rsplit_once('-').unwrap();
        assert!(
            random.len() == 8 && u32::from_str_radix(random, 16).is_ok(),
            "{owner}: <host>-<pid>-<random>"
        );
    }
    let engines: Vec<Engine> = stores
        .iter()
        .map(|store| Engine::builder().store(Arc::new(store.clone())).build())
        .collect();
    let def = chain(5);
    let handles = futures_util::future::join_all(
        (0..40).map(|i| engines[i % 2].start(&def, format!("r{i}"), i as u32)),
    )
    .await;
    for (i, handle) in handles.into_iter().enumerate() {
        let report = handle.unwrap().wait().await.unwrap();
        assert_eq!(*report.output, i as u32 + 5, "run r{i}");
    }
    for i in 0..40 {
        let run = stores[(i + 1) % 2]
            .load_run(&RunId::from(format!("r{i}")))
            .await
            .unwrap()
            .expect("the run is stored");
        assert_eq!(run.status, StoredRunStatus::Completed, "run r{i}");
        assert_eq!(run.steps.len(), 5, "run r{i}");
        assert!(run.steps.iter().all(|s| s.output.is_some()), "run r{i}");
    }
    // The log holds every run's events, in one order both replicas read.
    let a = stores[0].events(None, 0, 10_000).await.unwrap();
    let b = stores[1].events(None, 0, 10_000).await.unwrap();
    assert_eq!(a, b);
    assert!(a.windows(2).all(|w| w[0].seq < w[1].seq));
    // Per run: creation, start, 5 × (start, completion) minus the first start, the end.
    assert_eq!(
        a.iter().filter(|e| e.run_id.as_str() == "r7").count(),
        1 + 5 * 2 + 1
    );
}

/// `ask -> approve`: `approve` waits for the signal "approval"; `asked` counts its starts.
fn approval_flow(asked: Arc<AtomicU32>) -> Definition<(), String> {
    let mut b = Builder::<()>::new("Approval");
    let input = b.input();
    let ask = b.step("ask", StepOptions::new(), (input,), |_, (_,)| async {
        Ok::<_, StepError>("draft".to_owned())
    });
    let approve = b.step("approve", StepOptions::new(), (ask,), move |ctx, (doc,)| {
        asked.fetch_add(1, Ordering::SeqCst);
        let doc = (*doc).clone();
        async move {
            let by: String = ctx.signal("approval").await?;
            Ok::<_, StepError>(format!("{doc} approved by {by}"))
        }
    });
    b.build_with_output(approve)
}

#[tokio::test]
async fn a_signal_another_replica_delivers_wakes_the_waiting_run_by_polling() {
    let Some((_, bouncer)) = bouncer().await else {
        return;
    };
    let db = Bounced::new(&bouncer).await.unwrap();
    let (a, b) = (db.store().await, db.store().await);
    // PgBouncer drops notifications: no `LISTEN`, the engine polls.
    assert!(a.signal_notices().is_none());
    let waiting = Engine::builder().store(Arc::new(a)).build();
    let delivering = Engine::builder().store(Arc::new(b)).build();
    let asked = Arc::new(AtomicU32::new(0));
    let def = approval_flow(Arc::clone(&asked));
    let handle = waiting.start(&def, "doc-1", ()).await.unwrap();
    let began = Instant::now();
    while asked.load(Ordering::SeqCst) == 0 {
        assert!(began.elapsed() < Duration::from_secs(10), "never asked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    delivering.signal("doc-1", "approval", "ana").await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .expect("the waiting run hears of the signal at its next poll")
        .unwrap();
    assert_eq!(*report.output, "draft approved by ana");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrate_a_fresh_schema_once_through_pgbouncer() {
    let Some((direct, bouncer)) = bouncer().await else {
        return;
    };
    let db = Bounced::new(&bouncer).await.unwrap();
    // Half say so in the URL, half in the options.
    let in_url = format!("{}?transaction_pooling=true", db.url);
    let opened = futures_util::future::join_all((0..6).map(|i| {
        let options = db.db.options().owner(format!("replica-{i}"));
        let (url, options) = if i % 2 == 0 {
            (in_url.clone(), options)
        } else {
            (db.url.clone(), options.transaction_pooling(true))
        };
        async move { PgStore::connect(&url, options).await }
    }))
    .await;
    for store in &opened {
        assert!(store.is_ok(), "{store:?}");
    }
    let (client, connection) = tokio_postgres::connect(&direct, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let version: i64 = client
        .query_one(
            &format!("SELECT version FROM \"{}\".schema_version", db.db.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION);
    // The migration lock went with its transactions: a store on the server directly, which
    // takes it for its session, gets it at once (a lock left on a server connection of
    // PgBouncer's would make it wait, and give up after the lock timeout).
    let direct_store = PgStore::connect(
        &direct,
        db.db.options().lock_timeout(Duration::from_secs(2)),
    )
    .await;
    assert!(direct_store.is_ok(), "{direct_store:?}");
}

#[tokio::test]
async fn without_transaction_pooling_pgbouncer_refuses_the_store_and_the_inspector() {
    let Some((_, bouncer)) = bouncer().await else {
        return;
    };
    let db = Bounced::new(&bouncer).await.unwrap();
    // The store's settings go as startup parameters, which PgBouncer refuses.
    match PgStore::connect(&db.url, db.db.options()).await {
        Err(StoreError::Open { path, message }) => {
            assert_eq!(path, db.url);
            assert!(
                message.contains("unsupported startup parameter"),
                "{message}"
            );
        }
        other => panic!("PgBouncer let the store in: {other:?}"),
    }
    let refused = PgInspector::connect(&db.url, &db.db.schema).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("unsupported startup parameter")),
        "{refused:?}"
    );

    // With the option, the store works, and the inspector too with the URL's word for it.
    let store = db.store().await;
    let engine = Engine::builder().store(Arc::new(store)).build();
    let report = engine
        .start(&chain(2), "r", 1)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(*report.output, 3);
    let inspector = PgInspector::connect(
        &format!("{}?transaction_pooling=true", db.url),
        &db.db.schema,
    )
    .await
    .unwrap();
    let runs = inspector.runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].run_id.as_str(), runs[0].status.as_str()),
        ("r", "completed")
    );
    assert_eq!(inspector.steps("r").await.unwrap().len(), 2);
}
