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
use sagaflow_core::runtime::{Builder, Engine, Enqueue, EventKind, EventLog, StepError};

/// An engine serving a queue, whose poll comes once a minute, runs a run another process put
/// on that queue within a second: the enqueue's notice woke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_wakes_an_idle_engine_serving_the_queue() {
    let db = fresh_db!();
    let mut b = Builder::<u32>::new("Woken");
    let input = b.input();
    let out = b.step("double", StepOptions::new(), (input,), |_, (x,)| {
        let x = *x;
        async move { Ok::<_, StepError>(x * 2) }
    });
    let def = b.build_with_output(out);

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
