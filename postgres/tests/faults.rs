//! Faults on PostgreSQL, each real: a server that cannot be reached, a newer schema, replicas
//! migrating at once, a server restarted in the middle of runs, and a connection cut around a
//! `COMMIT` by a proxy the test controls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Change, Definition, Engine, EventKind, RunId, RunStore, StepError, StoreError,
};
use sagaflow_postgres::{PgOptions, PgStore, SCHEMA_VERSION};
use support::proxy::{Cut, Proxy};
use support::server::TempServer;

#[tokio::test]
async fn an_unreachable_server_is_an_error_naming_it_without_the_password() {
    let port = support::server::free_port(); // bound, then let go: nothing listens there
    let url = format!("postgres://app:s3cret@127.0.0.1:{port}/orders");
    let options = PgOptions::default().connect_timeout(Duration::from_secs(2));
    let error = PgStore::connect(&url, options).await.unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(&error, StoreError::Open { path, .. } if *path == format!("postgres://app@127.0.0.1:{port}/orders")),
        "{error:?}"
    );
    assert!(text.contains("cannot connect"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// A schema a newer release migrated: this code works on it while that release says it may
/// (its migrations only added), and is refused once it says it may not.
#[tokio::test]
async fn a_newer_schema_is_worked_on_within_its_window_and_refused_beyond_it() {
    let db = fresh_db!();
    drop(db.store().await);
    let client = support::client(&db.url).await;
    let newer = |compatible_from: i64| {
        format!(
            "UPDATE \"{}\".schema_version SET version = {}, compatible_from = {compatible_from}",
            db.schema,
            SCHEMA_VERSION + 1
        )
    };
    client.batch_execute(&newer(SCHEMA_VERSION)).await.unwrap();
    let store = PgStore::connect(&db.url, db.options()).await.unwrap();
    sagaflow_core::conformance::runs::create(&store, "r", "W")
        .await
        .unwrap();
    sagaflow_core::conformance::runs::start(&store, "r", "a")
        .await
        .unwrap();
    drop(store);
    let version: i64 = client
        .query_one(
            &format!("SELECT version FROM \"{}\".schema_version", db.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        version,
        SCHEMA_VERSION + 1,
        "an older store migrates nothing back"
    );
    client
        .batch_execute(&newer(SCHEMA_VERSION + 1))
        .await
        .unwrap();
    match PgStore::connect(&db.url, db.options()).await {
        Err(StoreError::SchemaTooNew {
            path,
            found,
            supported,
        }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            assert!(path.starts_with("postgres://"), "{path}");
        }
        other => panic!("a newer schema was opened: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let db = fresh_db!();
    let opened = futures_util::future::join_all(
        (0..6).map(|i| PgStore::connect(&db.url, db.options().owner(format!("replica-{i}")))),
    )
    .await;
    for store in &opened {
        assert!(store.is_ok(), "{store:?}");
    }
    let client = support::client(&db.url).await;
    let version: i64 = client
        .query_one(
            &format!("SELECT version FROM \"{}\".schema_version", db.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION);
}

/// Effects of steps, counted by run and step: what ran, and how often.
type Tally = Arc<Mutex<HashMap<(String, String), u32>>>;

/// A chain of `steps` steps, each counting its effect and sleeping `pause`.
fn chain(steps: usize, pause: Duration, tally: &Tally) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Chain");
    let mut last = b.input();
    for i in 0..steps {
        let tally = Arc::clone(tally);
        last = b.step(
            format!("s{i}"),
            StepOptions::new(),
            (last,),
            move |ctx, (x,)| {
                let key = (ctx.run_id().as_str().to_owned(), ctx.step().to_owned());
                *tally.lock().unwrap().entry(key).or_default() += 1;
                let x = *x;
                async move {
                    tokio::time::sleep(pause).await;
                    Ok::<_, StepError>(x + 1)
                }
            },
        );
    }
    b.build_with_output(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_share_commits() {
    let db = fresh_db!();
    let store = db.store().await;
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let tally = Tally::default();
    let def = chain(5, Duration::ZERO, &tally);
    let handles =
        futures_util::future::join_all((0..100).map(|i| engine.start(&def, format!("r{i}"), 0)))
            .await;
    for handle in handles {
        assert_eq!(*handle.unwrap().wait().await.unwrap().output, 5);
    }
    let (writes, commits) = (store.writes(), store.commits());
    // 100 creations (each with its first step's start) and 100 × 5 checkpoints (four pairs,
    // the last completion with the run's end).
    assert!(writes >= 600, "{writes} writes");
    assert!(
        commits * 2 < writes,
        "{commits} commits for {writes} writes: the runs did not share transactions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_go_on_across_a_restart_of_the_server() {
    if support::server().await.is_none() {
        return;
    }
    let server = TempServer::start();
    let store = PgStore::connect(&server.url(), PgOptions::default())
        .await
        .unwrap();
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let tally = Tally::default();
    let def = chain(10, Duration::from_millis(30), &tally);
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(engine.start(&def, format!("r{i}"), 0).await.unwrap());
    }
    while tally.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let restart = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    });
    for handle in handles {
        let report = handle.wait().await.expect("the run survived the restart");
        assert_eq!(*report.output, 10);
    }
    let _server = restart.await.unwrap();
    let tally = tally.lock().unwrap().clone();
    assert_eq!(tally.len(), 200, "every step of every run ran");
    let twice: Vec<_> = tally.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "steps ran twice: {twice:?}");
    for i in 0..20 {
        let run = store
            .load_run(&RunId::from(format!("r{i}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.steps.len(), 10);
    }
}

/// A lone write's commit cut, committed by its caller (the default) and by the writer's task
/// (`commit_on_caller(false)`): either way settled on a new connection.
async fn cut_around_a_commit(cut: Cut) {
    cut_around_a_commit_with(cut, PgOptions::default()).await;
    cut_around_a_commit_with(cut, PgOptions::default().commit_on_caller(false)).await;
}

async fn cut_around_a_commit_with(cut: Cut, options: PgOptions) {
    let Some(url) = support::server().await else {
        return;
    };
    let options_on_caller = options.commit_on_caller;
    let (proxy, through) = Proxy::before(&url).await;
    let schema = support::fresh_schema();
    let store = PgStore::connect(&through, options.schema(&schema))
        .await
        .unwrap();
    let run = RunId::from("r");
    let created = sagaflow_core::conformance::runs::create(&store, "r", "W").await;
    assert!(created.is_ok(), "{created:?}");
    proxy.arm(cut);
    let on_caller = store.writes_on_caller();
    let started = store
        .record(
            &run,
            &Change::StepStarted {
                step: "a",
                attempt: 1,
            },
        )
        .await;
    assert_eq!(proxy.cuts(), 1, "the proxy cut the writer's connection");
    assert!(started.is_ok(), "{started:?}");
    assert_eq!(
        store.writes_on_caller() - on_caller,
        u64::from(options_on_caller),
        "the cut write went the way the options say"
    );
    // Once, whether the cut came before the server had the `COMMIT` or after it committed.
    assert_eq!(
        support::count_events(&store, "r", EventKind::StepStarted).await,
        1
    );
    let stored = store.load_run(&run).await.unwrap().unwrap();
    assert_eq!(stored.steps.len(), 1);
    assert_eq!(stored.steps[0].attempts, 1);
    // And the writer goes on on its new connection.
    sagaflow_core::conformance::runs::complete(&store, "r", "a", &"x".to_owned())
        .await
        .unwrap();
    assert_eq!(
        support::count_events(&store, "r", EventKind::StepCompleted).await,
        1
    );
    drop(store);
    let client = support::client(&url).await;
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_acknowledgement_is_lost_is_kept_once() {
    cut_around_a_commit(Cut::AfterCommit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_before_the_commit_loses_nothing() {
    cut_around_a_commit(Cut::BeforeCommit).await;
}

/// A large batch's shares commit side by side on two writers' connections, and the first
/// `COMMIT` to pass the proxy is cut (before the server has it, or after it committed): the
/// writer whose share it was settles it on a new connection, the other's commits as it was,
/// and each of the 64 writes is appended once and answered. The 64 writes are queued at once
/// while both writers wait (a runtime of one thread: no writer runs while the burst is
/// polled), so the writer that gathers them cuts them in two shares. Every write goes to the
/// writers (`commit_on_caller(false)`): else the burst's first, coming after creations made
/// one at a time, would be committed alone by its caller, and the rest cut in two.
async fn a_share_cut_around_its_commit(cut: Cut) {
    use std::future::Future as _;

    use sagaflow_core::conformance::runs::{create, start};

    let Some(url) = support::server().await else {
        return;
    };
    let (proxy, through) = Proxy::before(&url).await;
    let schema = support::fresh_schema();
    let options = PgOptions::default()
        .schema(&schema)
        .writers(2)
        .commit_on_caller(false);
    let store = PgStore::connect(&through, options).await.unwrap();
    let ids: Vec<String> = (0..64).map(|i| format!("r{i:02}")).collect();
    for id in &ids {
        create(&store, id, "W").await.unwrap();
    }
    proxy.arm(cut);
    let mut burst = Box::pin(futures_util::future::join_all(
        ids.iter().map(|id| start(&store, id, "burst")),
    ));
    let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(burst.as_mut().poll(cx))).await;
    assert!(polled.is_pending(), "the burst waits for its commits");
    let burst = burst.await;
    assert!(burst.iter().all(Result::is_ok), "{burst:?}");
    assert_eq!(proxy.cuts(), 1, "the proxy cut one writer's connection");

    let client = support::client(&url).await;
    let rows = client
        .query(
            &format!(
                "SELECT run_id, count(*) FROM \"{schema}\".events \
                 WHERE step = 'burst' GROUP BY run_id ORDER BY run_id"
            ),
            &[],
        )
        .await
        .unwrap();
    let appended: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(String, i64)> = ids.iter().cloned().map(|id| (id, 1)).collect();
    assert_eq!(appended, expected, "each write appended once");
    let transactions: i64 = client
        .query_one(
            &format!(
                "SELECT count(DISTINCT seq >> 20) FROM \"{schema}\".events WHERE step = 'burst'"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(transactions, 2, "the burst committed as two shares");
    drop(store);
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_share_whose_commit_acknowledgement_is_lost_is_kept_once() {
    a_share_cut_around_its_commit(Cut::AfterCommit).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_share_cut_before_its_commit_loses_nothing() {
    a_share_cut_around_its_commit(Cut::BeforeCommit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_delivered_by_another_replica_is_heard_at_once() {
    use sagaflow_core::runtime::SignalStore;
    let db = fresh_db!();
    let listening = db.store().await;
    let delivering = db.store().await;
    sagaflow_core::conformance::runs::create(&delivering, "r", "W")
        .await
        .unwrap();
    let mut notices = listening.signal_notices().expect("PostgreSQL notices");
    // The listener's first notice comes when it has connected; from then on, only deliveries.
    tokio::time::timeout(Duration::from_secs(10), notices.changed())
        .await
        .expect("the listener connects")
        .unwrap();
    notices.borrow_and_update();
    assert!(
        delivering
            .deliver_signal(&RunId::from("r"), "go", "1")
            .await
            .unwrap()
    );
    tokio::time::timeout(Duration::from_secs(10), notices.changed())
        .await
        .expect("the delivery by the other store was heard")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_stops_answering_is_given_up_not_waited_on_forever() {
    // The writer gives the silent connection up after the statement timeout and 2 s, then
    // settles the batch on a new one: the write is kept once, and does not hang.
    let options = PgOptions::default().statement_timeout(Duration::from_millis(500));
    tokio::time::timeout(
        Duration::from_secs(30),
        cut_around_a_commit_with(Cut::Stall, options),
    )
    .await
    .expect("the write did not hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_lock_timeout_is_an_error_naming_the_server() {
    let db = fresh_db!();
    let store = PgStore::connect(
        &db.url,
        db.options().lock_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    sagaflow_core::conformance::runs::create(&store, "r", "W")
        .await
        .unwrap();
    let mut client = support::client(&db.url).await;
    // Every checkpoint appends to the event log: a transaction that holds the log in share
    // mode keeps each write waiting for its lock.
    let holder = client.transaction().await.unwrap();
    holder
        .batch_execute(&format!(
            "LOCK TABLE \"{}\".events IN SHARE MODE",
            db.schema
        ))
        .await
        .unwrap();
    let began = std::time::Instant::now();
    let error = sagaflow_core::conformance::runs::start(&store, "r", "a")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Busy { path } if path.starts_with("postgres://")),
        "{error:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    holder.rollback().await.unwrap();
    // Once the lock is let go, the same write goes through.
    sagaflow_core::conformance::runs::start(&store, "r", "a")
        .await
        .unwrap();
}

/// A run whose eight branches run at once sends several writes of the same run in one batch:
/// its row is fenced once, and every branch's start and completion is kept once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallel_branches_of_a_run_share_batches() {
    let db = fresh_db!();
    let store = db.store().await;
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let mut b = Builder::<u32>::new("Fan");
    let input = b.input();
    let branches: Vec<_> = (0..8)
        .map(|i| {
            b.step(format!("b{i}"), StepOptions::new(), (input,), |_, (x,)| {
                let x = *x;
                async move { Ok::<_, StepError>(x + 1) }
            })
        })
        .collect();
    let last = branches[7];
    let def = b.build_with_output(last);
    let handles =
        futures_util::future::join_all((0..20).map(|i| engine.start(&def, format!("f{i}"), 0)))
            .await;
    for handle in handles {
        assert_eq!(*handle.unwrap().wait().await.unwrap().output, 1);
    }
    for i in 0..20 {
        let run = format!("f{i}");
        assert_eq!(
            support::count_events(&store, &run, EventKind::StepStarted).await,
            8,
            "{run}"
        );
        assert_eq!(
            support::count_events(&store, &run, EventKind::StepCompleted).await,
            8,
            "{run}"
        );
        assert_eq!(
            support::count_events(&store, &run, EventKind::RunCompleted).await,
            1,
            "{run}"
        );
        let stored = store.load_run(&RunId::from(run)).await.unwrap().unwrap();
        assert_eq!(stored.steps.len(), 8);
    }
    assert!(
        store.commits() * 2 < store.writes(),
        "{} commits for {} writes",
        store.commits(),
        store.writes()
    );
}

/// Two replicas creating the same run at the same moment: one creates it, the other is told
/// it exists and whose workflow it is, even when its statement had to wait for the other's
/// uncommitted row and could not see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_creating_one_run_at_once_create_it_once() {
    use sagaflow_core::runtime::store::Created;
    let db = fresh_db!();
    let (a, b) = (db.store().await, db.store().await);
    for i in 0..20 {
        let id = format!("same-{i}");
        let (first, second) = tokio::join!(
            sagaflow_core::conformance::runs::create(&a, &id, "W"),
            sagaflow_core::conformance::runs::create(&b, &id, "W"),
        );
        let mut found = [first.unwrap(), second.unwrap()];
        found.sort_by_key(|c| matches!(c, Created::Existing { .. }));
        assert_eq!(
            found,
            [
                Created::New,
                Created::Existing {
                    workflow: "W".into()
                }
            ],
            "{id}"
        );
    }
}

/// Two stores in two schemas of one database share nothing: not runs, not signals, not the
/// notices of deliveries, not leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_in_two_schemas_share_nothing() {
    use sagaflow_core::runtime::{LeaseStore, SignalStore};
    let (first, second) = (fresh_db!(), fresh_db!());
    let (a, b) = (first.store().await, second.store().await);
    sagaflow_core::conformance::runs::create(&a, "r", "W")
        .await
        .unwrap();
    assert_eq!(
        sagaflow_core::conformance::runs::create(&b, "r", "Other")
            .await
            .unwrap(),
        sagaflow_core::runtime::store::Created::New,
        "the same id is free in the other schema"
    );
    let mut heard = b.signal_notices().expect("notices");
    tokio::time::timeout(Duration::from_secs(10), heard.changed())
        .await
        .expect("the listener connects")
        .unwrap();
    heard.borrow_and_update();
    assert!(
        a.deliver_signal(&RunId::from("r"), "go", "1")
            .await
            .unwrap()
    );
    assert_eq!(b.signal(&RunId::from("r"), "go").await.unwrap(), None);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), heard.changed())
            .await
            .is_err(),
        "a delivery in one schema is not a notice in the other"
    );
    // Each store holds its own run's lease; neither is refused for the other's.
    assert!(a.acquire(&RunId::from("r")).await.is_ok());
    assert!(b.acquire(&RunId::from("r")).await.is_ok());
    assert_eq!(
        b.load_run(&RunId::from("r"))
            .await
            .unwrap()
            .unwrap()
            .workflow,
        "Other"
    );
}

/// A store that closes takes its writer's batch number with it: `writers` does not grow with
/// every process that ever ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_leaves_no_batch_number_behind() {
    let db = fresh_db!();
    let store = PgStore::connect(&db.url, db.options().owner("passing"))
        .await
        .unwrap();
    sagaflow_core::conformance::runs::create(&store, "r", "W")
        .await
        .unwrap();
    let client = support::client(&db.url).await;
    // Whichever of the store's writers is free takes the creation: the first writes under
    // the owner's id, the others under `<id>/w<i>`.
    let sql = format!(
        "SELECT count(*) FROM \"{}\".writers WHERE owner = 'passing' OR owner LIKE 'passing/w%'",
        db.schema
    );
    let rows: i64 = client.query_one(&sql, &[]).await.unwrap().get(0);
    assert_eq!(rows, 1, "the live writer that wrote keeps its number");
    drop(store);
    let began = std::time::Instant::now();
    loop {
        let rows: i64 = client.query_one(&sql, &[]).await.unwrap().get(0);
        if rows == 0 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the closed store's number stayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
