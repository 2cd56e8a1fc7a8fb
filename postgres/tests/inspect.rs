//! The read-only `PgInspector`: it reads what a live store wrote, sees its later commits, and
//! refuses what it cannot read (a schema that does not exist, one of something else, a newer
//! one, a server that cannot be reached), naming the server without its password and creating
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use sagaflow_core::conformance::runs::{complete, create, create_with_graph, start};
use sagaflow_core::runtime::store::inspect::{Inspect, InspectError};
use sagaflow_core::runtime::store::{MachineStep, MachineStore};
use sagaflow_core::runtime::{Change, RunStore, SignalStore};
use sagaflow_postgres::SCHEMA_VERSION;
use sagaflow_postgres::inspect::PgInspector;

async fn schema_exists(url: &str, schema: &str) -> bool {
    support::client(url)
        .await
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0)
}

/// The events a store committed while a transaction with a lower number was still open (as
/// another writer's batch in flight) are in the inspector's read: it waits until that
/// transaction ends, not answering without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_before_a_read_are_waited_for_until_final() {
    let db = fresh_db!();
    let store = db.store().await;
    let inspector = PgInspector::connect(&db.url, &db.schema).await.unwrap();
    let open = support::hold_horizon(&db.url).await;
    create(&store, "r", "W").await.unwrap();
    let began = std::time::Instant::now();
    // Committed well inside the second a read waits at most, even on a loaded machine.
    let closing = support::commit_after(open, std::time::Duration::from_millis(100));
    let events = inspector.events(&["r".to_owned()], 0).await.unwrap();
    let waited = began.elapsed();
    closing.await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["run_created"]);
    assert!(
        waited >= std::time::Duration::from_millis(100),
        "read in {waited:?}, before the transaction below the event ended"
    );
}

