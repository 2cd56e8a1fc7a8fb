//! The read-only `Inspector`: it reads what a store wrote, while the store is open, without
//! migrating or taking a lease owner slot; and it refuses what it cannot read, naming the file.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use rusqlite::Connection;
use sagaflow_core::conformance::runs::{complete, create, create_with_graph, start};
use sagaflow_core::runtime::{MachineStore, RunStore};
use sagaflow_sqlite::inspect::{Inspect, InspectError, Inspector};
use sagaflow_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};

#[tokio::test]
async fn it_reads_runs_steps_events_and_machines_of_an_open_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let store = SqliteStore::open(&path, SqliteOptions::default().owner("service")).unwrap();
    create(&store, "r", "W").await.unwrap();
    start(&store, "r", "a").await.unwrap();
    complete(&store, "r", "a", &"out".to_owned()).await.unwrap();
    store
        .insert_machine("m", "Door", "\"Closed\"")
        .await
        .unwrap();

    // The store stays open: a tool reads beside it.
    let db = Inspector::open(&path).unwrap();
    let runs = db.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].run_id.as_str(), runs[0].status.as_str()),
        ("r", "running")
    );
    assert!(!runs[0].finished());
    let steps = db.steps("r").unwrap();
    assert_eq!(
        (steps[0].name.as_str(), steps[0].status.as_str()),
        ("a", "completed")
    );
    let events = db.events(&["r".to_owned()], 0).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["run_created", "step_started", "step_completed"]);
    assert_eq!(db.runs_with_step("a").unwrap(), ["r"]);
    let machine = db.machine("m").unwrap();
    assert_eq!((machine.machine.as_str(), machine.version), ("Door", 0));
    assert_eq!(machine.state, serde_json::json!("Closed"));
    assert_eq!(db.integrity().unwrap(), ["ok"]);

    // The store-neutral trait reads the same, and a sound file has no problem to list.
    let neutral: &dyn Inspect = &db;
    assert_eq!(neutral.database(), path.display().to_string());
    assert_eq!(neutral.runs().await.unwrap(), runs);
    assert_eq!(neutral.steps("r").await.unwrap(), steps);
    assert_eq!(
        neutral.events(&["r".to_owned()], 1).await.unwrap(),
        events[1..]
    );
    assert_eq!(neutral.machine("m").await.unwrap(), machine);
    assert_eq!(neutral.check().await.unwrap(), Vec::<String>::new());

    // Written after the inspector opened: seen at once.
    store
        .record(&"r".into(), &sagaflow_core::runtime::Change::RunCompleted)
        .await
        .unwrap();
    assert_eq!(db.run("r").unwrap().status, "completed");

    // It took no owner slot: a second store on the file still gets the next free one.
    drop(db);
    let other = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_ne!(other.owner(), "service");
}

#[tokio::test]
async fn what_it_cannot_read_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let error = Inspector::open(&missing).err().unwrap();
    assert!(matches!(error, InspectError::Missing { .. }), "{error}");
    assert!(error.to_string().contains("missing.db"), "{error}");

    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "not a database, just some words that go on for a while",
    )
    .unwrap();
    let error = Inspector::open(&text).err().unwrap();
    assert!(
        matches!(error, InspectError::NotADatabase { .. }),
        "{error}"
    );

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    let error = Inspector::open(&other).err().unwrap();
    assert!(matches!(error, InspectError::NotSagaflow { .. }), "{error}");

    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer, SqliteOptions::default()).unwrap());
    Connection::open(&newer)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA user_version = {next}; UPDATE schema_compat SET compatible_from = {next};",
            next = SCHEMA_VERSION + 1
        ))
        .unwrap();
    match Inspector::open(&newer) {
        Err(InspectError::TooNew {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("a newer schema was not refused: {:?}", other.err()),
    }

    let fine = dir.path().join("fine.db");
    drop(SqliteStore::open(&fine, SqliteOptions::default()).unwrap());
    let db = Inspector::open(&fine).unwrap();
    let error = db.run("ghost").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("no run `ghost` in `{}`", fine.display())
    );
    assert!(matches!(
        db.machine("m"),
        Err(InspectError::UnknownMachine { .. })
    ));
}

/// The inspector reads a step's standing off the `steps` view (schema 11); `load_run` folds
/// the same events in Rust. Both give the same standing, for every kind of change.
#[tokio::test]
async fn the_steps_view_and_a_loaded_run_agree() {
    use sagaflow_core::runtime::report::StepStatus;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("view.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    sagaflow_core::conformance::runs::a_step_s_standing_is_what_its_changes_left(&store).await;
    let loaded = store.load_run(&"r".into()).await.unwrap().unwrap();
    let folded: Vec<_> = loaded
        .steps
        .iter()
        .map(|s| {
            let status = match s.status {
                StepStatus::Completed => "completed",
                StepStatus::Failed => "failed",
                StepStatus::Skipped => "skipped",
                _ => "running",
            };
            (
                s.name.clone(),
                status.to_owned(),
                s.attempts,
                s.error.clone(),
                s.started_at.is_some(),
            )
        })
        .collect();
    let viewed: Vec<_> = Inspector::open(&path)
        .unwrap()
        .steps("r")
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.name,
                s.status,
                s.attempts,
                s.error,
                s.started_at.is_some(),
            )
        })
        .collect();
    assert_eq!(viewed, folded);
    assert_eq!(viewed.len(), 4, "{viewed:?}");
}

#[tokio::test]
async fn a_workflows_graph_is_stored_once_and_read_for_every_run_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graphs.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let (etl, etl_2, ship) = (
        ("Etl", 7, "{\"nodes\":[\"a\"],\"edges\":[]}"),
        ("Etl", 8, "{\"nodes\":[\"a\",\"b\"],\"edges\":[[0,1]]}"),
        ("Ship", 7, "{\"nodes\":[\"s\"],\"edges\":[]}"),
    );
    let runs = [
        ("a", etl),
        ("b", etl),
        ("c", etl_2),
        ("d", ship),
        ("e", etl),
    ];
    for (id, graph) in runs {
        create_with_graph(&store, id, graph).await.unwrap();
    }
    let file = Connection::open(&path).unwrap();
    let stored: Vec<(String, i64, String)> = file
        .prepare("SELECT workflow, fingerprint, graph FROM graphs ORDER BY 1, 2")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let row = |(w, f, g): (&str, u64, &str)| (w.to_owned(), f.cast_signed(), g.to_owned());
    assert_eq!(stored, [row(etl), row(etl_2), row(ship)]);
    let in_runs: i64 = file
        .query_row(
            "SELECT count(*) FROM runs WHERE graph IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(in_runs, 0, "a run's row carries no graph of its own");

    // A run the code before schema 12 created holds its graph in its row, which is read.
    file.execute(
        "INSERT INTO runs (run_id, workflow, graph_fingerprint, input, status, version, \
             created_at, updated_at, graph) \
         VALUES ('old', 'Etl', 7, '\"in\"', 'running', 1, 1, 1, '{\"nodes\":[\"old\"]}')",
        [],
    )
    .unwrap();
    let db = Inspector::open(&path).unwrap();
    for (id, graph) in runs {
        assert_eq!(db.graph(id).unwrap().as_deref(), Some(graph.2), "run {id}");
    }
    assert_eq!(
        db.graph("old").unwrap().as_deref(),
        Some("{\"nodes\":[\"old\"]}")
    );
}
