//! Queues on PostgreSQL: an enqueue wakes the engines serving the queue through the store's
//! `LISTEN` connection, so that an idle replica starts the run at once rather than at its next
//! poll. (What every store does with queues is in `queue_conformance!`, run by
//! `tests/conformance.rs` and, where notices are dropped and engines poll, `tests/pgbouncer.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Definition, Engine, Enqueue, EventKind, EventLog, Serve, StepError,
};

/// `double`, one step over a number, as the workflow `name`.
fn doubling(name: &str) -> Definition<u32, u32> {
    let mut b = Builder::<u32>::new(name);
    let input = b.input();
    let out = b.step("double", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x * 2) }
    });
    b.build_with_output(out)
}

/// An engine serving a queue, whose poll comes once a minute, runs a run another process put
/// on that queue within a second: the enqueue's notice woke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_wakes_an_idle_engine_serving_the_queue() {
    let db = fresh_db!();
    let def = doubling("Woken");

    let worker = Engine::builder()
        .store(Arc::new(
            sagaflow_postgres::PgStore::connect(&db.url, db.options().owner("worker"))
                .await
                .unwrap(),
        ))
        .takeover_every(Duration::from_secs(60))
        .build();
    worker.register(&def).unwrap();
    worker.serve("wake").unwrap();
    // The loop's first poll is at once; the next would be a minute later.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let client_store = sagaflow_postgres::PgStore::connect(&db.url, db.options().owner("client"))
        .await
        .unwrap();
    let client = Engine::builder()
        .store(Arc::new(client_store.clone()))
        .build();
    let began = Instant::now();
    client
        .enqueue(&def, "woken-1", 21, &Enqueue::on("wake"))
        .await
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), async {
        client
            .wait_for(&def, "woken-1")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap()
    })
    .await
    .expect("the run ran long before the worker's next poll");
    assert_eq!(*report.output, 42);
    let took = began.elapsed();
    let events = client_store
        .events(Some(&"woken-1".into()), 0, 100)
        .await
        .unwrap();
    let at = |kind: EventKind| events.iter().find(|e| e.kind == kind).unwrap().at_ms;
    let started_after = at(EventKind::StepStarted) - at(EventKind::RunCreated);
    eprintln!(
        "queues/wake: the step started {started_after} ms after the enqueue; outcome read after {took:?}"
    );
    assert!(
        started_after < 2_000,
        "woken by the notice, not the poll: the step started {started_after} ms after the enqueue"
    );
}

/// An enqueued run is taken up by the engine that claims it with no statement of its own
/// beyond the claim: the claim takes its lease and reads it back whole, and the take-up that
/// follows is answered from that. Each run still runs once, with its input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_run_is_taken_up_from_its_claim() {
    taken_up_from_the_reservation("claimed", Serve::queue("claimed")).await;
}

/// The same for a queue with a bound over all engines, whose runs are reserved one at a time
/// under the queue's lock (`QueueStore::admit`): the reservation takes the run up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_run_is_taken_up_from_its_admission() {
    taken_up_from_the_reservation("bounded", Serve::queue("bounded").at_most_overall(3)).await;
}

/// Eight runs enqueued on `queue` (served as `serve` says) from one store, run by a worker on another that
/// serves it: each on its own input, each taken up from the statement that reserved it.
async fn taken_up_from_the_reservation(queue: &str, serve: Serve) {
    let db = fresh_db!();
    let def = doubling("Reserved");

    let worker_store = sagaflow_postgres::PgStore::connect(&db.url, db.options().owner("worker"))
        .await
        .unwrap();
    let worker = Engine::builder()
        .store(Arc::new(worker_store.clone()))
        .takeover_every(Duration::from_millis(20))
        .build();
    worker.register(&def).unwrap();
    worker.serve(serve).unwrap();
    let client = Engine::builder()
        .store(Arc::new(
            sagaflow_postgres::PgStore::connect(&db.url, db.options().owner("client"))
                .await
                .unwrap(),
        ))
        .build();
    for k in 0..8_u32 {
        client
            .enqueue(&def, format!("{queue}-{k}"), k, &Enqueue::on(queue))
            .await
            .unwrap();
    }
    for k in 0..8_u32 {
        let report = tokio::time::timeout(Duration::from_secs(10), async {
            client
                .wait_for(&def, format!("{queue}-{k}"))
                .await
                .unwrap()
                .wait()
                .await
                .unwrap()
        })
        .await
        .expect("the worker ran the run");
        assert_eq!(*report.output, 2 * k, "`{queue}-{k}` ran on its own input");
    }
    assert_eq!(
        worker_store.take_ups_from_claims(),
        8,
        "every run was taken up from the statement that reserved it"
    );
    assert_eq!(worker_store.leases_held(), 0, "no lease kept past its run");
}
