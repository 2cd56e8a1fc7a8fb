//! `sagaflow prune`: finished runs deleted under a policy (age, count, status), a saga's run
//! only with its compensation rounds and once compensated, `--dry-run` deleting nothing; and
//! clear errors. Each on a SQLite file and on a PostgreSQL schema (`<test>::sqlite`,
//! `<test>::postgres`).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

#[macro_use]
mod common;

use common::{Fixture, sagaflow};

/// Every run id in the database, compensation rounds included, sorted.
fn run_ids(f: &Fixture) -> Vec<String> {
    let runs = f.run(&["--json", "runs", "--all"]).json();
    let mut ids: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

on_both_stores!(
    prune_deletes_what_the_policy_selects_and_keeps_stuck_sagas,
    standard
);
async fn prune_deletes_what_the_policy_selects_and_keeps_stuck_sagas(f: Fixture) {
    let all = run_ids(&f);
    assert_eq!(
        all,
        [
            "etl-1",
            "ship-ok",
            "ship-stuck",
            "ship-stuck~undo1",
            "ship-undone",
            "ship-undone~undo1"
        ]
    );

    // Completed runs only, the newest completed kept: `ship-ok` goes (the completed round of
    // `ship-undone` counts among the kept, but never goes on its own).
    let dry = f.run(&["prune", "--status", "completed", "--keep", "1", "--dry-run"]);
    let text = dry.ok();
    assert!(text.contains("ship-ok"), "{text}");
    assert!(
        !text.contains("etl-1") && !text.contains("ship-undone"),
        "{text}"
    );
    assert!(text.contains("nothing was deleted"), "{text}");
    assert_eq!(run_ids(&f), all, "a dry run deletes nothing");
    let pruned = f.run(&["--json", "prune", "--status", "completed", "--keep", "1"]);
    let report = pruned.json();
    assert_eq!(report["runs"], 1, "{report}");
    assert!(report["events"].as_u64().unwrap() > 0, "{report}");
    assert!(!run_ids(&f).contains(&"ship-ok".to_owned()));

    // Every finished run: the compensated saga goes with its round, the stuck one stays whole.
    let dry = f
        .run(&["--json", "prune", "--older-than", "0s", "--dry-run"])
        .json();
    let listed: Vec<(String, usize)> = dry
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["run_id"].as_str().unwrap().to_owned(),
                p["rounds"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("ship-undone".to_owned(), 1), ("etl-1".to_owned(), 0)],
        "{dry}"
    );
    let out = f.run(&["prune", "--older-than", "0s"]);
    assert!(out.ok().starts_with("pruned 3 run(s)"), "{out:?}");
    assert_eq!(run_ids(&f), ["ship-stuck", "ship-stuck~undo1"]);
    let show = f.run(&["show", "ship-stuck"]);
    assert!(show.ok().contains("stuck"), "{show:?}");
    // Machines are no runs: untouched.
    assert!(f.run(&["machines"]).ok().contains("door-1"));
    // Nothing left that the policy may delete.
    let out = f.run(&["prune", "--older-than", "0s", "--dry-run"]);
    assert!(out.ok().contains("nothing to prune"), "{out:?}");
}

on_both_stores!(a_recent_run_is_spared_by_older_than, standard);
async fn a_recent_run_is_spared_by_older_than(f: Fixture) {
    let before = run_ids(&f);
    let out = f.run(&["--json", "prune", "--older-than", "7d"]).json();
    assert_eq!(out["runs"], 0, "{out}");
    assert_eq!(run_ids(&f), before);
}

on_both_stores!(a_prune_without_a_bound_is_refused, standard);
async fn a_prune_without_a_bound_is_refused(f: Fixture) {
    let before = run_ids(&f);
    let out = f.run(&["prune"]);
    assert!(
        out.err()
            .contains("prune needs --older-than AGE or --keep N"),
        "{out:?}"
    );
    let out = f.run(&["prune", "--older-than", "7x"]);
    assert!(
        out.err().contains("--older-than `7x`: expected a duration"),
        "{out:?}"
    );
    assert_eq!(run_ids(&f), before);
}

#[test]
fn prune_on_a_missing_file_names_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    let out = sagaflow(&path, &["prune", "--keep", "10"]);
    let message = out.err();
    assert!(
        message.contains("nope.db") && message.contains("no such file"),
        "{message}"
    );
    assert!(!path.exists(), "prune created the file");
}
