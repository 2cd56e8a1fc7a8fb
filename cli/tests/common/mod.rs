//! Databases made by real runs, on either store, and the binary to point at them.
//!
//! A deploy-like saga (`Ship`) that completes, compensates, or gets stuck; a workflow with a
//! fan-out (`Etl`); a workflow whose second step waits for a signal (`Approve`); a persisted
//! state machine (`Door`). Each in a SQLite file in a temporary directory, or in a fresh
//! schema on the PostgreSQL server the tests run on (see `pg`); `on_both_stores!` runs a test
//! on each.

#![allow(dead_code, unreachable_pub)] // each test file uses part of it

pub mod pg;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use sagaflow::prelude::*;
use sagaflow::{PersistedMachine, SagaOutcome, SqliteOptions, SqliteStore, fsm};
use sagaflow_postgres::{PgOptions, PgStore};
use serde::{Deserialize, Serialize};

/// Runs the test `async fn $name(f: Fixture)` on each store, as `$name::sqlite` and
/// `$name::postgres`, on the fixture `Fixture::$fixture(backend)` (`new` or `standard`).
/// Without a PostgreSQL server, the second fails when `CI` is set and is skipped elsewhere.
macro_rules! on_both_stores {
    ($name:ident, $fixture:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let backend = crate::common::Backend::Sqlite;
                let f = crate::common::Fixture::$fixture(backend).await;
                super::$name(f.expect("a SQLite file needs no server")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let backend = crate::common::Backend::Postgres;
                let Some(f) = crate::common::Fixture::$fixture(backend).await else {
                    return;
                };
                super::$name(f).await;
            }
        }
    };
}

/// What to ship, and which steps and compensations fail for good.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub version: String,
    pub fail: Vec<String>,
}

/// Saga runs whose broken compensations an operator has "fixed": they succeed from then on.
pub static FIXED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn broken(ctx: &StepContext, release: &Release, name: &str) -> bool {
    let saga = ctx
        .run_id()
        .as_str()
        .split("~undo")
        .next()
        .unwrap_or_default()
        .to_owned();
    let fixed = FIXED.lock().map(|f| f.contains(&saga)).unwrap_or(false);
    release.fail.iter().any(|f| f == name) && !fixed
}

async fn build_image(ctx: &StepContext, r: &Release) -> Result<Release, StepError> {
    if broken(ctx, r, "build_image") {
        return Err(StepError::new("compilation failed"));
    }
    Ok(r.clone())
}
async fn delete_image(ctx: &StepContext, r: &Release, _: &Release) -> Result<(), StepError> {
    if broken(ctx, r, "delete_image") {
        return Err(StepError::new("image in use"));
    }
    Ok(())
}
async fn push_image(ctx: &StepContext, r: &Release) -> Result<Release, StepError> {
    if broken(ctx, r, "push_image") {
        return Err(StepError::new("registry refused the push"));
    }
    Ok(r.clone())
}
async fn untag_image(ctx: &StepContext, r: &Release, _: &Release) -> Result<(), StepError> {
    if broken(ctx, r, "untag_image") {
        return Err(StepError::new("registry: 401 Unauthorized"));
    }
    Ok(())
}
async fn migrate_db(ctx: &StepContext, r: &Release) -> Result<Release, StepError> {
    if r.fail.iter().any(|f| f == "hang") {
        // Until cancelled.
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    }
    if broken(ctx, r, "migrate_db") {
        return Err(StepError::new("migration 42 failed: lock timeout"));
    }
    Ok(r.clone())
}
async fn rollback_db(ctx: &StepContext, r: &Release, _: &Release) -> Result<(), StepError> {
    if broken(ctx, r, "rollback_db") {
        return Err(StepError::new("cannot roll back"));
    }
    Ok(())
}
async fn shift_traffic(ctx: &StepContext, r: &Release) -> Result<u8, StepError> {
    if broken(ctx, r, "shift_traffic") {
        return Err(StepError::new("load balancer rejected the target"));
    }
    Ok(100)
}

sagaflow::saga! {
    /// Build, push, migrate, shift traffic; undo on failure.
    pub Ship(Release) -> u8 {
        build_image / delete_image -> push_image / untag_image -> migrate_db / rollback_db
            -> shift_traffic;
        defaults: retry(max_attempts = 2, initial = 1ms);
    }
}

