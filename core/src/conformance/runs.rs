//! Runs, checkpoints and signals ([`RunStore`], [`SignalStore`]): what every store does,
//! whether or not its runs outlive its engine. A store states which it is
//! ([`RunStore::keeps_finished_runs`]), and each check holds it to that answer.

use crate::runtime::definition::Codec;
use crate::runtime::error::StoreError;
use crate::runtime::id::RunId;
use crate::runtime::store::{Change, Created, NewRun, RunStore, SignalStore, StoredRunStatus};

/// Creates the run `id` of `workflow`, with the input `"in"`.
pub async fn create(
    store: &impl RunStore,
    id: &str,
    workflow: &str,
) -> Result<Created, StoreError> {
    create_beginning(store, id, workflow, None).await
}

/// Creates the run `id` of `workflow`, with the input `"in"`, its step `first` started with
/// the creation (see [`NewRun::first_step`]).
pub async fn create_beginning(
    store: &impl RunStore,
    id: &str,
    workflow: &str,
    first: Option<&str>,
) -> Result<Created, StoreError> {
    create_run(store, id, (workflow, u64::MAX - 1, None), first).await
}

/// Creates the run `id` of `workflow`, with the input `"in"`, whose graph (JSON, see
/// [`NewRun::graph`]) is `graph`, with the fingerprint `fingerprint`.
pub async fn create_with_graph(
    store: &impl RunStore,
    id: &str,
    (workflow, fingerprint, graph): (&str, u64, &str),
) -> Result<Created, StoreError> {
    create_run(store, id, (workflow, fingerprint, Some(graph)), None).await
}

/// Creates the run `id` of `workflow` under the graph of `fingerprint` (and its JSON, if
/// given), with the input `"in"`, its step `first` started with the creation.
async fn create_run(
    store: &impl RunStore,
    id: &str,
    (workflow, fingerprint, graph): (&str, u64, Option<&str>),
    first: Option<&str>,
) -> Result<Created, StoreError> {
    let run_id = RunId::from(id);
    let input = String::from("in");
    store
        .create_run(&NewRun {
            run_id: &run_id,
            workflow,
            graph_fingerprint: fingerprint,
            input: &input,
            input_codec: Codec::of::<String>(),
            graph,
            first_step: first,
        })
        .await
}

/// Records that `step` of run `id` started its first attempt.
pub async fn start(store: &impl RunStore, id: &str, step: &str) -> Result<(), StoreError> {
    let change = Change::StepStarted { step, attempt: 1 };
    store.record(&RunId::from(id), &change).await
}

/// Records that `step` of run `id` completed its first attempt with `output`.
pub async fn complete(
    store: &impl RunStore,
    id: &str,
    step: &str,
    output: &String,
) -> Result<(), StoreError> {
    let change = Change::StepCompleted {
        step,
        attempt: 1,
        output,
        codec: Codec::of::<String>(),
    };
    store.record(&RunId::from(id), &change).await
}

/// The id is the idempotency key: a second creation reports the run that has it, with the
/// workflow that created it. A store that keeps runs lists the unfinished ones oldest first
/// and keeps how a run ended; one that does not says so by listing and loading nothing.
pub async fn a_run_id_is_created_once(store: &impl RunStore) {
    assert_eq!(create(store, "r", "W").await.unwrap(), Created::New);
    let existing = Created::Existing {
        workflow: "W".into(),
    };
    assert_eq!(create(store, "r", "W").await.unwrap(), existing);
    assert_eq!(
        create(store, "r", "Other").await.unwrap(),
        existing,
        "the id keeps the workflow that created it"
    );
    assert_eq!(create(store, "s", "W").await.unwrap(), Created::New);
    store
        .record(&"r".into(), &Change::RunCancelled)
        .await
        .unwrap();
    let unfinished = store.unfinished_runs().await.unwrap();
    let loaded = store.load_run(&"r".into()).await.unwrap();
    if store.keeps_finished_runs() {
        let ids: Vec<_> = unfinished.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["s"], "the cancelled run is finished");
        assert_eq!(loaded.map(|r| r.status), Some(StoredRunStatus::Cancelled));
        assert_eq!(store.stopped_runs("W").await.unwrap(), [RunId::from("r")]);
    } else {
        assert!(unfinished.is_empty(), "{unfinished:?}");
        assert_eq!(loaded, None);
        assert!(store.stopped_runs("W").await.unwrap().is_empty());
    }
}