#[tokio::test]
async fn it_reads_runs_steps_events_signals_and_machines_of_a_live_store() {
    let db = fresh_db!();
    let store = db.store().await;
    create(&store, "r", "W").await.unwrap();
    start(&store, "r", "a").await.unwrap();
    complete(&store, "r", "a", &"out".to_owned()).await.unwrap();
    store
        .insert_machine("m", "Door", "\"Closed\"")
        .await
        .unwrap();
    store
        .advance_machine(
            "m",
            MachineStep {
                expected_version: 0,
                state: "{\"Locked\":7}".to_owned(),
                from: "Closed".to_owned(),
                event: "Lock".to_owned(),
                to: "Locked".to_owned(),
            },
        )
        .await
        .unwrap();

    let inspector = PgInspector::connect(&db.url, &db.schema).await.unwrap();
    assert!(
        inspector
            .database()
            .ends_with(&format!("(schema {})", db.schema)),
        "{}",
        inspector.database()
    );
    let runs = inspector.runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].run_id.as_str(), runs[0].workflow.as_str()),
        ("r", "W")
    );
    assert_eq!(runs[0].status, "running");
    assert!(!runs[0].finished());
    let steps = inspector.steps("r").await.unwrap();
    assert_eq!(
        (steps[0].name.as_str(), steps[0].status.as_str()),
        ("a", "completed")
    );
    assert_eq!(steps[0].attempts, 1);
    assert!(steps[0].duration_ms().is_some());
    let all = inspector.all_steps().await.unwrap();
    assert_eq!(all, [("r".to_owned(), steps[0].clone())]);
    let events = inspector.events(&["r".to_owned()], 0).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["run_created", "step_started", "step_completed"]);
    assert_eq!(events[1].attempt, Some(1));
    let later = inspector
        .events(&["r".to_owned(), "other".to_owned()], events[0].seq)
        .await
        .unwrap();
    assert_eq!(later, events[1..]);
    assert_eq!(inspector.runs_with_step("a").await.unwrap(), ["r"]);
    assert_eq!(inspector.graph("r").await.unwrap(), None);
    let machine = inspector.machine("m").await.unwrap();
    assert_eq!((machine.machine.as_str(), machine.version), ("Door", 1));
    assert_eq!(machine.state, serde_json::json!({"Locked": 7}));
    assert_eq!(inspector.machines().await.unwrap(), [machine]);
    let log = inspector.transitions("m").await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].seq, log[0].from.as_str(), log[0].event.as_str()),
        (1, "Closed", "Lock")
    );
    assert_eq!(inspector.signal("r", "go").await.unwrap(), None);

    // Written after the inspector connected: seen at once.
    store
        .deliver_signal(&"r".into(), "go", "{\"by\":\"ana\"}")
        .await
        .unwrap();
    store
        .record(&"r".into(), &Change::RunCompleted)
        .await
        .unwrap();
    assert_eq!(inspector.run("r").await.unwrap().status, "completed");
    assert_eq!(
        inspector.signal("r", "go").await.unwrap().as_deref(),
        Some("{\"by\":\"ana\"}")
    );

    // What it does not have is named.
    let error = inspector.run("ghost").await.unwrap_err();
    assert!(matches!(error, InspectError::UnknownRun { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!("no run `ghost` in `{}`", inspector.database())
    );
    let error = inspector.machine("ghost").await.unwrap_err();
    assert!(
        matches!(error, InspectError::UnknownMachine { .. }),
        "{error}"
    );
    // Damage is for the server's own checks to find.
    let error = inspector.check().await.unwrap_err();
    assert!(matches!(error, InspectError::Unsupported { .. }), "{error}");
    assert!(error.to_string().contains("amcheck"), "{error}");
}

#[tokio::test]
async fn the_default_schema_is_not_named_and_a_missing_one_is_not_created() {
    let Some(url) = support::server().await else {
        return;
    };
    let schema = support::fresh_schema();
    let error = PgInspector::connect(&url, &schema).await.unwrap_err();
    assert!(matches!(error, InspectError::NotSagaflow { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&format!("no schema `{schema}`")) && text.contains("postgres://"),
        "{text}"
    );
    assert!(
        !schema_exists(&url, &schema).await,
        "the inspector created it"
    );

    // A schema of something else.
    let c = support::client(&url).await;
    c.batch_execute(&format!(
        "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".customers (id int)"
    ))
    .await
    .unwrap();
    let error = PgInspector::connect(&url, &schema).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("schema `{schema}` has no sagaflow tables")),
        "{error}"
    );
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "nothing was created in it");
    c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();

    // Only a schema other than the default is named beside the URL.
    match PgInspector::connect(&url, "sagaflow").await {
        Ok(inspector) => assert!(!inspector.database().contains("schema"), "{inspector:?}"),
        Err(error) => assert!(!error.to_string().contains("(schema"), "{error}"),
    }
}

#[tokio::test]
async fn a_newer_schema_names_both_versions() {
    let db = fresh_db!();
    drop(db.store().await);
    support::client(&db.url)
        .await
        .batch_execute(&format!(
            "UPDATE \"{}\".schema_version SET version = 99, compatible_from = 99",
            db.schema
        ))
        .await
        .unwrap();
    match PgInspector::connect(&db.url, &db.schema).await {
        Err(InspectError::TooNew {
            found, supported, ..
        }) => assert_eq!((found, supported), (99, SCHEMA_VERSION)),
        other => panic!("a newer schema was not refused: {other:?}"),
    }
}

