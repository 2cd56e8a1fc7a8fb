//! Retention ([`Retention`], and the policy of [`crate::runtime::retention`] on it): finished
//! runs listed by age and deleted whole, nothing else touched, a saga's runs kept until
//! compensated, batches bounded, and positions that never go back once the newest rows are
//! gone. Run on a [`TestDatabase`], for stores whose runs outlive their engine.

use std::time::Duration;

use super::durable::{RECOVERIES, TestDatabase};
use super::runs::{complete, create, start};
use crate::runtime::error::RunError;
use crate::runtime::id::RunId;
use crate::runtime::retention::{self, RetentionPolicy};
use crate::runtime::store::{
    Change, EventLog, FinishedQuery, Retention, RunStore, SignalStore, StoredRunStatus,
};

const LEASE: Duration = Duration::from_secs(30);

/// Ends run `id` with `status` (completed, failed or cancelled).
async fn finish(store: &impl RunStore, id: &str, status: StoredRunStatus) {
    let run_id = RunId::from(id);
    let error = RunError::Cancelled {
        run_id: run_id.clone(),
        steps: Default::default(),
    };
    let change = match status {
        StoredRunStatus::Completed => Change::RunCompleted,
        StoredRunStatus::Failed => Change::RunFailed { error: &error },
        _ => Change::RunCancelled,
    };
    store.record(&run_id, &change).await.unwrap();
}

/// A run with a step that completed, ended with `status`.
async fn finished(store: &impl RunStore, id: &str, workflow: &str, status: StoredRunStatus) {
    create(store, id, workflow).await.unwrap();
    start(store, id, "a").await.unwrap();
    complete(store, id, "a", &"out".to_owned()).await.unwrap();
    finish(store, id, status).await;
}

async fn exists(store: &impl RunStore, id: &str) -> bool {
    store.load_run(&id.into()).await.unwrap().is_some()
}

/// A policy that keeps the newest run deletes the older finished ones, each with its steps,
/// events and signals, and touches neither the newest nor a run still running; the listing
/// is oldest first and pages from a cursor.
pub async fn a_policy_deletes_old_finished_runs_whole_and_nothing_else(db: &impl TestDatabase) {
    let store = db.open("one", LEASE, RECOVERIES).await;
    finished(&store, "a1", "W", StoredRunStatus::Completed).await;
    finished(&store, "a2", "W", StoredRunStatus::Failed).await;
    store.deliver_signal(&"a2".into(), "go", "1").await.unwrap();
    finished(&store, "a3", "W", StoredRunStatus::Cancelled).await;
    finished(&store, "a4", "W", StoredRunStatus::Completed).await;
    create(&store, "live", "W").await.unwrap();
    start(&store, "live", "a").await.unwrap();

    let all = FinishedQuery {
        statuses: vec![
            StoredRunStatus::Completed,
            StoredRunStatus::Failed,
            StoredRunStatus::Cancelled,
            StoredRunStatus::Running,
        ],
        older_than: None,
        keep: 0,
        after: None,
        limit: 10,
    };
    let listed = store.finished_runs(&all).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        ids,
        ["a1", "a2", "a3", "a4"],
        "oldest first, never a running run"
    );
    assert_eq!(listed[1].status, StoredRunStatus::Failed);
    let page = FinishedQuery {
        after: Some(listed[1].cursor()),
        limit: 1,
        ..all.clone()
    };
    let next: Vec<_> = store.finished_runs(&page).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].run_id.as_str(), "a3");
    let kept_newest = FinishedQuery {
        keep: 1,
        ..all.clone()
    };
    assert_eq!(store.finished_runs(&kept_newest).await.unwrap().len(), 3);
    let completed = FinishedQuery {
        statuses: vec![StoredRunStatus::Completed],
        ..all
    };
    let ids: Vec<_> = store.finished_runs(&completed).await.unwrap();
    assert_eq!(ids.len(), 2);

    let policy = RetentionPolicy::new().keep(1);
    let would = retention::prunable(&store, &policy, 100).await.unwrap();
    let would: Vec<&str> = would.iter().map(|p| p.run.run_id.as_str()).collect();
    assert_eq!(would, ["a1", "a2", "a3"]);
    let report = retention::prune(&store, &policy, None).await.unwrap();
    assert_eq!(report.deleted.runs, 3);
    assert_eq!(report.deleted.signals, 1);
    // Each run logged its creation, a start, a completion and its end.
    assert_eq!(report.deleted.events, 12);
    assert!(!report.more);
    for gone in ["a1", "a2", "a3"] {
        assert!(!exists(&store, gone).await, "{gone} was deleted");
        let events = store.events(Some(&gone.into()), 0, 100).await.unwrap();
        assert!(
            events.is_empty(),
            "{gone}'s events went with it: {events:?}"
        );
    }
    assert_eq!(store.signal(&"a2".into(), "go").await.unwrap(), None);
    assert!(exists(&store, "a4").await, "the newest is kept");
    let live = store.load_run(&"live".into()).await.unwrap().unwrap();
    assert_eq!(live.status, StoredRunStatus::Running);
    assert_eq!(live.steps.len(), 1);
    // Nothing is left to delete, and deleting what is not finished does nothing.
    let again = retention::prune(&store, &policy, None).await.unwrap();
    assert_eq!(again.deleted.runs, 0);
    let refused = store.delete_runs(&["live".into(), "nope".into()]).await;
    assert_eq!(refused.unwrap().runs, 0);
    assert!(exists(&store, "live").await);
}

