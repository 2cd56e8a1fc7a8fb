//! `saga!` end to end: what the generated code passes to each step and compensation, and how
//! the saga ends. The runtime's own behaviour (crashes, rounds, operators) is tested in
//! `saga/tests`.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::Mutex;

use sagaflow::SagaOutcome;
use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

/// What a test's steps and compensations did, in order.
struct Journal(Mutex<Vec<String>>);

impl Journal {
    const fn new() -> Self {
        Journal(Mutex::new(Vec::new()))
    }
    fn note(&self, what: impl Into<String>) {
        self.0.lock().unwrap().push(what.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Five steps, the fourth failing for good: the three before it are undone, newest first,
/// each compensation receiving its step's input and output.
mod deploy {
    use super::*;

    pub(crate) static JOURNAL: Journal = Journal::new();

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Release {
        pub(crate) version: String,
    }

    async fn build_image(_: &StepContext, r: &Release) -> Result<String, StepError> {
        JOURNAL.note(format!("build_image({})", r.version));
        Ok(format!("img:{}", r.version))
    }
    async fn delete_image(_: &StepContext, r: &Release, image: &str) -> Result<(), StepError> {
        JOURNAL.note(format!("delete_image({}, {image})", r.version));
        Ok(())
    }
    async fn push_image(_: &StepContext, image: &str) -> Result<u32, StepError> {
        JOURNAL.note(format!("push_image({image})"));
        Ok(7)
    }
    async fn untag_image(_: &StepContext, image: &str, tag: &u32) -> Result<(), StepError> {
        JOURNAL.note(format!("untag_image({image}, {tag})"));
        Ok(())
    }
    async fn migrate_db(_: &StepContext, tag: &u32) -> Result<Vec<String>, StepError> {
        JOURNAL.note(format!("migrate_db({tag})"));
        Ok(vec!["m1".to_owned(), "m2".to_owned()])
    }
    async fn rollback_db(_: &StepContext, tag: &u32, applied: &[String]) -> Result<(), StepError> {
        JOURNAL.note(format!("rollback_db({tag}, {})", applied.join("+")));
        Ok(())
    }
    async fn shift_traffic(_: &StepContext, applied: &[String]) -> Result<u8, StepError> {
        JOURNAL.note(format!("shift_traffic({})", applied.len()));
        Err(StepError::permanent("load balancer refused"))
    }
    async fn unshift_traffic(_: &StepContext, _: &[String], _: &u8) -> Result<(), StepError> {
        JOURNAL.note("unshift_traffic");
        Ok(())
    }
    async fn smoke_test(_: &StepContext, _: &u8) -> Result<bool, StepError> {
        JOURNAL.note("smoke_test");
        Ok(true)
    }

    saga! {
        /// Build, push, migrate, shift traffic, test; undo on failure.
        pub Deploy(Release) -> bool {
            build_image / delete_image -> push_image / untag_image -> migrate_db / rollback_db
                -> shift_traffic / unshift_traffic -> smoke_test;
            delete_image: retry(max_attempts = 3, initial = 1ms);
            defaults: timeout = 10s;
            deadline = 1m;
        }
    }
}

#[tokio::test]
async fn a_permanent_failure_undoes_the_completed_steps_newest_first() {
    use deploy::{Deploy, JOURNAL, Release};
    let engine = Engine::open_in_memory().unwrap();
    let release = Release {
        version: "v2".to_owned(),
    };
    let outcome = Deploy::start(&engine, "deploy-v2", release)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let SagaOutcome::Compensated { cause, undone, .. } = outcome else {
        panic!("expected a compensated saga, got {outcome:?}");
    };
    assert!(cause.contains("load balancer refused"), "{cause}");
    assert_eq!(undone, ["migrate_db", "push_image", "build_image"]);
    assert_eq!(
        JOURNAL.take(),
        [
            "build_image(v2)",
            "push_image(img:v2)",
            "migrate_db(7)",
            "shift_traffic(2)",
            "rollback_db(7, m1+m2)",
            "untag_image(img:v2, 7)",
            "delete_image(v2, img:v2)",
        ]
    );
    let definition = Deploy::definition();
    assert_eq!(
        definition.compensation_of("migrate_db"),
        Some("rollback_db")
    );
    assert_eq!(definition.compensation_of("smoke_test"), None);
    assert!(definition.pivots().is_empty());
    assert_eq!(Deploy::NAME, "Deploy");

    // Starting the same id again is the same saga: nothing runs twice.
    let again = Deploy::start(
        &engine,
        "deploy-v2",
        Release {
            version: "v2".to_owned(),
        },
    )
    .await
    .unwrap()
    .wait()
    .await
    .unwrap();
    assert!(matches!(again, SagaOutcome::Compensated { .. }));
    assert!(JOURNAL.take().is_empty());
    assert!(matches!(
        Deploy::status(&engine, "deploy-v2").await.unwrap(),
        sagaflow::SagaStatus::Compensated { .. }
    ));
}

/// Past the pivot a failing step is retried until it succeeds, and nothing is undone.
mod pivot {
    use super::*;

    pub(crate) static JOURNAL: Journal = Journal::new();

    async fn reserve(_: &StepContext, seats: &u32) -> Result<u32, StepError> {
        JOURNAL.note(format!("reserve({seats})"));
        Ok(*seats)
    }
    async fn release(_: &StepContext, _: &u32, _: &u32) -> Result<(), StepError> {
        JOURNAL.note("release");
        Ok(())
    }
    async fn commit(_: &StepContext, seats: &u32) -> Result<String, StepError> {
        JOURNAL.note("commit");
        Ok(format!("booking-{seats}"))
    }
    async fn notify(ctx: &StepContext, booking: &String) -> Result<String, StepError> {
        JOURNAL.note(format!("notify#{}", ctx.attempt()));
        if ctx.attempt() < 3 {
            // Permanent, yet retried: past the pivot the only way is forward.
            return Err(StepError::permanent("mail server down"));
        }
        Ok(format!("sent {booking}"))
    }

    saga! {
        pub Booking(u32) -> String {
            reserve / release -> commit! -> notify;
            notify: retry(initial = 1ms, max = 2ms);
        }
    }
}

#[tokio::test]
async fn past_the_pivot_a_failing_step_is_retried_and_nothing_is_undone() {
    use pivot::{Booking, JOURNAL};
    let engine = Engine::open_in_memory().unwrap();
    let outcome = Booking::start(&engine, "b-1", 2)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let SagaOutcome::Completed(report) = outcome else {
        panic!("expected a completed saga, got {outcome:?}");
    };
    assert_eq!(*report.output, "sent booking-2");
    assert_eq!(report.step("notify").unwrap().attempts, 3);
    assert_eq!(
        JOURNAL.take(),
        ["reserve(2)", "commit", "notify#1", "notify#2", "notify#3"]
    );
    assert_eq!(Booking::definition().pivots(), ["commit"]);
}

/// `undo_on_unknown`: the compensation receives `Option<&Out>`: `Some` for a step that
/// completed, `None` for one whose outcome is unknown.
mod unknown {
    use super::*;

    pub(crate) static JOURNAL: Journal = Journal::new();

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Plan {
        pub(crate) fail_migrate: bool,
    }

    async fn migrate(_: &StepContext, plan: &Plan) -> Result<u8, StepError> {
        JOURNAL.note("migrate");
        if plan.fail_migrate {
            return Err(StepError::permanent("half applied"));
        }
        Ok(42)
    }
    async fn rollback(_: &StepContext, _: &Plan, version: Option<&u8>) -> Result<(), StepError> {
        JOURNAL.note(format!("rollback({version:?})"));
        Ok(())
    }
    async fn verify(_: &StepContext, _: &u8) -> Result<(), StepError> {
        JOURNAL.note("verify");
        Err(StepError::permanent("checksum mismatch"))
    }

    saga! {
        pub Migration(Plan) {
            migrate / rollback -> verify;
            migrate: undo_on_unknown;
        }
    }
}

#[tokio::test]
async fn undo_on_unknown_receives_the_output_when_there_is_one_and_none_otherwise() {
    use unknown::{JOURNAL, Migration, Plan};
    let engine = Engine::open_in_memory().unwrap();

    let plan = Plan {
        fail_migrate: false,
    };
    let outcome = Migration::start(&engine, "m-1", plan)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let SagaOutcome::Compensated { undone, .. } = outcome else {
        panic!("expected a compensated saga, got {outcome:?}");
    };
    assert_eq!(undone, ["migrate"]);
    assert_eq!(JOURNAL.take(), ["migrate", "verify", "rollback(Some(42))"]);

    let plan = Plan { fail_migrate: true };
    let outcome = Migration::start(&engine, "m-2", plan)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(
        matches!(outcome, SagaOutcome::Compensated { .. }),
        "{outcome:?}"
    );
    assert_eq!(JOURNAL.take(), ["migrate", "rollback(None)"]);
}

/// A compensation that runs out of retries leaves the saga stuck, its error kept; the
/// generated operator calls take it from there.
mod stuck {
    use super::*;

    async fn charge(_: &StepContext, cents: &u64) -> Result<u64, StepError> {
        Ok(*cents)
    }
    async fn refund(_: &StepContext, _: &u64, _: &u64) -> Result<(), StepError> {
        Err(StepError::new("payment provider down")) // retried, up to its policy
    }
    async fn ship(_: &StepContext, _: &u64) -> Result<(), StepError> {
        Err(StepError::permanent("no courier"))
    }

    saga! {
        pub Order(u64) {
            charge / refund -> ship;
            refund: retry(max_attempts = 2, initial = 1ms);
        }
    }
}

#[tokio::test]
async fn a_stuck_saga_is_reported_and_can_be_skipped_through_the_generated_type() {
    use stuck::Order;
    let engine = Engine::open_in_memory().unwrap();
    let outcome = Order::start(&engine, "o-1", 500)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let SagaOutcome::Stuck {
        step,
        attempts,
        error,
        ..
    } = outcome
    else {
        panic!("expected a stuck saga, got {outcome:?}");
    };
    assert_eq!(step, "charge");
    assert_eq!(attempts, 2);
    assert!(error.contains("payment provider down"), "{error}");
    assert!(matches!(
        Order::status(&engine, "o-1").await.unwrap(),
        sagaflow::SagaStatus::Stuck { .. }
    ));

    let outcome = Order::skip(&engine, "o-1")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let SagaOutcome::Compensated { skipped, .. } = outcome else {
        panic!("expected a compensated saga, got {outcome:?}");
    };
    assert_eq!(skipped, ["charge"]);
}

/// A saga put on a queue: one engine enqueues it, another (a replica on the same file, under
/// an owner of its own) serves the queue, runs the saga and compensates it; the first waits
/// for the outcome. Through the generated `enqueue` and `wait_for`.
mod queued {
    use super::*;

    pub(crate) static JOURNAL: Journal = Journal::new();

    async fn draft(_: &StepContext, n: &u32) -> Result<u32, StepError> {
        JOURNAL.note(format!("draft({n})"));
        Ok(n * 10)
    }
    async fn discard(_: &StepContext, n: &u32, draft: &u32) -> Result<(), StepError> {
        JOURNAL.note(format!("discard({n}, {draft})"));
        Ok(())
    }
    async fn publish(_: &StepContext, draft: &u32) -> Result<u32, StepError> {
        JOURNAL.note(format!("publish({draft})"));
        if draft.is_multiple_of(20) {
            Ok(draft + 1)
        } else {
            Err(StepError::permanent("the press refused an odd draft"))
        }
    }

    saga! {
        /// Draft, then publish; an odd draft is refused and discarded.
        pub Publish(u32) -> u32 {
            draft / discard -> publish;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_on_a_queue_runs_and_compensates_on_the_engine_serving_it() {
    use queued::{JOURNAL, Publish};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queued.db");
    let client =
        sagaflow::SqliteStore::open(&path, sagaflow::SqliteOptions::default().owner("client"))
            .unwrap()
            .engine();
    Publish::enqueue(
        &client,
        "publish-2",
        2,
        &sagaflow::runtime::Enqueue::on("press"),
    )
    .await
    .unwrap();
    Publish::enqueue(
        &client,
        "publish-3",
        3,
        &sagaflow::runtime::Enqueue::on("press"),
    )
    .await
    .unwrap();
    // Nothing runs where it was enqueued.
    assert!(JOURNAL.take().is_empty());
    assert!(matches!(
        Publish::status(&client, "publish-3").await.unwrap(),
        sagaflow::SagaStatus::Running
    ));

    let worker = Engine::builder()
        .store(std::sync::Arc::new(
            sagaflow::SqliteStore::open(&path, sagaflow::SqliteOptions::default().owner("worker"))
                .unwrap(),
        ))
        .takeover_every(std::time::Duration::from_millis(20))
        .build();
    Publish::register(&worker).unwrap();
    worker.serve("press").unwrap();

    let published = Publish::wait_for(&client, "publish-2")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(
        matches!(published, SagaOutcome::Completed(ref report) if *report.output == 21),
        "{published:?}"
    );
    let refused = Publish::wait_for(&client, "publish-3")
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let SagaOutcome::Compensated { cause, undone, .. } = refused else {
        panic!("expected a compensated saga, got {refused:?}");
    };
    assert!(cause.contains("odd draft"), "{cause}");
    assert_eq!(undone, ["draft"]);
    let mut journal = JOURNAL.take();
    journal.sort();
    assert_eq!(
        journal,
        [
            "discard(3, 30)",
            "draft(2)",
            "draft(3)",
            "publish(20)",
            "publish(30)"
        ]
    );
}
