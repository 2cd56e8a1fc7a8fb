//! The machine capability ([`MachineStore`]): idempotent creation, optimistic concurrency on
//! the version, the log written with the state or not at all, ids by type.

use crate::runtime::store::{Advanced, MachineStep, MachineStore};

fn step(expected_version: u64, to: &str) -> MachineStep {
    MachineStep {
        expected_version,
        state: format!("\"{to}\""),
        from: "A".to_owned(),
        event: "E".to_owned(),
        to: to.to_owned(),
    }
}

/// The id is the idempotency key of a creation; a transition applies only at the version the
/// caller read, and a refused one leaves no trace, in the state or the log.
pub async fn insert_is_idempotent_and_a_transition_is_fenced(store: &impl MachineStore) {
    let (first, created) = store.insert_machine("m", "M", "\"A\"").await.unwrap();
    assert!(created);
    assert_eq!((first.version, first.state.as_str()), (0, "\"A\""));
    assert_eq!((first.id.as_str(), first.machine.as_str()), ("m", "M"));
    assert_eq!(first.created_at, first.updated_at);
    let (again, created) = store.insert_machine("m", "M", "\"Z\"").await.unwrap();
    assert!(!created);
    assert_eq!(again.state, "\"A\"", "the first insert wins");

    let applied = store.advance_machine("m", step(0, "B")).await.unwrap();
    assert!(
        matches!(applied, Advanced::Applied { version: 1, .. }),
        "{applied:?}"
    );
    let stale = store.advance_machine("m", step(0, "C")).await.unwrap();
    assert_eq!(stale, Advanced::Conflict { found: Some(1) });
    let missing = store.advance_machine("nope", step(0, "B")).await.unwrap();
    assert_eq!(missing, Advanced::Conflict { found: None });

    let stored = store.load_machine("m").await.unwrap().unwrap();
    assert_eq!((stored.version, stored.state.as_str()), (1, "\"B\""));
    assert!(stored.updated_at >= stored.created_at);
    let log = store.machine_log("m", 0, 10).await.unwrap();
    assert_eq!(log.len(), 1, "the refused write left no log row");
    assert_eq!(
        (
            log[0].seq,
            log[0].from.as_str(),
            log[0].event.as_str(),
            log[0].to.as_str()
        ),
        (1, "A", "E", "B")
    );
    assert!(store.load_machine("nope").await.unwrap().is_none());
    assert!(store.machine_log("nope", 0, 10).await.unwrap().is_empty());
}

/// The log pages in `seq` order from any point, and ends empty.
pub async fn the_log_pages_in_order(store: &impl MachineStore) {
    store.insert_machine("m", "M", "\"A\"").await.unwrap();
    for v in 0..5 {
        store.advance_machine("m", step(v, "B")).await.unwrap();
    }
    let first = store.machine_log("m", 0, 2).await.unwrap();
    let rest = store.machine_log("m", 2, 10).await.unwrap();
    let seqs: Vec<u64> = first.iter().chain(&rest).map(|t| t.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(store.machine_log("m", 5, 10).await.unwrap().is_empty());
    assert!(store.machine_log("m", 0, 0).await.unwrap().is_empty());
}

/// Ids are listed by type, in id order.
pub async fn ids_are_listed_by_type(store: &impl MachineStore) {
    for (id, machine) in [("b", "M"), ("a", "M"), ("c", "Other")] {
        store.insert_machine(id, machine, "\"A\"").await.unwrap();
    }
    assert_eq!(store.machine_ids("M").await.unwrap(), ["a", "b"]);
    assert_eq!(store.machine_ids("Other").await.unwrap(), ["c"]);
    assert!(store.machine_ids("None").await.unwrap().is_empty());
}

/// Of many writers racing from one version, exactly one applies; each of the others hears
/// the version it lost to. Run on a multi-threaded runtime, the writers really race.
pub async fn racing_writers_apply_exactly_one_transition_per_version<S>(store: &S)
where
    S: MachineStore + Clone + 'static,
{
    store.insert_machine("race", "M", "\"A\"").await.unwrap();
    for version in 0..5 {
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .advance_machine("race", step(version, &format!("W{w}")))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut applied = 0;
        for writer in writers {
            match writer.await.unwrap() {
                Advanced::Applied { version: v, .. } => {
                    assert_eq!(v, version + 1);
                    applied += 1;
                }
                Advanced::Conflict { found } => assert_eq!(found, Some(version + 1)),
            }
        }
        assert_eq!(applied, 1, "version {version}");
    }
    let log = store.machine_log("race", 0, 100).await.unwrap();
    assert_eq!(
        log.iter().map(|t| t.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
}

/// Runs every check of the machine capability as a test of its own, each on a fresh store
/// made by `$make` (an expression whose value implements `MachineStore + Clone`).
#[macro_export]
macro_rules! machine_conformance {
    ($make:expr) => {
        $crate::__conformance_checks!(machines, $make, []:
            insert_is_idempotent_and_a_transition_is_fenced,
            the_log_pages_in_order,
            ids_are_listed_by_type,
        );
        // Multi-threaded, so that the writers really race.
        $crate::__conformance_checks!(machines_racing, $make,
            [(flavor = "multi_thread", worker_threads = 4)]:
            racing_writers_apply_exactly_one_transition_per_version,
        );
    };
}