async fn extract(_: &StepContext, day: &u32) -> Result<Vec<i64>, StepError> {
    Ok(vec![i64::from(*day), -4, 9])
}
async fn clean(_: &StepContext, rows: &[i64]) -> Result<Vec<i64>, StepError> {
    Ok(rows.iter().copied().filter(|r| *r >= 0).collect())
}
async fn audit(_: &StepContext, rows: &[i64]) -> Result<usize, StepError> {
    Ok(rows.len())
}
async fn load(_: &StepContext, rows: &[i64], seen: &usize) -> Result<String, StepError> {
    Ok(format!("{} of {seen}", rows.len()))
}

sagaflow::workflow! {
    /// A small ETL with a fan-out and a fan-in.
    pub Etl(u32) -> String {
        extract -> [clean, audit] -> load;
    }
}

/// An approval, as a signal delivers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
}

async fn prepare(_: &StepContext, n: &u32) -> Result<u32, StepError> {
    Ok(*n)
}
async fn wait_approval(ctx: &StepContext, _: &u32) -> Result<String, StepError> {
    let approval: Approval = ctx.signal("approve").await?;
    Ok(approval.by)
}

sagaflow::workflow! {
    /// Waits for a person's approval.
    pub Approve(u32) -> String {
        prepare -> wait_approval;
    }
}

fsm! {
    /// A door.
    pub Door {
        *Closed + Open = Opened,
        Opened + Close = Closed,
        Closed + Lock(u32) = Locked(u32),
        Locked(u32) + Unlock = Closed,
        _ + Break = Broken,
        state Broken { final },
    }
}

/// The door's context: nothing to decide.
pub struct Hall;
impl DoorContext for Hall {}

/// Which store a fixture's database is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store the engine writes through.
pub enum Store {
    Sqlite(Arc<SqliteStore>),
    Postgres(PgStore),
}

/// Where the database is: kept until the fixture's engine and store are gone.
pub enum Place {
    /// A file in a temporary directory.
    File {
        dir: tempfile::TempDir,
        path: PathBuf,
    },
    /// A schema of the test's own, dropped with it.
    Schema(pg::Schema),
}

/// A database, and the engine writing it. The fields drop in order: the engine and the store
/// before the file's directory or the schema.
pub struct Fixture {
    pub engine: Engine,
    pub store: Store,
    pub place: Place,
}

