//! Clear errors, exit code 1 and never a panic: a missing file or schema, a file that is not
//! a database or a server that cannot be reached, a database of something else, a newer
//! schema, an unknown run, a bad JSON payload; and a run stored without its graph. What both
//! stores have runs on each (`<test>::sqlite`, `<test>::postgres`); what only a file has (its
//! absence, its bytes, its pages) has a PostgreSQL twin. A server is always named by its URL
//! without the password.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

#[macro_use]
mod common;

use common::{Backend, Fixture, pg, sagaflow};
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

#[tokio::test]
async fn a_missing_schema_is_named_and_not_created() {
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = pg::fresh_schema();
    let shown = pg::shown(&url, &schema);
    for args in READS
        .iter()
        .chain([&["retry", "x"][..], &["signal", "x", "go", "1"][..]].iter())
    {
        let out = sagaflow(&url, &[&["--schema", schema.as_str()][..], args].concat());
        let message = out.err();
        assert!(
            message.contains(&format!(
                "`{shown}` is not a sagaflow database (no schema `{schema}`)"
            )),
            "{args:?}: {message}"
        );
    }
    assert!(
        !pg::schema_exists(&url, &schema).await,
        "a command created the schema"
    );
}

#[test]
fn no_database_given_is_an_error() {
    let out = common::Out::from(common::bare().arg("runs").output().unwrap());
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
fn a_server_that_cannot_be_reached_is_named_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // bound, then let go: nothing listens there
    let url = format!("postgres://app:s3cret@127.0.0.1:{port}/orders");
    for args in READS
        .iter()
        .chain([&["skip", "x"][..], &["signal", "x", "go", "1"][..]].iter())
    {
        let out = sagaflow(&url, args);
        let message = out.err();
        assert!(
            message.contains(&format!(
                "`postgres://app@127.0.0.1:{port}/orders`: cannot connect"
            )),
            "{args:?}: {message}"
        );
        assert!(!message.contains("s3cret"), "{args:?}: {message}");
    }
    // A URL that does not parse is named without its password too.
    let out = sagaflow("postgres://app:s3cret@db/x?sslmode=bogus", &["runs"]);
    let message = out.err();
    assert!(
        message.contains("not a PostgreSQL connection string") && !message.contains("s3cret"),
        "{message}"
    );
}

#[tokio::test]
async fn messages_name_the_server_without_its_password() {
    let Some(f) = Fixture::standard(Backend::Postgres).await else {
        return;
    };
    let (url, password) = pg::with_password(&f.schema().url);
    // Through the environment this time.
    let with_env = |args: &[&str]| -> common::Out {
        common::bare()
            .args(args)
            .env("SAGAFLOW_DB", &url)
            .env("SAGAFLOW_SCHEMA", &f.schema().name)
            .output()
            .unwrap()
            .into()
    };
    let runs = with_env(&["runs", "--json"]).json();
    assert_eq!(runs.as_array().unwrap().len(), 4, "{runs}");
    for args in [
        &["show", "ghost"][..],
        &["retry", "ghost"],
        &["signal", "ghost", "approve", "true"],
        &["retry", "ship-ok"],
        &["cancel", "ship-undone"],
        &["machine", "door-9"],
    ] {
        let out = with_env(args);
        let message = out.err();
        assert!(message.contains(&f.name()), "{args:?}: {message}");
        assert!(!message.contains(&password), "{args:?}: {message}");
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

#[tokio::test]
async fn a_schema_of_something_else_is_refused_and_left_alone() {
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = pg::Schema {
        url: url.clone(),
        name: pg::fresh_schema(),
    };
    let shown = pg::shown(&url, &schema.name);
    let client = pg::client(&url, "public").await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; \
             CREATE TABLE \"{0}\".customers (id integer PRIMARY KEY, name text);",
            schema.name
        ))
        .await
        .unwrap();
    for args in READS
        .iter()
        .chain([&["abandon", "x"][..], &["signal", "x", "go", "{}"][..]].iter())
    {
        let out = sagaflow(
            &url,
            &[&["--schema", schema.name.as_str()][..], args].concat(),
        );
        let message = out.err();
        assert!(
            message.contains(&shown) && message.contains("is not a sagaflow database"),
            "{args:?}: {message}"
        );
    }
    // Not migrated by the write commands either.
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = $1), \
             to_regclass(format('%I.schema_version', $1::text)) IS NULL",
            &[&schema.name],
        )
        .await
        .unwrap();
    let (tables, unversioned): (i64, bool) = (row.get(0), row.get(1));
    assert_eq!((tables, unversioned), (1, true));
}