/// The run ids' collations, by table (`None`: the database's own), and the `steps` view's.
async fn run_id_collations(url: &str, schema: &str) -> Vec<(String, Option<String>)> {
    support::client(url)
        .await
        .query(
            "SELECT table_name::text, collation_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND column_name = 'run_id' ORDER BY 1",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Schema 12 compares run ids byte by byte (`COLLATE "C"`) in every table that holds them,
/// and its migration, run on a schema of version 11 that holds a run's events and a signal
/// (and a view on `events.run_id` that keeps the column from changing until it is dropped),
/// keeps what was written and makes the `steps` view again.
#[tokio::test]
async fn run_ids_compare_byte_by_byte_and_the_migration_keeps_what_was_written() {
    let db = fresh_db!();
    let c_collated = |view: &str| {
        ["events", "runs", "signals", view]
            .map(|table| (table.to_owned(), Some("C".to_owned())))
            .to_vec()
    };
    let store = db.store().await;
    assert_eq!(
        run_id_collations(&db.url, &db.schema).await,
        c_collated("steps")
    );
    create(&store, "r", "W").await.unwrap();
    start(&store, "r", "a").await.unwrap();
    complete(&store, "r", "a", &"out".to_owned()).await.unwrap();
    assert!(store.deliver_signal(&"r".into(), "go", "1").await.unwrap());
    drop(store);
    // Version 11 as it was: the ids in the database's collation, a view reading them.
    support::client(&db.url)
        .await
        .batch_execute(&format!(
            "SET search_path TO \"{}\"; DROP VIEW steps;
             ALTER TABLE runs ALTER COLUMN run_id TYPE text COLLATE \"default\";
             ALTER TABLE events ALTER COLUMN run_id TYPE text COLLATE \"default\";
             ALTER TABLE signals ALTER COLUMN run_id TYPE text COLLATE \"default\";
             CREATE VIEW steps AS SELECT run_id FROM events;
             UPDATE schema_version SET version = 11",
            db.schema
        ))
        .await
        .unwrap();
    let old = [
        ("events", None),
        ("runs", None),
        ("signals", None),
        ("steps", None),
    ]
    .map(|(table, collation)| (table.to_owned(), collation))
    .to_vec();
    assert_eq!(run_id_collations(&db.url, &db.schema).await, old);

    let store = db.store().await;
    assert_eq!(
        run_id_collations(&db.url, &db.schema).await,
        c_collated("steps")
    );
    assert_eq!(
        store.signal(&"r".into(), "go").await.unwrap().as_deref(),
        Some("1")
    );
    let inspector = PgInspector::connect(&db.url, &db.schema).await.unwrap();
    let steps = inspector.steps("r").await.unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|s| (s.name.as_str(), s.status.as_str()))
            .collect::<Vec<_>>(),
        [("a", "completed")],
        "the steps view made again reads the run's step"
    );
}

#[tokio::test]
async fn an_unreachable_server_and_a_bad_url_are_named_without_the_password() {
    let port = support::server::free_port(); // bound, then let go: nothing listens there
    let url = format!("postgres://app:s3cret@127.0.0.1:{port}/orders");
    let error = PgInspector::connect(&url, "sagaflow").await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "`postgres://app@127.0.0.1:{port}/orders`: cannot connect"
        )),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");

    let error = PgInspector::connect("postgres://app:s3cret@db/x?sslmode=bogus", "sagaflow")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("not a PostgreSQL connection string") && !text.contains("s3cret"),
        "{text}"
    );

    let error = PgInspector::connect(&url, "no-such;schema")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("is not a schema name"),
        "{error}"
    );
}

#[tokio::test]
async fn a_schema_named_in_mixed_case_is_the_one_written_and_read() {
    let Some(url) = support::server().await else {
        return;
    };
    let schema = format!("{}_Mixed", support::fresh_schema());
    let options = sagaflow_postgres::PgOptions::default().schema(schema.as_str());
    let store = sagaflow_postgres::PgStore::connect(&url, options)
        .await
        .unwrap();
    create(&store, "r", "W").await.unwrap();
    let inspector = PgInspector::connect(&url, &schema).await.unwrap();
    let runs = inspector.runs().await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        !schema_exists(&url, &schema.to_lowercase()).await,
        "the store wrote a schema folded to lower case"
    );
    drop((inspector, store));
    support::client(&url)
        .await
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

