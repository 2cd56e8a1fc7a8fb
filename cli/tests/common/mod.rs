//! Databases made by real runs, and the binary to point at them.
//!
//! A deploy-like saga (`Ship`) that completes, compensates, or gets stuck; a workflow with a
//! fan-out (`Etl`); a workflow whose second step waits for a signal (`Approve`); a persisted
//! state machine (`Door`).

#![allow(dead_code, unreachable_pub)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use sagaflow::prelude::*;
use sagaflow::{PersistedMachine, SagaOutcome, SqliteOptions, SqliteStore, fsm};
use serde::{Deserialize, Serialize};

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

/// A database file in a temporary directory, and the engine writing it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub store: Arc<SqliteStore>,
    pub engine: Engine,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("sagaflow.db");
        let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).expect("opens"));
        let engine = Engine::builder().store(store.clone()).build();
        Fixture {
            dir,
            path,
            store,
            engine,
        }
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
    pub async fn standard() -> Fixture {
        let f = Fixture::new();
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
        let mut door = Door::create(&f.store, "door-1").await.expect("creates");
        door.fire(&mut Hall, DoorEvent::Open).await.expect("opens");
        door.fire(&mut Hall, DoorEvent::Close)
            .await
            .expect("closes");
        door.fire(&mut Hall, DoorEvent::Lock(1234))
            .await
            .expect("locks");
        let _: PersistedMachine<Door> = door;
        f
    }

    /// The binary, pointed at this database by `--db`.
    pub fn run(&self, args: &[&str]) -> Out {
        sagaflow(&self.path, args)
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

/// The `sagaflow` binary with `--db path` and `args`.
pub fn sagaflow(path: &Path, args: &[&str]) -> Out {
    command(path, args)
        .output()
        .expect("the binary runs")
        .into()
}

/// The command, not yet run.
pub fn command(path: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sagaflow"));
    cmd.arg("--db")
        .arg(path)
        .args(args)
        .env_remove("SAGAFLOW_DB")
        .env("NO_COLOR", "1");
    cmd
}