on_both_stores!(a_newer_schema_names_both_versions, standard);
async fn a_newer_schema_names_both_versions(f: Fixture) {
    match f.backend() {
        Backend::Sqlite => {
            f.sql("PRAGMA user_version = 99; UPDATE schema_compat SET compatible_from = 99")
                .await;
        }
        Backend::Postgres => {
            f.sql("UPDATE schema_version SET version = 99, compatible_from = 99")
                .await;
        }
    }
    for args in READS.iter().chain([&["retry", "ship-stuck"][..]].iter()) {
        let out = f.run(args);
        let message = out.err();
        assert!(message.contains(&f.name()), "{message}");
        assert!(message.contains("schema version 99"), "{message}");
        assert!(
            message.contains(&format!("up to version {}", f.schema_version())),
            "{message}"
        );
    }
}

on_both_stores!(unknown_runs_and_bad_payloads, standard);
async fn unknown_runs_and_bad_payloads(f: Fixture) {
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
            message.contains("no run `ghost`") && message.contains(&f.name()),
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

on_both_stores!(a_run_stored_before_graphs_is_drawn_without_edges, standard);
async fn a_run_stored_before_graphs_is_drawn_without_edges(f: Fixture) {
    match f.backend() {
        // Make the file what version 4 left: no `graph` column, and `steps` a table (a view
        // of the events since version 11).
        Backend::Sqlite => {
            f.sql(
                "CREATE TABLE steps_v10 (run_id TEXT NOT NULL, name TEXT NOT NULL, \
                     status TEXT NOT NULL, attempts INTEGER NOT NULL, output TEXT, error TEXT, \
                     started_at INTEGER, finished_at INTEGER, PRIMARY KEY (run_id, name)) STRICT; \
                 INSERT INTO steps_v10 SELECT run_id, name, status, attempts, output, error, \
                     started_at, finished_at FROM steps ORDER BY first_seq; \
                 DROP VIEW steps; ALTER TABLE steps_v10 RENAME TO steps; \
                 ALTER TABLE events DROP COLUMN output; \
                 ALTER TABLE runs DROP COLUMN graph; DROP TABLE graphs; \
                 PRAGMA user_version = 4;",
            )
            .await;
        }
        // Every PostgreSQL schema has the column: the run as a program that gave no graph
        // stored it (in its row before schema 11, in `graphs` since).
        Backend::Postgres => {
            f.sql("UPDATE runs SET graph = NULL WHERE run_id = 'etl-1'; DELETE FROM graphs")
                .await;
        }
    }
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
    // The rest reads a version 4 file (or the run without its graph) as it is.
    assert!(f.run(&["runs"]).ok().contains("ship-stuck"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_sound_file_sound_and_names_the_damage_in_a_broken_one() {
    let f = Fixture::standard(Backend::Sqlite).await.unwrap();
    let out = f.run(&["check"]);
    assert!(out.ok().contains("no damage found"), "{out:?}");
    assert_eq!(
        f.run(&["--json", "check"]).json(),
        serde_json::json!({"ok": true, "problems": []})
    );

    // The engine closes the file (its WAL checkpointed into it); then the header of page 2,
    // the root of the first table, is overwritten.
    let path = f.path().to_owned();
    let place = f.close();
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
    drop(place);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_postgres_names_the_servers_own_checks() {
    let Some(f) = Fixture::new(Backend::Postgres).await else {
        return;
    };
    for args in [&["check"][..], &["--json", "check"]] {
        let out = f.run(args);
        let message = out.err();
        assert!(message.contains(&f.name()), "{message}");
        assert!(
            message.contains("integrity_check") && message.contains("amcheck"),
            "{message}"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
    }
}
