//! The read-only commands, on a database made by real runs while their engine still has it
//! open: what they print, their `--json`, and their exit codes. Each on a SQLite file and on a
//! PostgreSQL schema (`<test>::sqlite`, `<test>::postgres`).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

#[macro_use]
mod common;

use common::{Backend, Etl, Fixture};
use serde_json::Value;

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

on_both_stores!(runs_lists_sagas_by_their_standing_and_filters, standard);
async fn runs_lists_sagas_by_their_standing_and_filters(f: Fixture) {
    let table = f.run(&["runs"]);
    let table = table.ok();
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("RUN"), "{table}");
    assert!(
        header.contains("WORKFLOW") && header.contains("STATUS"),
        "{table}"
    );
    assert!(
        lines_with(table, "ship-ok")[0].contains("completed"),
        "{table}"
    );
    assert!(
        lines_with(table, "ship-undone")[0].contains("compensated"),
        "{table}"
    );
    assert!(
        lines_with(table, "ship-stuck")[0].contains("stuck"),
        "{table}"
    );
    assert!(
        lines_with(table, "etl-1")[0].contains("completed"),
        "{table}"
    );
    // Aligned: every row's STATUS starts in the header's STATUS column.
    let column = header.find("STATUS").unwrap();
    for line in table.lines().skip(1) {
        assert!(
            line[column..].starts_with("completed")
                || line[column..].starts_with("compensated")
                || line[column..].starts_with("stuck"),
            "{table}"
        );
    }
    assert!(!table.contains("~undo"), "rounds only with --all: {table}");
    assert!(!table.contains("\x1b["), "no colour off a terminal");

    let all = f.run(&["runs", "--all"]);
    assert!(all.ok().contains("ship-undone~undo1"), "{all:?}");

    let stuck = f.run(&["runs", "--status", "stuck"]);
    let stuck = stuck.ok();
    assert_eq!(stuck.lines().count(), 2, "{stuck}");
    assert!(stuck.contains("ship-stuck"));
    // A saga's forward run status matches too: both failed forward runs.
    let failed = f.run(&["runs", "--status", "failed", "--json"]).json();
    let ids: Vec<&str> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ship-undone", "ship-stuck"]);

    let etl = f.run(&["runs", "--workflow", "Etl", "--json"]).json();
    assert_eq!(etl.as_array().unwrap().len(), 1);
    assert_eq!(etl[0]["status"], "completed");
    assert_eq!(etl[0]["workflow"], "Etl");
    assert!(etl[0]["duration_ms"].as_i64().unwrap() >= 0);

    let json = f.run(&["runs", "--json", "--since", "1h"]).json();
    assert_eq!(json.as_array().unwrap().len(), 4);
    assert_eq!(json[2]["status"], "stuck");
    assert_eq!(json[2]["run_status"], "failed");
    assert_eq!(json[2]["rounds"], 1);
    let none = f.run(&["runs", "--since", "2999-01-01"]);
    assert_eq!(none.ok().trim(), "no runs");
    let since = f
        .run(&["runs", "--since", "2000-01-01T00:00:00Z", "--json"])
        .json();
    assert_eq!(since.as_array().unwrap().len(), 4);

    let bad = f.run(&["runs", "--since", "yesterday"]);
    assert!(bad.err().contains("--since `yesterday`"), "{bad:?}");
    let usage = f.run(&["runs", "--status", "sleeping"]);
    assert_eq!(usage.code, Some(2), "{usage:?}");
}

on_both_stores!(show_gives_steps_and_compensation_rounds, standard);
async fn show_gives_steps_and_compensation_rounds(f: Fixture) {
    let out = f.run(&["show", "ship-stuck"]);
    let text = out.ok();
    assert!(text.contains("workflow  Ship"), "{text}");
    assert!(
        text.contains("status    stuck (forward run failed)"),
        "{text}"
    );
    assert!(text.contains("load balancer rejected the target"), "{text}");
    let shift = lines_with(text, "shift_traffic");
    assert!(
        shift
            .iter()
            .any(|l| l.contains("failed") && l.contains(" 2 ")),
        "{text}"
    );
    assert!(
        text.contains("compensation round 1 (ship-stuck~undo1): failed"),
        "{text}"
    );
    // A round's steps are named after the forward steps they undo.
    let untag = lines_with(text, "undo push_image")[0];
    assert!(
        untag.contains("failed") && untag.contains("401 Unauthorized"),
        "{text}"
    );
    assert!(
        lines_with(text, "undo migrate_db")[0].contains("completed"),
        "{text}"
    );
    assert!(text.contains("sagaflow retry ship-stuck"), "{text}");

    let json = f.run(&["show", "ship-undone", "--json"]).json();
    assert_eq!(json["status"], "compensated");
    assert_eq!(json["steps"][2]["name"], "migrate_db");
    assert_eq!(json["steps"][2]["status"], "failed");
    assert_eq!(json["steps"][2]["attempts"], 2);
    let undone: Vec<&str> = json["rounds"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["push_image", "build_image", "~compensated"]);

    let plain = f.run(&["show", "etl-1"]);
    let plain = plain.ok();
    assert!(plain.contains("status    completed"), "{plain}");
    assert!(!plain.contains("compensation round"), "{plain}");
}

