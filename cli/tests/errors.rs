//! Clear errors, exit code 1 and never a panic: a missing file, a file that is not a
//! database, a SQLite database that is not sagaflow's, a newer schema, an unknown run, a bad
//! JSON payload; and a run stored before its graph was.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

mod common;

use common::{Fixture, sagaflow};
use rusqlite::Connection;

const READS: &[&[&str]] = &[
    &["runs"],
    &["show", "x"],
    &["events", "x"],
    &["graph", "x"],
    &["machines"],
    &["machine", "x"],
    &["stuck"],
    &["stats"],
];

#[test]
fn a_missing_file_is_named_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    for args in READS
        .iter()
        .chain([&["retry", "x"][..], &["signal", "x", "go", "1"][..]].iter())
    {
        let out = sagaflow(&path, args);
        let message = out.err();
        assert!(
            message.contains("nope.db") && message.contains("no such file"),
            "{args:?}: {message}"
        );
    }
    assert!(!path.exists(), "a command created the file");
}

#[test]
fn no_database_given_is_an_error() {
    let out = common::Out::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_sagaflow"))
            .arg("runs")
            .env_remove("SAGAFLOW_DB")
            .output()
            .unwrap(),
    );
    assert!(
        out.err().contains("--db FILE or set SAGAFLOW_DB"),
        "{out:?}"
    );
}

#[test]
fn a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are not the tables you are looking for\n".repeat(100),
    )
    .unwrap();
    for args in READS.iter().chain([&["skip", "x"][..]].iter()) {
        let out = sagaflow(&path, args);
        let message = out.err();
        assert!(
            message.contains("notes.txt") && message.contains("is not a SQLite database"),
            "{message}"
        );
    }
}

#[test]
fn a_database_of_something_else_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
        .unwrap();
    drop(conn);
    for args in READS
        .iter()
        .chain([&["abandon", "x"][..], &["signal", "x", "go", "{}"][..]].iter())
    {
        let out = sagaflow(&path, args);
        let message = out.err();
        assert!(
            message.contains("other.db") && message.contains("is not a sagaflow database"),
            "{message}"
        );
    }
    // Not migrated by the write commands either.
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((version, tables), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_names_both_versions() {
    let f = Fixture::standard().await;
    let conn = Connection::open(&f.path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    for args in READS.iter().chain([&["retry", "ship-stuck"][..]].iter()) {
        let out = f.run(args);
        let message = out.err();
        assert!(message.contains("sagaflow.db"), "{message}");
        assert!(message.contains("schema version 99"), "{message}");
        assert!(
            message.contains(&format!(
                "up to version {}",
                sagaflow_sqlite::SCHEMA_VERSION
            )),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runs_and_bad_payloads() {
    let f = Fixture::standard().await;
    for args in [
        &["show", "ghost"][..],
        &["events", "ghost"],
        &["graph", "ghost"],
        &["retry", "ghost"],
        &["skip", "ghost"],
        &["abandon", "ghost"],
        &["cancel", "ghost"],
        &["signal", "ghost", "approve", "true"],
    ] {
        let out = f.run(args);
        let message = out.err();
        assert!(
            message.contains("no run `ghost`") && message.contains("sagaflow.db"),
            "{args:?}: {message}"
        );
    }
    let bad = f.run(&["signal", "etl-1", "approve", "{by: ana}"]);
    let message = bad.err();
    assert!(
        message.contains("payload of signal `approve` for run `etl-1` is not JSON"),
        "{message}"
    );
    // A saga that is not stuck, and one that has finished, refuse.
    let done = f.run(&["retry", "ship-ok"]);
    assert!(
        done.err().contains("not a stuck saga (it is completed)"),
        "{done:?}"
    );
    let over = f.run(&["cancel", "ship-undone"]);
    assert!(over.err().contains("nothing to cancel"), "{over:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stored_before_graphs_is_drawn_without_edges() {
    let f = Fixture::standard().await;
    // Make the file what version 4 left: no `graph` column.
    let conn = Connection::open(&f.path).unwrap();
    conn.execute_batch("ALTER TABLE runs DROP COLUMN graph; PRAGMA user_version = 4;")
        .unwrap();
    let out = f.run(&["graph", "etl-1", "--format", "mermaid"]);
    let text = out.ok();
    assert!(out.stderr.contains("without its graph"), "{out:?}");
    assert!(
        text.contains("s0[\"extract\"]") && !text.contains("-->"),
        "{text}"
    );
    let ascii = f.run(&["graph", "etl-1"]);
    let layer = ascii.ok().lines().nth(1).unwrap();
    assert!(layer.starts_with("  1  ✓ extract"), "{ascii:?}");
    assert!(layer.contains("✓ clean") && layer.contains("✓ audit") && layer.contains("✓ load"));
    // The rest reads a version 4 file as it is.
    assert!(f.run(&["runs"]).ok().contains("ship-stuck"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_sound_file_sound_and_names_the_damage_in_a_broken_one() {
    let f = Fixture::standard().await;
    let out = f.run(&["check"]);
    assert!(out.ok().contains("no damage found"), "{out:?}");
    assert_eq!(
        f.run(&["--json", "check"]).json(),
        serde_json::json!({"ok": true, "problems": []})
    );

    // The engine closes the file (its WAL checkpointed into it); then the header of page 2,
    // the root of the first table, is overwritten.
    let Fixture {
        dir,
        path,
        store,
        engine,
    } = f;
    drop(engine);
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    bytes[page_size..page_size + 12].fill(0xA5);
    std::fs::write(&path, &bytes).unwrap();

    let out = sagaflow(&path, &["check"]);
    let message = out.err();
    assert!(
        message.contains("sagaflow.db") && message.contains("is damaged"),
        "{message}"
    );
    assert!(
        !out.stdout.trim().is_empty(),
        "the problems are listed: {out:?}"
    );
    let json = sagaflow(&path, &["--json", "check"]);
    let _ = json.err();
    let listed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(listed["ok"], false);
    assert!(
        !listed["problems"].as_array().unwrap().is_empty(),
        "{listed}"
    );
    // Read-only: the check wrote nothing.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    drop(dir);
}
