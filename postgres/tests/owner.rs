//! A store's default owner id on PostgreSQL: `<host>-N`, the lowest `N` no live store of the
//! schema holds, under a session advisory lock. A second live store gets the next id; a
//! store's id comes back once it is gone; a store whose lock's connection is lost takes no run
//! up until it has its id again; an explicit id is held the same way; and a process killed with SIGKILL mid-run, restarted with
//! the default options, is the same owner and takes its run up at once, far within the lease.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::conformance::side::{side, side_lines};
use sagaflow_core::runtime::store::LeaseStore;
use sagaflow_core::runtime::{Builder, Definition, Engine, RunId, StepError};
use sagaflow_postgres::{PgOptions, PgStore};

#[macro_use]
mod support;

/// This host's name, as the default owner ids carry it.
fn host() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// Waits (at most 5 s) until the server says whether a live session holds `owner` in
/// `schema` is `held`.
async fn until_held(schema: &str, owner: &str, held: bool) {
    let began = Instant::now();
    while sagaflow_postgres::testing::owner_held(&support::url(), schema, owner).await != Some(held)
    {
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "`{owner}` is still {}held after 5 s",
            if held { "not " } else { "" }
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_owner_is_the_lowest_free_id_of_its_host_and_comes_back_once_its_store_is_gone() {
    let db = fresh_db!();
    let host = host();
    let first = db.store().await;
    assert_eq!(first.owner(), format!("{host}-0"));
    let second = db.store().await;
    assert_eq!(second.owner(), format!("{host}-1"), "the first is live");
    until_held(&db.schema, &format!("{host}-0"), true).await;

    // Another schema's ids are its own.
    let other = fresh_db!();
    assert_eq!(other.store().await.owner(), format!("{host}-0"));

    // An explicit owner is as given, held as a default one is: a second live store under it
    // is refused, naming the id and the server; it is free once its store is gone.
    let named = PgStore::connect(&db.url, db.options().owner("svc"))
        .await
        .unwrap();
    assert_eq!(named.owner(), "svc");
    until_held(&db.schema, "svc", true).await;
    let refused = PgStore::connect(&db.url, db.options().owner("svc"))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&refused, sagaflow_core::runtime::StoreError::OwnerInUse { owner, .. } if owner == "svc"),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("`svc`") && message.contains(named.url()),
        "{message}"
    );
    drop(named);
    until_held(&db.schema, "svc", false).await;
    let again = PgStore::connect(&db.url, db.options().owner("svc"))
        .await
        .unwrap();
    assert_eq!(again.owner(), "svc");

    drop(first);
    // The server lets the lock go once the connection that held it has closed.
    until_held(&db.schema, &format!("{host}-0"), false).await;
    let third = db.store().await;
    assert_eq!(
        third.owner(),
        format!("{host}-0"),
        "the freed id is taken again"
    );
    assert_eq!(second.owner(), format!("{host}-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_lost_its_owner_lock_takes_no_run_up_until_it_has_it_again() {
    let db = fresh_db!();
    let store = db.store().await;
    let owner = store.owner().to_owned();
    let nothing = RunId::from("no-such-run");
    store.acquire(&nothing).await.unwrap();

    // The lock's connection is cut by the server, and another session takes the id.
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let (k1, k2) = sagaflow_postgres::testing::owner_lock(&db.schema, &owner);
    let (c1, c2) = (i64::from(k1.cast_unsigned()), i64::from(k2.cast_unsigned()));
    let cut: bool = client
        .query_one(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory' \
             AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2",
            &[&c1, &c2],
        )
        .await
        .unwrap()
        .get(0);
    assert!(cut, "the lock's connection was found and ended");
    let taken: bool = client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&k1, &k2])
        .await
        .unwrap()
        .get(0);
    assert!(taken, "the id was free once its connection ended");

    // The store finds out, and takes no run up as an owner another may be.
    let began = Instant::now();
    let refused = loop {
        match store.acquire(&nothing).await {
            Err(error) => break error,
            Ok(_) => {
                assert!(began.elapsed() < Duration::from_secs(5), "never refused");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let message = refused.to_string();
    assert!(
        message.contains(&owner) && message.contains("not held"),
        "{message}"
    );
    // Still refused while the other session holds the id.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(store.acquire(&nothing).await.is_err());

    // Once the id is free, the store claims it again and goes on.
    client
        .query_one("SELECT pg_advisory_unlock($1, $2)", &[&k1, &k2])
        .await
        .unwrap();
    let began = Instant::now();
    while store.acquire(&nothing).await.is_err() {
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "the id was not claimed again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until_held(&db.schema, &owner, true).await;
    assert_eq!(store.owner(), owner);
}

const CHILD: &str = "SAGAFLOW_OWNER_CHILD";
const SCHEMA: &str = "SAGAFLOW_OWNER_SCHEMA";

/// `s1 -> s2`, each writing its name to the side file; in the child, `s2` then waits forever,
/// for the kill.
fn two_steps(dir: &Path, hang: bool) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new("Two");
    let input = b.input();
    let d1 = dir.to_owned();
    let s1 = b.step("s1", StepOptions::new(), (input,), move |_, (x,)| {
        side(&d1, "s1");
        async move { Ok::<u32, StepError>(*x + 1) }
    });
    let d2 = dir.to_owned();
    let s2 = b.step("s2", StepOptions::new(), (s1,), move |_, (x,)| {
        side(&d2, "s2");
        let x = *x;
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok::<u32, StepError>(x + 1)
        }
    });
    b.build_with_output(s2)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An engine on `schema` with the default options: the default owner, a 30 s lease.
async fn engine(schema: &str) -> (Engine, String) {
    let store = PgStore::connect(&support::url(), PgOptions::default().schema(schema))
        .await
        .unwrap();
    let owner = store.owner().to_owned();
    (Engine::builder().store(Arc::new(store)).build(), owner)
}

/// The child's part: start the run, which hangs in `s2` until the process is killed.
fn child(dir: &Path, schema: &str) {
    runtime().block_on(async {
        let (engine, owner) = engine(schema).await;
        side(dir, &format!("owner {owner}"));
        engine
            .start(&two_steps(dir, true), "run", 0)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    });
}

#[test]
fn a_process_killed_mid_run_and_restarted_takes_its_run_up_at_once() {
    if let (Some(dir), Ok(schema)) = (std::env::var_os(CHILD), std::env::var(SCHEMA)) {
        child(&PathBuf::from(dir), &schema);
        return;
    }
    let Some(db) = runtime().block_on(support::Db::new()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_process_killed_mid_run_and_restarted_takes_its_run_up_at_once",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .env(SCHEMA, &db.schema)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while !side_lines(dir.path()).contains(&"s2".to_owned()) {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the child did not reach s2"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no destructor, its leases left to expire in 30 s
    child.wait().unwrap();
    let killed = Instant::now();
    let host = host();
    assert_eq!(
        side_lines(dir.path())[0],
        format!("owner {host}-0"),
        "the child held the first default id"
    );

    runtime().block_on(async {
        // The restart: the server let the killed process's lock go when its connection died.
        until_held(&db.schema, &format!("{host}-0"), false).await;
        let (engine, owner) = engine(&db.schema).await;
        assert_eq!(
            owner,
            format!("{host}-0"),
            "the same owner as before the kill"
        );
        let def = two_steps(dir.path(), false);
        let recovered = engine.recover(&def).await.unwrap();
        assert!(recovered.waiting.is_empty() && recovered.failed.is_empty());
        assert_eq!(recovered.runs.len(), 1, "its own run, taken up at once");
        for handle in recovered.runs {
            assert_eq!(*handle.wait().await.unwrap().output, 2);
        }
        let took = killed.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "took {took:?} after the kill, with a 30 s lease"
        );
    });
    assert_eq!(
        side_lines(dir.path())[1..],
        ["s1", "s2", "s2"],
        "s1 once, the step cut by the kill again"
    );
}