on_both_stores!(events_replay_a_saga_with_its_rounds, standard);
async fn events_replay_a_saga_with_its_rounds(f: Fixture) {
    let out = f.run(&["events", "ship-undone"]);
    let text = out.ok();
    let first = text.lines().next().unwrap();
    assert!(first.contains("run_created"), "{text}");
    assert!(
        lines_with(text, "step_failed")
            .iter()
            .any(|l| l.contains("migrate_db") && l.contains("lock timeout")),
        "{text}"
    );
    assert!(
        lines_with(text, "step_completed")
            .iter()
            .any(|l| l.contains("undo1 push_image")),
        "{text}"
    );
    let json = f.run(&["events", "ship-undone", "--json"]).json();
    let events = json.as_array().unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(events.iter().any(|e| e["run_id"] == "ship-undone~undo1"));
    assert_eq!(events.last().unwrap()["kind"], "run_completed");
    let retry = events
        .iter()
        .find(|e| e["kind"] == "step_retrying")
        .unwrap();
    assert_eq!(retry["step"], "migrate_db");
    assert_eq!(retry["detail"]["permanent"], Value::Bool(false));
    assert!(
        retry["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("lock timeout")
    );
}

on_both_stores!(graph_draws_the_stored_edges_with_statuses, standard);
async fn graph_draws_the_stored_edges_with_statuses(f: Fixture) {
    let mermaid = f.run(&["graph", "etl-1", "--format", "mermaid"]);
    let mermaid = mermaid.ok();
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    for edge in ["s0 --> s1", "s0 --> s2", "s1 --> s3", "s2 --> s3"] {
        assert!(mermaid.contains(edge), "{mermaid}");
    }
    assert!(mermaid.contains("class s3 completed"), "{mermaid}");

    let dot = f.run(&["graph", "ship-undone", "--format", "dot"]);
    let dot = dot.ok();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("label=\"migrate_db\", style=filled, fillcolor=\"#f7c5c5\""),
        "{dot}"
    );
    assert!(
        dot.contains("label=\"shift_traffic\", style=filled, fillcolor=\"#eeeeee\""),
        "{dot}"
    );
    assert!(dot.contains("s2 -> s3;"), "{dot}");

    let ascii = f.run(&["graph", "etl-1"]);
    let ascii = ascii.ok();
    assert!(ascii.contains("1  ✓ extract"), "{ascii}");
    assert!(ascii.contains("2  ✓ clean    ✓ audit"), "{ascii}");
    assert!(ascii.contains("extract ─▶ clean, audit"), "{ascii}");
    assert!(ascii.contains("3  ✓ load"), "{ascii}");
    assert!(ascii.contains("· not started"), "{ascii}");

    let json = f.run(&["graph", "etl-1", "--json"]).json();
    assert_eq!(json["graph"]["nodes"][0], "extract");
    assert_eq!(
        json["graph"]["edges"][0],
        serde_json::json!(["extract", "clean"])
    );
}

on_both_stores!(machines_and_their_transition_log, standard);
async fn machines_and_their_transition_log(f: Fixture) {
    let list = f.run(&["machines"]);
    let list = list.ok();
    let door = lines_with(list, "door-1")[0];
    assert!(
        door.contains("Door") && door.contains("Locked(1234)") && door.contains(" 3 "),
        "{list}"
    );
    let one = f.run(&["machine", "door-1"]);
    let one = one.ok();
    assert!(one.contains("state     Locked(1234)"), "{one}");
    let log: Vec<&str> = one.lines().skip_while(|l| !l.starts_with("SEQ")).collect();
    assert_eq!(log.len(), 4, "{one}");
    assert!(log[1].contains("Closed") && log[1].contains("Open") && log[1].contains("Opened"));
    assert!(
        log[3].contains("Lock") && log[3].ends_with("Locked"),
        "{one}"
    );
    let json = f.run(&["machine", "door-1", "--json"]).json();
    assert_eq!(json["version"], 3);
    assert_eq!(json["state"], serde_json::json!({"Locked": 1234}));
    assert_eq!(json["transitions"][2]["event"], "Lock");
    let list = f.run(&["machines", "--json"]).json();
    assert_eq!(list[0]["machine"], "Door");
    let missing = f.run(&["machine", "door-9"]);
    let message = missing.err();
    assert!(message.contains("no state machine `door-9`"), "{message}");
    assert!(message.contains(&f.name()), "{message}");
}