/// Creations made at once (which a store may write in one transaction, as the PostgreSQL
/// store does): each id is created by exactly one of its creations, and each other creation
/// of it, in the same batch or before it, finds the run with the workflow that created it.
pub async fn creations_at_once_are_each_answered(store: &impl RunStore) {
    assert_eq!(create(store, "old", "Before").await.unwrap(), Created::New);
    let mut calls: Vec<(String, &str)> = Vec::new();
    for i in 0..20 {
        calls.push((format!("r{i}"), "A"));
        calls.push((format!("r{i}"), "B"));
    }
    calls.push(("old".to_owned(), "A"));
    let answers = futures_util::future::join_all(
        calls
            .iter()
            .map(|(id, workflow)| create(store, id, workflow)),
    )
    .await;
    let answers: Vec<Created> = answers.into_iter().map(|a| a.unwrap()).collect();
    for (pair, answered) in calls.chunks(2).zip(answers.chunks(2)).take(20) {
        let id = &pair[0].0;
        let made: Vec<&str> = pair
            .iter()
            .zip(answered)
            .filter(|(_, a)| **a == Created::New)
            .map(|((_, workflow), _)| *workflow)
            .collect();
        assert_eq!(made.len(), 1, "`{id}` created once: {answered:?}");
        let existing = Created::Existing {
            workflow: made[0].into(),
        };
        assert!(answered.contains(&existing), "`{id}`: {answered:?}");
    }
    assert_eq!(
        answers[40],
        Created::Existing {
            workflow: "Before".into()
        }
    );
    if store.keeps_finished_runs() {
        assert_eq!(store.unfinished_runs().await.unwrap().len(), 21);
    }
}

/// A run its engine forgot stays in a store that keeps runs (and its id stays taken); a store
/// that keeps runs only for its engine drops it, and the id is free again. Either way a
/// creation that can be answered at once answers as `create_run` does.
pub async fn a_forgotten_run_stays_only_where_runs_are_kept(store: &impl RunStore) {
    assert_eq!(create(store, "r", "W").await.unwrap(), Created::New);
    store.forget(&"r".into());
    let again = create(store, "r", "V").await.unwrap();
    if store.keeps_finished_runs() {
        assert_eq!(
            again,
            Created::Existing {
                workflow: "W".into()
            }
        );
    } else {
        assert_eq!(again, Created::New, "the forgotten id is free");
    }
    let run_id = RunId::from("now");
    let input = String::from("in");
    let run = NewRun {
        run_id: &run_id,
        workflow: "W",
        graph_fingerprint: 1,
        input: &input,
        input_codec: Codec::of::<String>(),
        graph: None,
        first_step: None,
    };
    if let Some(now) = store.create_run_now(&run) {
        assert_eq!(now.unwrap(), Created::New);
        assert_eq!(
            store.create_run_now(&run).map(Result::unwrap),
            Some(Created::Existing {
                workflow: "W".into()
            })
        );
        assert_eq!(
            store.create_run(&run).await.unwrap(),
            Created::Existing {
                workflow: "W".into()
            }
        );
    }
}

/// A change of a run the store does not have is an error naming the run, not a silent write.
pub async fn a_change_of_an_unknown_run_is_an_error(store: &impl RunStore) {
    assert!(
        store.records_changes(),
        "a store that records nothing has nothing to refuse"
    );
    let error = start(store, "ghost", "a").await.unwrap_err();
    assert!(error.to_string().contains("no run `ghost`"), "{error}");
}