/// Deleting the newest run's rows hands none of its positions out again: the next event and
/// the next signal are numbered above every one handed out before, and a reader tailing after
/// the old newest finds them.
pub async fn positions_keep_growing_once_the_newest_rows_are_deleted(db: &impl TestDatabase) {
    let store = db.open("one", LEASE, RECOVERIES).await;
    finished(&store, "old", "W", StoredRunStatus::Completed).await;
    finished(&store, "newest", "W", StoredRunStatus::Completed).await;
    store
        .deliver_signal(&"newest".into(), "go", "1")
        .await
        .unwrap();
    let last_event = store
        .events(None, 0, usize::MAX)
        .await
        .unwrap()
        .last()
        .map(|e| e.seq)
        .unwrap();
    let last_signal = store.signal_position().await.unwrap();
    let deleted = store.delete_runs(&["newest".into()]).await.unwrap();
    assert_eq!(deleted.runs, 1);
    assert!(deleted.events >= 4 && deleted.signals == 1, "{deleted:?}");

    // Another store on the database (another process) writes next.
    let other = db.open("two", LEASE, RECOVERIES).await;
    create(&other, "next", "W").await.unwrap();
    let events = other.events(None, last_event, 10).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].run_id.as_str(), "next");
    assert!(
        events[0].seq > last_event,
        "{} <= {last_event}",
        events[0].seq
    );
    other
        .deliver_signal(&"next".into(), "go", "2")
        .await
        .unwrap();
    if let Some(before) = last_signal {
        let after = other.signals_after(before, 10).await.unwrap();
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(after[0].run_id.as_str(), "next");
        assert!(after[0].position > before);
        let now = other.signal_position().await.unwrap().unwrap();
        assert!(now > before, "{now} <= {before}");
    }
    // All of the log deleted: numbering still goes on above.
    finish(&other, "next", StoredRunStatus::Completed).await;
    other
        .delete_runs(&["old".into(), "next".into()])
        .await
        .unwrap();
    let newest = other
        .events(None, 0, usize::MAX)
        .await
        .unwrap()
        .last()
        .map(|e| e.seq);
    assert_eq!(newest, None, "the log is empty");
    create(&store, "after-all", "W").await.unwrap();
    let events = store.events(None, 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].seq > last_event + 1, "{events:?}");
}