on_both_stores!(stuck_and_stats, standard);
async fn stuck_and_stats(f: Fixture) {
    let stuck = f.run(&["stuck"]);
    let stuck = stuck.ok();
    let row = lines_with(stuck, "ship-stuck")[0];
    assert!(
        row.contains("Ship") && row.contains("push_image"),
        "{stuck}"
    );
    assert!(row.contains("401 Unauthorized"), "{stuck}");
    let json = f.run(&["stuck", "--json"]).json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["round"], "ship-stuck~undo1");
    assert_eq!(json[0]["step"], "push_image");
    assert_eq!(json[0]["attempts"], 2);
    assert_eq!(json[0]["requested"], Value::Null);

    let stats = f.run(&["stats"]);
    let stats = stats.ok();
    let ship = lines_with(stats, "Ship ")[0];
    assert!(ship.contains("33.3%"), "{stats}");
    assert!(stats.contains("P50") && stats.contains("P99"), "{stats}");
    let json = f.run(&["stats", "--workflow", "Ship", "--json"]).json();
    let workflows = json["workflows"].as_array().unwrap();
    assert_eq!(workflows.len(), 1);
    assert_eq!(workflows[0]["total"], 3);
    assert_eq!(workflows[0]["completed"], 1);
    assert_eq!(workflows[0]["failed"], 2);
    assert!(workflows[0]["p50_ms"].as_i64().is_some());
    let steps = json["steps"].as_array().unwrap();
    let migrate = steps.iter().find(|s| s["step"] == "migrate_db").unwrap();
    assert_eq!(migrate["total"], 3);
    assert_eq!(migrate["failed"], 1);
    let rate = migrate["success_rate"].as_f64().unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{rate}");
    let none = f.run(&["stats", "--workflow", "Nope"]);
    assert!(none.ok().contains("no runs of workflow `Nope`"));
}

