//! The `sagaflow` command line against a database made by the real main job, the deploy
//! example: a finished deployment, a compensated one and a stuck one; then an operator's
//! `skip` from the command line, acted on by the example when it runs again. On a SQLite file,
//! and on PostgreSQL (a schema of the test's own, `--schema`).
//!
//! Both programs are the ones `cargo test --workspace` builds next to this test
//! (`target/<profile>/examples/deploy`, `target/<profile>/sagaflow`); run the workspace's
//! tests, or build them first, for this one to find them.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Where the example and the command line meet: a SQLite file, or a PostgreSQL schema.
enum Db {
    File(PathBuf),
    Postgres { url: String, schema: String },
}

impl Db {
    /// The `--db` (and `--schema`) arguments naming it.
    fn args(&self) -> Vec<String> {
        match self {
            Db::File(path) => vec!["--db".into(), path.display().to_string()],
            Db::Postgres { url, schema } => vec![
                "--db".into(),
                url.clone(),
                "--schema".into(),
                schema.clone(),
            ],
        }
    }
}

fn built(relative: &str) -> PathBuf {
    // This test runs from target/<profile>/deps/.
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let path = dir.join(relative);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test --workspace` (or `cargo build -p sagaflow-cli` and `cargo build --example deploy`)",
        path.display()
    );
    path
}

fn deploy(db: &Db, args: &[&str]) -> Output {
    Command::new(built("examples/deploy"))
        .arg("--fast")
        .args(db.args())
        .args(args)
        .output()
        .unwrap()
}

fn sagaflow(db: &Db, args: &[&str]) -> Output {
    Command::new(built("sagaflow"))
        .args(db.args())
        .args(args)
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The status the command line gives each deployment, by version.
fn statuses(db: &Db) -> Vec<(String, String)> {
    let runs = json(&sagaflow(db, &["runs", "--json"]));
    let mut out: Vec<(String, String)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["run_id"].as_str().unwrap();
            let version = id.split('-').nth(3).unwrap_or(id).to_owned();
            (version, r["status"].as_str().unwrap().to_owned())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_command_line_sees_and_operates_what_the_deploy_example_did() {
    let dir = tempfile::tempdir().unwrap();
    the_command_line_sees_and_operates_it(&Db::File(dir.path().join("deploy.db")));
}

/// The same on PostgreSQL, in a schema of the test's own.
#[test]
fn the_command_line_sees_and_operates_what_the_deploy_example_did_on_postgres() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(url) = runtime.block_on(sagaflow_postgres::testing::server()) else {
        return;
    };
    let schema = sagaflow_postgres::testing::fresh_schema("examples");
    the_command_line_sees_and_operates_it(&Db::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    });
    runtime.block_on(sagaflow_postgres::testing::drop_schema(&url, &schema));
}

fn the_command_line_sees_and_operates_it(db: &Db) {
    assert!(deploy(db, &["--version", "v1"]).status.success());
    assert!(
        deploy(db, &["--version", "v2", "--fail", "migrate_db"])
            .status
            .success()
    );
    let stuck = deploy(
        db,
        &[
            "--version",
            "v3",
            "--fail",
            "shift_traffic",
            "--fail",
            "untag_image",
        ],
    );
    assert_eq!(stuck.status.code(), Some(1), "a stuck deployment exits 1");
    assert_eq!(
        statuses(db),
        [
            ("v1".to_owned(), "completed".to_owned()),
            ("v2".to_owned(), "compensated".to_owned()),
            ("v3".to_owned(), "stuck".to_owned())
        ]
    );
    let list = json(&sagaflow(db, &["stuck", "--json"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["step"], "push_image");
    let run = list[0]["run_id"].as_str().unwrap().to_owned();
    assert!(run.contains("v3"), "{run}");

    // The operator skips the stuck compensation; the example, run again, acts on it.
    let skip = sagaflow(db, &["skip", &run]);
    assert!(
        skip.status.success(),
        "{}",
        String::from_utf8_lossy(&skip.stderr)
    );
    let again = deploy(db, &[]);
    let printed = String::from_utf8_lossy(&again.stdout);
    assert!(
        printed.contains(&format!("acting on an operator's request for {run}")),
        "{printed}"
    );
    assert!(printed.contains("skipped: push_image"), "{printed}");
    assert_eq!(statuses(db)[2], ("v3".to_owned(), "compensated".to_owned()));

    // What each command shows of the stuck-then-skipped deployment.
    let show = sagaflow(db, &["show", &run]);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("compensation round 2"), "{show}");
    let graph = sagaflow(db, &["graph", &run, "--format", "mermaid"]);
    let graph = String::from_utf8_lossy(&graph.stdout);
    assert!(
        graph.contains("build_image") && graph.contains("-->"),
        "{graph}"
    );
}