/// A step's standing, as a loaded run gives it, is what its changes left, whatever the store
/// keeps of them (a row per step, or the changes alone): its status and attempt from the last
/// change, its output if it completed, the newest retry's or failure's error until it
/// completes, and a start time unless it was skipped; steps in the order they first started.
pub async fn a_step_s_standing_is_what_its_changes_left(store: &impl RunStore) {
    use crate::runtime::error::StepError;
    use crate::runtime::report::StepStatus;
    create(store, "r", "W").await.unwrap();
    let run = RunId::from("r");
    let (boom, bust, flaky, once) = (
        StepError::new("boom"),
        StepError::new("bust"),
        StepError::new("flaky"),
        StepError::new("once"),
    );
    let output = String::from("out");
    let delay = std::time::Duration::from_millis(5);
    let changes = [
        Change::StepStarted {
            step: "a",
            attempt: 1,
        },
        Change::StepRetrying {
            step: "a",
            attempt: 1,
            error: &boom,
            delay,
        },
        Change::StepSkipped { step: "b" },
        Change::StepStarted {
            step: "a",
            attempt: 2,
        },
        Change::StepFailed {
            step: "a",
            attempts: 2,
            error: &bust,
        },
        Change::StepStarted {
            step: "c",
            attempt: 1,
        },
        Change::StepRetrying {
            step: "c",
            attempt: 1,
            error: &flaky,
            delay,
        },
        Change::StepStarted {
            step: "c",
            attempt: 2,
        },
        Change::StepStarted {
            step: "d",
            attempt: 1,
        },
        Change::StepRetrying {
            step: "d",
            attempt: 1,
            error: &once,
            delay,
        },
        Change::StepStarted {
            step: "d",
            attempt: 2,
        },
        Change::StepCompleted {
            step: "d",
            attempt: 2,
            output: &output,
            codec: Codec::of::<String>(),
        },
    ];
    for change in &changes {
        store.record(&run, change).await.unwrap();
    }
    let Some(loaded) = store.load_run(&run).await.unwrap() else {
        assert!(
            !store.keeps_finished_runs(),
            "a store that keeps runs loads them"
        );
        return;
    };
    let steps: Vec<_> = loaded
        .steps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.status,
                s.attempts,
                s.output.as_deref(),
                s.error.as_deref(),
                s.started_at.is_some(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("a", StepStatus::Failed, 2, None, Some("bust"), true),
            ("b", StepStatus::Skipped, 0, None, None, false),
            ("c", StepStatus::Running, 2, None, Some("flaky"), true),
            ("d", StepStatus::Completed, 2, Some("\"out\""), None, true),
        ]
    );
}