on_both_stores!(
    reads_while_a_writer_holds_the_write_lock_and_sees_only_commits,
    standard
);
async fn reads_while_a_writer_holds_the_write_lock_and_sees_only_commits(f: Fixture) {
    let writer = f.raw().await;
    // SQLite's write lock on the file; PostgreSQL's lock on the row.
    let begin = match f.backend() {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    writer
        .batch(&format!(
            "{begin}; UPDATE runs SET status = 'cancelled' WHERE run_id = 'etl-1';"
        ))
        .await;
    let started = std::time::Instant::now();
    let json = f.run(&["runs", "--workflow", "Etl", "--json"]).json();
    assert_eq!(
        json[0]["status"], "completed",
        "an uncommitted write is not seen"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "not blocked"
    );
    writer.batch("COMMIT").await;
    let json = f.run(&["runs", "--workflow", "Etl", "--json"]).json();
    assert_eq!(json[0]["status"], "cancelled");
}

on_both_stores!(replicas_shows_who_lives_what_each_holds_and_what_waits, new);
async fn replicas_shows_who_lives_what_each_holds_and_what_waits(f: Fixture) {
    let owner = match &f.store {
        common::Store::Sqlite(store) => store.owner().to_owned(),
        common::Store::Postgres(store) => store.owner().to_owned(),
    };
    let fingerprint = Etl::definition()
        .erased()
        .graph()
        .unwrap()
        .fingerprint()
        .cast_signed();
    // A run this replica holds, and one of a version no replica runs, whose lease is gone.
    f.sql(&format!(
        "INSERT INTO runs (run_id, workflow, graph_fingerprint, input, status, version, \
                           created_at, updated_at, owner, lease_token, lease_expires) \
         VALUES ('held', 'Etl', {fingerprint}, '1', 'running', 1, 1, 1, '{owner}', 1, \
                 9000000000000), \
                ('old-version', 'Etl', 12345, '1', 'running', 1, 2, 2, 'gone', 1, 0)"
    ))
    .await;
    // Before any engine registered a workflow, nobody was heard from, and both runs of `Etl`
    // but the held one wait.
    let before = f.run(&["replicas", "--json"]).json();
    assert_eq!(before["replicas"], Value::Array(vec![]), "{before}");
    assert_eq!(before["waiting"][0]["run_id"], "old-version", "{before}");
    Etl::register(&f.engine).unwrap();
    // The engine tells the store at once, then every few seconds.
    let began = std::time::Instant::now();
    let listed = loop {
        let listed = f.run(&["replicas", "--json"]).json();
        if listed["replicas"].as_array().is_some_and(|r| !r.is_empty()) {
            break listed;
        }
        assert!(began.elapsed().as_secs() < 10, "never heard from: {listed}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let replica = &listed["replicas"][0];
    assert_eq!(replica["owner"], owner.as_str(), "{listed}");
    assert_eq!(replica["live"], true, "{listed}");
    assert_eq!(replica["pid"], std::process::id(), "{listed}");
    assert_eq!(replica["version"], env!("CARGO_PKG_VERSION"), "{listed}");
    assert_eq!(replica["runs"], serde_json::json!(["held"]), "{listed}");
    assert_eq!(replica["graphs"][0]["workflow"], "Etl", "{listed}");
    let waiting: Vec<&str> = listed["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(waiting, ["old-version"], "{listed}");
    let table = f.run(&["replicas"]);
    let table = table.ok();
    assert!(table.starts_with("REPLICA"), "{table}");
    assert!(lines_with(table, &owner)[0].contains(" ago"), "{table}");
    assert!(
        table.contains("waiting for a version no live replica runs (1):"),
        "{table}"
    );
    assert_eq!(lines_with(table, "old-version").len(), 1, "{table}");
}

on_both_stores!(queues_shows_what_waits_what_runs_and_the_bounds_set, new);
async fn queues_shows_what_waits_what_runs_and_the_bounds_set(f: Fixture) {
    use sagaflow::runtime::{Enqueue, Serve};
    let owner = match &f.store {
        common::Store::Sqlite(store) => store.owner().to_owned(),
        common::Store::Postgres(store) => store.owner().to_owned(),
    };
    assert_eq!(f.run(&["queues"]).ok(), "no queues\n");
    for k in 0..3 {
        Etl::enqueue(
            &f.engine,
            format!("etl-q{k}").as_str(),
            k,
            &Enqueue::on("reports").priority(k.cast_signed()),
        )
        .await
        .unwrap();
    }
    let before = f.run(&["queues", "--json"]).json();
    assert_eq!(before[0]["queue"], "reports", "{before}");
    assert_eq!(before[0]["waiting"], 3, "{before}");
    assert_eq!(before[0]["running"], 0, "{before}");
    assert!(
        before[0]["oldest_waiting_ms"].as_i64().unwrap() >= 0,
        "{before}"
    );
    assert_eq!(before[0]["served_by"], serde_json::json!({}), "{before}");
    // This engine serves another queue, with bounds; the reports wait on.
    Etl::register(&f.engine).unwrap();
    f.engine
        .serve(
            Serve::queue("mail")
                .at_most(2)
                .at_most_overall(5)
                .at_most_per_key(1)
                .rate(10, std::time::Duration::from_secs(1)),
        )
        .unwrap();
    let began = std::time::Instant::now();
    let listed = loop {
        let listed = f.run(&["queues", "--json"]).json();
        if listed.as_array().is_some_and(|q| q.len() == 2) {
            break listed;
        }
        assert!(began.elapsed().as_secs() < 10, "never told: {listed}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(listed[0]["queue"], "mail", "{listed}");
    let bounds = &listed[0]["served_by"][owner.as_str()];
    assert_eq!(bounds["at_most"], 2, "{listed}");
    assert_eq!(bounds["overall"], 5, "{listed}");
    assert_eq!(bounds["per_key"], 1, "{listed}");
    assert_eq!(bounds["rate"], serde_json::json!([10, 1000]), "{listed}");
    assert_eq!(listed[1]["queue"], "reports", "{listed}");
    assert_eq!(listed[1]["waiting"], 3, "{listed}");
    let table = f.run(&["queues"]);
    let table = table.ok();
    assert!(table.starts_with("QUEUE"), "{table}");
    let mail = lines_with(table, "mail");
    assert!(
        mail[0].contains("2 a replica, 5 in all, 1 a key, 10 starts/1.0s"),
        "{table}"
    );
    let reports = lines_with(table, "reports");
    assert!(reports[0].contains(" 3 "), "{table}");
    assert!(reports[0].ends_with("none"), "{table}");
}