/// A saga's failed run stays while its compensation needs it: with no round yet (a saga's,
/// known by its rounds in the store or by name), or a round that failed (stuck); once its
/// latest round completed, it goes with every round. A failed run of a plain workflow goes;
/// a round never goes on its own.
pub async fn a_saga_run_stays_until_compensated(db: &impl TestDatabase) {
    let store = db.open("one", LEASE, RECOVERIES).await;
    let failed = StoredRunStatus::Failed;
    // Stuck: its only round failed.
    finished(&store, "stuck", "Saga", failed).await;
    finished(&store, "stuck~undo1", "Saga~compensate", failed).await;
    // Compensated on the second round, after an operator's retry.
    finished(&store, "done", "Saga", StoredRunStatus::Cancelled).await;
    finished(&store, "done~undo1", "Saga~compensate", failed).await;
    finished(
        &store,
        "done~undo2",
        "Saga~compensate",
        StoredRunStatus::Completed,
    )
    .await;
    // Compensating now.
    finished(&store, "busy", "Saga", failed).await;
    create(&store, "busy~undo1", "Saga~compensate")
        .await
        .unwrap();
    // No round yet: a saga's (the store holds rounds of `Saga`), or named on the policy.
    finished(&store, "waiting", "Saga", failed).await;
    finished(&store, "named", "Named", failed).await;
    finished(&store, "plain", "Plain", failed).await;
    finished(&store, "ok", "Saga", StoredRunStatus::Completed).await;

    let policy = RetentionPolicy::new().saga("Named");
    let would = retention::prunable(&store, &policy, 100).await.unwrap();
    let mut would: Vec<(String, Vec<String>)> = would
        .into_iter()
        .map(|p| {
            let rounds = p.rounds.iter().map(|r| r.as_str().to_owned()).collect();
            (p.run.run_id.as_str().to_owned(), rounds)
        })
        .collect();
    would.sort();
    assert_eq!(
        would,
        [
            (
                "done".to_owned(),
                vec!["done~undo1".to_owned(), "done~undo2".to_owned()]
            ),
            ("ok".to_owned(), vec![]),
            ("plain".to_owned(), vec![]),
        ]
    );
    let report = retention::prune(&store, &policy, None).await.unwrap();
    assert_eq!(report.deleted.runs, 5);
    for gone in ["done", "done~undo1", "done~undo2", "ok", "plain"] {
        assert!(!exists(&store, gone).await, "{gone} was deleted");
    }
    for kept in [
        "stuck",
        "stuck~undo1",
        "busy",
        "busy~undo1",
        "waiting",
        "named",
    ] {
        assert!(exists(&store, kept).await, "{kept} stays");
    }
}

/// `older_than` spares what finished more recently, by the store's clock; a pass bounded to
/// some batches deletes that many batches and says more is left.
pub async fn age_and_batches_bound_what_a_pass_deletes(db: &impl TestDatabase) {
    let store = db.open("one", LEASE, RECOVERIES).await;
    for i in 0..7 {
        finished(&store, &format!("r{i}"), "W", StoredRunStatus::Completed).await;
    }
    let recent = RetentionPolicy::new().older_than(Duration::from_secs(3600));
    let report = retention::prune(&store, &recent, None).await.unwrap();
    assert_eq!(report.deleted.runs, 0, "they all finished within the hour");

    let bounded = RetentionPolicy::new().batch(3);
    let report = retention::prune(&store, &bounded, Some(2)).await.unwrap();
    assert_eq!((report.deleted.runs, report.batches), (6, 2));
    assert!(report.more);
    assert!(
        exists(&store, "r6").await,
        "the newest is left for the next pass"
    );
    let report = retention::prune(&store, &bounded, Some(2)).await.unwrap();
    assert_eq!((report.deleted.runs, report.batches), (1, 1));
    assert!(!report.more);

    // Once they are older than the bound, by the store's clock, they go.
    finished(&store, "late", "W", StoredRunStatus::Completed).await;
    let soon = RetentionPolicy::new().older_than(Duration::from_millis(20));
    let began = std::time::Instant::now();
    loop {
        let report = retention::prune(&store, &soon, None).await.unwrap();
        if report.deleted.runs == 1 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "a run 20 ms old was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!exists(&store, "late").await);
}

/// Runs every retention check as a test of its own, each on a fresh database made by `$make`
/// (an expression whose value implements [`TestDatabase`]).
#[macro_export]
macro_rules! retention_conformance {
    ($make:expr) => {
        $crate::__conformance_checks!(retention, $make, []:
            a_policy_deletes_old_finished_runs_whole_and_nothing_else,
            positions_keep_growing_once_the_newest_rows_are_deleted,
            a_saga_run_stays_until_compensated,
            age_and_batches_bound_what_a_pass_deletes,
        );
    };
}