/// A run created with the step it begins with ([`NewRun::first_step`]) has that step started,
/// attempt 1, as if [`RunStore::record`] had recorded the start just after the creation: the
/// step's completion follows it, and a store that keeps runs loads the step as running, then
/// completed. Creations at once (one batch on PostgreSQL) each start their own step; a
/// second creation of an id starts nothing.
pub async fn a_run_created_with_its_first_step_has_it_started(store: &impl RunStore) {
    use crate::runtime::report::StepStatus;
    assert_eq!(
        create_beginning(store, "r", "W", Some("a")).await.unwrap(),
        Created::New
    );
    let steps: Vec<(String, String)> = (0..10)
        .map(|i| (format!("b{i}"), format!("s{i}")))
        .collect();
    let answers = futures_util::future::join_all(
        steps
            .iter()
            .map(|(id, first)| create_beginning(store, id, "W", Some(first))),
    )
    .await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Created::New))),
        "{answers:?}"
    );
    let again = create_beginning(store, "r", "W", Some("z")).await.unwrap();
    assert_eq!(
        again,
        Created::Existing {
            workflow: "W".into()
        }
    );
    let standing = |run: Option<crate::runtime::store::StoredRun>| {
        run.map(|run| {
            run.steps
                .iter()
                .map(|s| (s.name.clone(), s.status, s.attempts, s.started_at.is_some()))
                .collect::<Vec<_>>()
        })
    };
    let loaded = standing(store.load_run(&"r".into()).await.unwrap());
    assert!(
        loaded.is_some() || !store.keeps_finished_runs(),
        "a store that keeps runs loads them"
    );
    if let Some(loaded) = loaded {
        assert_eq!(loaded, [("a".to_owned(), StepStatus::Running, 1, true)]);
    }
    for (id, first) in &steps {
        if let Some(loaded) = standing(store.load_run(&id.as_str().into()).await.unwrap()) {
            assert_eq!(
                loaded,
                [(first.clone(), StepStatus::Running, 1, true)],
                "run `{id}`"
            );
        }
    }
    complete(store, "r", "a", &String::from("out"))
        .await
        .unwrap();
    if let Some(loaded) = store.load_run(&"r".into()).await.unwrap() {
        let a = loaded
            .steps
            .first()
            .map(|s| (s.status, s.attempts, s.output.clone()));
        assert_eq!(
            a,
            Some((StepStatus::Completed, 1, Some("\"out\"".to_owned())))
        );
    }
}

/// A signal is kept once: the first delivery wins, later ones are refused, and the payload is
/// found by run and name. A store that numbers its signals lists them after a position in
/// the order it kept them.
pub async fn a_signal_is_delivered_once_and_found_by_name<S>(store: &S)
where
    S: RunStore + SignalStore,
{
    create(store, "r", "W").await.unwrap();
    create(store, "s", "W").await.unwrap();
    let before = store.signal_position().await.unwrap();
    let r = RunId::from("r");
    assert_eq!(store.signal(&r, "go").await.unwrap(), None);
    assert!(store.deliver_signal(&r, "go", "1").await.unwrap());
    assert!(!store.deliver_signal(&r, "go", "2").await.unwrap());
    assert!(store.deliver_signal(&"s".into(), "go", "3").await.unwrap());
    assert!(store.deliver_signal(&r, "stop", "4").await.unwrap());
    assert_eq!(store.signal(&r, "go").await.unwrap().as_deref(), Some("1"));
    assert_eq!(
        store.signal(&r, "stop").await.unwrap().as_deref(),
        Some("4")
    );
    assert_eq!(
        store.signal(&"s".into(), "go").await.unwrap().as_deref(),
        Some("3")
    );
    match before {
        Some(before) => {
            let after = store.signals_after(before, 100).await.unwrap();
            let kept: Vec<_> = after
                .iter()
                .map(|d| (d.run_id.as_str(), d.name.as_str()))
                .collect();
            assert_eq!(kept, [("r", "go"), ("s", "go"), ("r", "stop")]);
            assert!(after.windows(2).all(|w| w[0].position < w[1].position));
            let last = after.last().map(|d| d.position);
            assert_eq!(store.signal_position().await.unwrap(), last);
            let rest = store.signals_after(after[0].position, 1).await.unwrap();
            assert_eq!(
                rest,
                after[1..2].to_vec(),
                "a page starts after its position"
            );
        }
        None => assert!(store.signals_after(0, 100).await.unwrap().is_empty()),
    }
}

/// Runs every check of runs and signals as a test of its own, each on a fresh store made by
/// `$make` (an expression whose value implements `Store`).
#[macro_export]
macro_rules! run_conformance {
    ($make:expr) => {
        $crate::__conformance_checks!(runs, $make, []:
            a_run_id_is_created_once,
            creations_at_once_are_each_answered,
            a_forgotten_run_stays_only_where_runs_are_kept,
            a_change_of_an_unknown_run_is_an_error,
            a_step_s_standing_is_what_its_changes_left,
            a_run_created_with_its_first_step_has_it_started,
            a_signal_is_delivered_once_and_found_by_name,
        );
    };
}