impl Fixture {
    /// An empty database on `backend`; `None` when it is PostgreSQL and there is no server
    /// (after saying so; a failure instead when `CI` is set).
    pub async fn new(backend: Backend) -> Option<Fixture> {
        Some(match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let path = dir.path().join("sagaflow.db");
                let store =
                    Arc::new(SqliteStore::open(&path, SqliteOptions::default()).expect("opens"));
                Fixture {
                    engine: Engine::builder().store(store.clone()).build(),
                    store: Store::Sqlite(store),
                    place: Place::File { dir, path },
                }
            }
            Backend::Postgres => {
                let url = pg::server().await?;
                let name = pg::fresh_schema();
                let options = PgOptions::default().schema(name.as_str());
                let store = PgStore::connect(&url, options).await.expect("connects");
                Fixture {
                    engine: Engine::builder().store(Arc::new(store.clone())).build(),
                    store: Store::Postgres(store),
                    place: Place::Schema(pg::Schema { url, name }),
                }
            }
        })
    }

    pub fn backend(&self) -> Backend {
        match self.place {
            Place::File { .. } => Backend::Sqlite,
            Place::Schema(_) => Backend::Postgres,
        }
    }

    /// The SQLite file; a test of what only a file has.
    pub fn path(&self) -> &Path {
        match &self.place {
            Place::File { path, .. } => path,
            Place::Schema(_) => panic!("a PostgreSQL fixture has no file"),
        }
    }

    /// The PostgreSQL schema; a test of what only a server has.
    pub fn schema(&self) -> &pg::Schema {
        match &self.place {
            Place::Schema(schema) => schema,
            Place::File { .. } => panic!("a SQLite fixture has no schema"),
        }
    }

    /// How the command line's messages name the database: the file's name, or the server's
    /// URL without its password and the schema.
    pub fn name(&self) -> String {
        match &self.place {
            Place::File { .. } => "sagaflow.db".to_owned(),
            Place::Schema(schema) => pg::shown(&schema.url, &schema.name),
        }
    }

    /// The newest schema version the store of this fixture knows.
    pub fn schema_version(&self) -> i64 {
        match self.backend() {
            Backend::Sqlite => sagaflow_sqlite::SCHEMA_VERSION,
            Backend::Postgres => sagaflow_postgres::SCHEMA_VERSION,
        }
    }

    /// A connection of the test's own to the database, for what a test does behind the
    /// store's back.
    pub async fn raw(&self) -> Raw {
        match &self.place {
            Place::File { path, .. } => {
                Raw::Sqlite(rusqlite::Connection::open(path).expect("opens the file"))
            }
            Place::Schema(schema) => Raw::Postgres(pg::client(&schema.url, &schema.name).await),
        }
    }

    /// Runs `sql` on the database behind the store's back.
    pub async fn sql(&self, sql: &str) {
        self.raw().await.batch(sql).await;
    }

    /// Drops the engine and the store (the SQLite file then has its WAL checkpointed into
    /// it), and keeps where the database is.
    pub fn close(self) -> Place {
        let Fixture {
            engine,
            store,
            place,
        } = self;
        drop(engine);
        drop(store);
        place
    }

    /// Runs a `Ship` saga to its end.
    pub async fn ship(&self, run: &str, fail: &[&str]) -> SagaOutcome<u8> {
        let release = Release {
            version: "v2".to_owned(),
            fail: fail.iter().map(|s| (*s).to_owned()).collect(),
        };
        Ship::start(&self.engine, run, release)
            .await
            .expect("starts")
            .wait()
            .await
            .expect("ends")
    }

    /// The standard set: a deployment that completes, one compensated, one stuck, a workflow
    /// and a machine.
    pub async fn standard(backend: Backend) -> Option<Fixture> {
        let f = Fixture::new(backend).await?;
        assert!(matches!(
            f.ship("ship-ok", &[]).await,
            SagaOutcome::Completed(_)
        ));
        assert!(matches!(
            f.ship("ship-undone", &["migrate_db"]).await,
            SagaOutcome::Compensated { .. }
        ));
        assert!(matches!(
            f.ship("ship-stuck", &["shift_traffic", "untag_image"])
                .await,
            SagaOutcome::Stuck { .. }
        ));
        let report = Etl::start(&f.engine, "etl-1", 21)
            .await
            .expect("starts")
            .wait()
            .await
            .expect("completes");
        assert_eq!(*report.output, "2 of 3");
        let mut door = match &f.store {
            Store::Sqlite(store) => Door::create(store, "door-1").await,
            Store::Postgres(store) => Door::create(store, "door-1").await,
        }
        .expect("creates");
        door.fire(&mut Hall, DoorEvent::Open).await.expect("opens");
        door.fire(&mut Hall, DoorEvent::Close)
            .await
            .expect("closes");
        door.fire(&mut Hall, DoorEvent::Lock(1234))
            .await
            .expect("locks");
        let _: PersistedMachine<Door> = door;
        Some(f)
    }

    /// The binary, pointed at this database by `--db` (and `--schema`).
    pub fn run(&self, args: &[&str]) -> Out {
        self.command(args).output().expect("the binary runs").into()
    }

    /// The command, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        match &self.place {
            Place::File { path, .. } => command(path, args),
            Place::Schema(schema) => {
                let mut cmd = command(&schema.url, &["--schema", &schema.name]);
                cmd.args(args);
                cmd
            }
        }
    }
}

/// A connection of a test's own.
pub enum Raw {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl Raw {
    /// Runs `sql` (statements separated by `;`).
    pub async fn batch(&self, sql: &str) {
        match self {
            Raw::Sqlite(conn) => conn.execute_batch(sql).expect("runs"),
            Raw::Postgres(client) => client.batch_execute(sql).await.expect("runs"),
        }
    }
}

/// What the binary printed, and how it exited.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "failed: {self:#?}");
        &self.stdout
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }

    /// Asserts exit code 1 and returns the error message.
    pub fn err(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected an error: {self:#?}");
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        &self.stderr
    }
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The `sagaflow` binary with `--db db` (a file, or a server's URL) and `args`.
pub fn sagaflow(db: impl AsRef<OsStr>, args: &[&str]) -> Out {
    command(db, args).output().expect("the binary runs").into()
}

/// The command, not yet run.
pub fn command(db: impl AsRef<OsStr>, args: &[&str]) -> Command {
    let mut cmd = bare();
    cmd.arg("--db").arg(db).args(args);
    cmd
}

/// The binary with no database named, nor any in its environment.
pub fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sagaflow"));
    cmd.env_remove("SAGAFLOW_DB")
        .env_remove("SAGAFLOW_SCHEMA")
        .env("NO_COLOR", "1");
    cmd
}
