//! Recovery as the README shows it, after a real `kill -9`: the recipe taken literally (the
//! default options, no owner set, one `recover` call) takes the killed process's run up at
//! once; a run leased by an owner that is gone is taken up by itself when its lease runs out;
//! and two live processes never share one lease owner.
//!
//! The children are this same test binary, started again with an environment variable that
//! makes the test play the child's part.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sagaflow::prelude::*;
use sagaflow::{SqliteOptions, SqliteStore};

const CHILD: &str = "SAGAFLOW_RECOVERY_CHILD";

/// The README's `fetch`, except that in a child it marks that it has begun and then hangs,
/// so that the child is killed in the middle of it.
#[allow(clippy::ptr_arg)] // the README's signature, as it is
async fn fetch(_: &StepContext, url: &String) -> Result<usize, StepError> {
    if let Some(dir) = std::env::var_os(CHILD) {
        std::fs::write(Path::new(&dir).join("fetching"), b"").unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    Ok(url.len())
}
async fn store(_: &StepContext, size: &usize) -> Result<String, StepError> {
    Ok(format!("stored {size} bytes"))
}

workflow! {
    pub Mirror(String) -> String {
        fetch -> store;
        store: at_most_once;
    }
}

/// Starts this test binary again as a child playing `test`'s child part.
fn spawn(dir: &Path, test: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits for the file `name` in `dir`, which the child writes, and returns its text.
fn wait_for(dir: &Path, name: &str, child: &mut Child) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(name))
            && (name == "fetching" || !text.is_empty())
        {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no `{name}`");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A child's part: start `run_id` of the README's `Mirror` on an engine opened with
/// `options`, and hang in `fetch` until killed.
fn mirror_child(dir: &Path, options: Option<SqliteOptions>, run_id: &str) {
    runtime().block_on(async {
        let path = dir.join("sagaflow.db");
        let engine = match options {
            // The README's first lines, as they are.
            None => Engine::open(&path).unwrap(),
            Some(options) => Engine::open_with(&path, options).unwrap(),
        };
        let handle = Mirror::start(&engine, run_id, "https://example.org".to_owned())
            .await
            .unwrap();
        handle.wait().await.unwrap();
        unreachable!("killed in `fetch`");
    });
}

#[test]
fn the_readme_recipe_takes_a_killed_process_s_run_up_at_once() {
    const TEST: &str = "the_readme_recipe_takes_a_killed_process_s_run_up_at_once";
    if let Some(dir) = std::env::var_os(CHILD) {
        mirror_child(&PathBuf::from(dir), None, "mirror-1");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), TEST);
    wait_for(dir.path(), "fetching", &mut child);
    child.kill().unwrap(); // SIGKILL: the lease is left live, with 30 s to run
    child.wait().unwrap();

    runtime().block_on(async {
        let path = dir.path().join("sagaflow.db");
        let started = Instant::now();
        // The README's recipe, to the letter.
        let engine = Engine::open(&path).unwrap();
        let recovered = Mirror::recover(&engine).await.unwrap();
        assert!(
            recovered.failed.is_empty() && recovered.waiting.is_empty(),
            "{:?} {:?}",
            recovered.failed,
            recovered.waiting
        );
        assert_eq!(recovered.runs.len(), 1);
        let mut outputs = Vec::new();
        for handle in recovered.runs {
            outputs.push(handle.wait().await.unwrap().output);
        }
        assert_eq!(*outputs[0], "stored 19 bytes");
        // At once: not after the killed process's 30 s lease.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn a_run_leased_by_an_owner_that_is_gone_is_taken_up_when_the_lease_runs_out() {
    const TEST: &str = "a_run_leased_by_an_owner_that_is_gone_is_taken_up_when_the_lease_runs_out";
    if let Some(dir) = std::env::var_os(CHILD) {
        // Under an owner of its own, with a short lease.
        let options = SqliteOptions::default()
            .owner("elsewhere")
            .lease(Duration::from_millis(1_500));
        mirror_child(&PathBuf::from(dir), Some(options), "mirror-2");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), TEST);
    wait_for(dir.path(), "fetching", &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();

    runtime().block_on(async {
        let engine = Engine::open(dir.path().join("sagaflow.db")).unwrap();
        let recovered = Mirror::recover(&engine).await.unwrap();
        assert!(recovered.runs.is_empty() && recovered.failed.is_empty());
        let [waiting] = <[_; 1]>::try_from(recovered.waiting).unwrap();
        assert_eq!(waiting.run_id().as_str(), "mirror-2");
        assert_eq!(waiting.owner(), "elsewhere");
        assert!(waiting.expires_in() <= Duration::from_millis(1_500));
        let said = waiting.to_string();
        assert!(
            said.starts_with("run `mirror-2` is leased by owner `elsewhere`: taken up here in ")
                && said.ends_with(" s unless that owner renews its lease"),
            "{said}"
        );
        // No second call: the engine takes the run up by itself once the lease runs out.
        let handle = waiting.taken().await.unwrap();
        let taken_after = killed.elapsed();
        assert_eq!(*handle.wait().await.unwrap().output, "stored 19 bytes");
        assert!(
            taken_after < Duration::from_secs(10),
            "taken up {taken_after:?} after the kill"
        );
    });
}

/// The child's part as a live process holding the default owner: it says which, and waits.
fn holding_child(dir: &Path) {
    let store = SqliteStore::open(dir.join("sagaflow.db"), SqliteOptions::default()).unwrap();
    std::fs::write(dir.join("owner.tmp"), store.owner()).unwrap();
    std::fs::rename(dir.join("owner.tmp"), dir.join("owner")).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn two_live_processes_never_share_an_owner() {
    const TEST: &str = "two_live_processes_never_share_an_owner";
    if let Some(dir) = std::env::var_os(CHILD) {
        holding_child(&PathBuf::from(dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagaflow.db");
    let mut child = spawn(dir.path(), TEST);
    let held = wait_for(dir.path(), "owner", &mut child);
    assert!(
        held.ends_with("-0"),
        "the first process on a host is slot 0: {held}"
    );

    // Asking for the child's owner while it lives is refused, naming it.
    let refused = SqliteStore::open(&path, SqliteOptions::default().owner(held.clone()))
        .expect_err("the owner is held by a live process");
    assert!(
        matches!(&refused, sagaflow::runtime::StoreError::OwnerInUse { owner, .. } if *owner == held),
        "{refused}"
    );
    assert!(refused.to_string().contains("held by another live process"));
    // By default this process takes the next free owner.
    let second = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_ne!(second.owner(), held);
    assert!(second.owner().ends_with("-1"), "{}", second.owner());

    // Once the child is dead, its owner is free.
    child.kill().unwrap();
    child.wait().unwrap();
    let again = SqliteStore::open(&path, SqliteOptions::default().owner(held.clone())).unwrap();
    assert_eq!(again.owner(), held);
}
