//! The PostgreSQL server the tests run on, and a schema of their own for each test.
//!
//! The server's URL comes from `SAGAFLOW_PG_URL` (by default the local server of every
//! development and CI machine, `postgres://postgres@127.0.0.1:5432/test`). Without a reachable
//! server the tests fail when `CI` is set, and elsewhere pass after one line that says how to
//! run them.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use sagaflow_core::conformance::durable::TestDatabase;
use sagaflow_postgres::{PgOptions, PgStore};
use tokio_postgres::NoTls;

#[allow(unused_imports)] // each test file uses part of it
pub(crate) use sagaflow_postgres::testing::{server, url};

/// A workflow `name` of `steps` steps in a chain, each adding one to what it is given.
pub(crate) fn chain(name: &str, steps: usize) -> sagaflow_core::runtime::Definition<u64, u64> {
    use sagaflow_core::runtime::{Builder, StepError};
    let mut b = Builder::<u64>::new(name);
    let mut last = b.input();
    for i in 0..steps {
        let step = sagaflow_core::StepOptions::new();
        last = b.step(format!("s{i}"), step, (last,), |_, (x,)| {
            let x = *x;
            async move { Ok::<_, StepError>(x + 1) }
        });
    }
    b.build_with_output(last)
}

/// A plain connection to the server at `url`, for what a test does behind the store's back.
pub(crate) async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("a plain connection to the test's server");
    tokio::spawn(connection);
    client
}

/// A session of its own on the server at `url` in a transaction that has taken its id: it
/// holds the log's horizon (`readable_below()`) below every event written after it, as another
/// writer's batch in flight does, until [`commit_after`] ends it.
pub(crate) async fn hold_horizon(url: &str) -> tokio_postgres::Client {
    let open = client(url).await;
    open.batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .await
        .unwrap();
    open
}

/// Commits `open`'s transaction `after` from now, in a task of its own.
pub(crate) fn commit_after(
    open: tokio_postgres::Client,
    after: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        open.batch_execute("COMMIT").await.unwrap();
    })
}

/// A session of its own on the server at `url` that holds run `run`'s row of `schema` locked
/// `FOR UPDATE`, its transaction open, so that a write of the run waits on the server (its
/// fence's lock); and the session's process id. `COMMIT` on it lets the row go.
pub(crate) async fn hold_run(url: &str, schema: &str, run: &str) -> (tokio_postgres::Client, i32) {
    let holder = client(url).await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            &format!("SELECT 1 FROM \"{schema}\".runs WHERE run_id = $1 FOR UPDATE"),
            &[&run],
        )
        .await
        .unwrap();
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    (holder, pid)
}

/// Waits until a session of the server at `url` waits for a lock the session `pid` holds.
pub(crate) async fn until_blocked_by(url: &str, pid: i32) {
    let client = client(url).await;
    let blocked = async {
        loop {
            let waiting: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    &[&pid],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("a session waits for the held lock");
}

/// How many events of kind `kind` the log of `run` holds.
pub(crate) async fn count_events(
    store: &PgStore,
    run: &str,
    kind: sagaflow_core::runtime::EventKind,
) -> usize {
    use sagaflow_core::runtime::EventLog as _;
    store
        .events(Some(&sagaflow_core::runtime::RunId::from(run)), 0, 1000)
        .await
        .expect("reads the log")
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

/// A schema name no other test uses.
pub(crate) fn fresh_schema() -> String {
    sagaflow_postgres::testing::fresh_schema("")
}

/// A database for one test: a schema of its own on the server, dropped with it.
pub(crate) struct Db {
    pub(crate) url: String,
    pub(crate) schema: String,
    /// Whether its stores keep a compact log (`PgOptions::compact_log`).
    pub(crate) compact: bool,
}

impl Db {
    /// A fresh schema on the server, or `None` (after saying so) when there is no server.
    pub(crate) async fn new() -> Option<Db> {
        Some(Db {
            url: server().await?,
            schema: fresh_schema(),
            compact: false,
        })
    }

    /// [`new`](Self::new), whose stores keep a compact log (`PgOptions::compact_log`).
    pub(crate) async fn compact() -> Option<Db> {
        let mut db = Db::new().await?;
        db.compact = true;
        Some(db)
    }

    /// Options on this database's schema.
    pub(crate) fn options(&self) -> PgOptions {
        PgOptions::default()
            .schema(&self.schema)
            .compact_log(self.compact)
    }

    /// A store on this database.
    pub(crate) async fn store(&self) -> PgStore {
        PgStore::connect(&self.url, self.options())
            .await
            .expect("connects")
    }
}

impl TestDatabase for Db {
    type Store = PgStore;

    async fn open(&self, owner: &str, lease: Duration, max_recoveries: u32) -> PgStore {
        let options = self
            .options()
            .owner(owner)
            .lease(lease)
            .max_recoveries(max_recoveries);
        PgStore::connect(&self.url, options)
            .await
            .expect("connects")
    }
}

/// The server's counts of the scans of one table of a test's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) struct Scans {
    pub(crate) sequential: i64,
    pub(crate) rows_read_sequentially: i64,
    pub(crate) by_index: i64,
}

impl Db {
    /// The scans of `runs` in this schema, once the counts have settled: a connection flushes
    /// its counts when it closes, so the stores whose scans are counted are dropped first.
    #[allow(dead_code)]
    pub(crate) async fn runs_scans(&self) -> Scans {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let read = async || {
            client
                .batch_execute("SELECT pg_stat_clear_snapshot()")
                .await
                .unwrap();
            let row = client
                .query_one(
                    "SELECT seq_scan, seq_tup_read, COALESCE(idx_scan, 0) \
                     FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'runs'",
                    &[&self.schema],
                )
                .await
                .unwrap();
            Scans {
                sequential: row.get(0),
                rows_read_sequentially: row.get(1),
                by_index: row.get(2),
            }
        };
        let began = std::time::Instant::now();
        let mut last = read().await;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let now = read().await;
            if now == last && now.by_index > 0 {
                return now;
            }
            assert!(
                began.elapsed() < std::time::Duration::from_secs(20),
                "the counts did not settle: {now:?}"
            );
            last = now;
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // A drop cannot await: a thread with a runtime of its own drops the schema.
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// A fresh store on a schema of its own (left for the sweep), or a return from the test when
/// there is no server; `fresh_store!(compact)`: one that keeps a compact log.
#[macro_export]
macro_rules! fresh_store {
    ($($compact:ident)?) => {{
        let db = fresh_db!($($compact)?);
        let store = db.store().await;
        // The schema outlives this test's store; the sweep drops it later.
        std::mem::forget(db);
        store
    }};
}

/// A fresh database, or a return from the test when there is no server; `fresh_db!(compact)`:
/// one whose stores keep a compact log.
#[macro_export]
macro_rules! fresh_db {
    () => {
        fresh_db!(@made support::Db::new().await)
    };
    (compact) => {
        fresh_db!(@made support::Db::compact().await)
    };
    (@made $db:expr) => {
        match $db {
            Some(db) => db,
            None => return,
        }
    };
}
pub(crate) mod bouncer;
pub(crate) mod proxy;
pub(crate) mod server;