/// The graphs stored, as `(workflow, fingerprint, graph)` in that order, and how many runs'
/// rows hold a graph of their own.
async fn graphs_stored(db: &support::Db) -> (Vec<(String, i64, String)>, i64) {
    let client = support::client(&db.url).await;
    let schema = &db.schema;
    let graphs = client
        .query(
            &format!("SELECT workflow, fingerprint, graph FROM \"{schema}\".graphs ORDER BY 1, 2"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let in_runs: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".runs WHERE graph IS NOT NULL"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (graphs, in_runs)
}

#[tokio::test]
async fn a_workflows_graph_is_stored_once_and_read_for_every_run_of_it() {
    let db = fresh_db!();
    let store = db.store().await;
    let (etl, etl_2, ship) = (
        ("Etl", 7, "{\"nodes\":[\"a\"],\"edges\":[]}"),
        ("Etl", 8, "{\"nodes\":[\"a\",\"b\"],\"edges\":[[0,1]]}"),
        ("Ship", 7, "{\"nodes\":[\"s\"],\"edges\":[]}"),
    );
    // Four runs of one graph at once (a batch of creations), one alone, and two more graphs:
    // a new version of the workflow, and another workflow of the same fingerprint.
    for created in futures_util::future::join_all(
        ["a", "b", "c", "d"].map(|id| create_with_graph(&store, id, etl)),
    )
    .await
    {
        created.unwrap();
    }
    assert!(store.commits() <= 2, "the four were not batched");
    create_with_graph(&store, "e", etl).await.unwrap();
    create_with_graph(&store, "f", etl_2).await.unwrap();
    create_with_graph(&store, "g", ship).await.unwrap();
    let (graphs, in_runs) = graphs_stored(&db).await;
    let row = |(w, f, g): (&str, u64, &str)| (w.to_owned(), f.cast_signed(), g.to_owned());
    assert_eq!(graphs, [row(etl), row(etl_2), row(ship)]);
    assert_eq!(in_runs, 0, "a run's row carries no graph of its own");

    let inspector = PgInspector::connect(&db.url, &db.schema).await.unwrap();
    for (id, graph) in [
        ("a", etl),
        ("d", etl),
        ("e", etl),
        ("f", etl_2),
        ("g", ship),
    ] {
        assert_eq!(
            inspector.graph(id).await.unwrap().as_deref(),
            Some(graph.2),
            "run {id}"
        );
    }
    // A run the code before schema 11 created holds its graph in its row, which is read.
    support::client(&db.url)
        .await
        .batch_execute(&format!(
            "INSERT INTO \"{}\".runs (run_id, workflow, graph_fingerprint, input, status, \
                 version, created_at, updated_at, graph) \
             VALUES ('old', 'Etl', 7, '\"in\"', 'running', 1, 1, 1, '{{\"nodes\":[\"old\"]}}')",
            db.schema
        ))
        .await
        .unwrap();
    assert_eq!(
        inspector.graph("old").await.unwrap().as_deref(),
        Some("{\"nodes\":[\"old\"]}")
    );

    // The store sends a graph only while it has not seen it stored: taken away behind its
    // back, it is not sent again by this store, and is by a store that never saw it.
    support::client(&db.url)
        .await
        .batch_execute(&format!("DELETE FROM \"{}\".graphs", db.schema))
        .await
        .unwrap();
    create_with_graph(&store, "h", etl).await.unwrap();
    assert_eq!(graphs_stored(&db).await.0, []);
    assert_eq!(inspector.graph("h").await.unwrap(), None);
    let other = db.store().await;
    create_with_graph(&other, "i", etl).await.unwrap();
    create_with_graph(&other, "j", etl).await.unwrap();
    assert_eq!(graphs_stored(&db).await.0, [row(etl)]);
    assert_eq!(inspector.graph("h").await.unwrap().as_deref(), Some(etl.2));
}
