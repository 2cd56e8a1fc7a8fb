//! The writers' trace of their batches (`BATCH_TRACE`): an event for each batch committed,
//! naming its writer and saying what it held, seen through a layer that takes those events
//! alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};

use sagaflow_core::conformance::runs::create;
use sagaflow_core::runtime::Engine;
use sagaflow_postgres::{BATCH_TRACE, BatchEvent, PgStore};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

#[derive(Clone, Default)]
struct Batches(Arc<Mutex<Vec<BatchEvent>>>);

impl<S: Subscriber> Layer<S> for Batches {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let batch = BatchEvent::of(event).expect("only the batches' events come");
        self.0.lock().unwrap().push(batch);
    }
}

impl Batches {
    /// The events sent since the last call, once they account for the `writes` the store
    /// has committed: a writer sends a batch's event after answering its writes, so the
    /// last events may still be on their way when the callers have their answers. Waits
    /// at most ten seconds; the assertions then say what is missing.
    async fn take(&self, writes: u64) -> Vec<BatchEvent> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let traced: u64 = self.0.lock().unwrap().iter().map(|b| b.writes).sum();
            if traced >= writes || std::time::Instant::now() > deadline {
                return std::mem::take(&mut *self.0.lock().unwrap());
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_a_writer_commits_is_traced_with_its_writer_and_its_writes() {
    // The writers run on the runtime's threads: the layer is the process's default (this
    // file's only test), taking the batches' events alone.
    let batches = Batches::default();
    let only = tracing_subscriber::filter::filter_fn(|meta| meta.target() == BATCH_TRACE);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(batches.clone().with_filter(only)),
    )
    .unwrap();
    let db = fresh_db!();
    let store = PgStore::connect(&db.url, db.options().owner("traced"))
        .await
        .unwrap();
    let (writes, commits) = (store.writes(), store.commits());

    // A run alone: a batch of one write each, its creation the first.
    let engine = Engine::builder().store(Arc::new(store.clone())).build();
    let report = engine
        .start(&support::chain("Traced", 5), "alone", 0)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(*report.output, 5);
    let alone = batches.take(store.writes() - writes).await;
    assert_eq!(alone.len() as u64, store.commits() - commits, "{alone:?}");
    assert_eq!(
        alone.iter().map(|b| b.writes).sum::<u64>(),
        store.writes() - writes
    );
    assert!(
        alone
            .iter()
            .all(|b| b.writes == 1 && b.outcome == "committed"),
        "{alone:?}"
    );
    assert_eq!(alone.first().map(|b| b.creations), Some(1), "{alone:?}");
    assert_eq!(alone.iter().map(|b| b.creations).sum::<u64>(), 1);
    assert!(alone.iter().all(|b| b.server_us > 0), "{alone:?}");

    // 100 creations at once: shared transactions, on the store's writers (`traced` and
    // `traced/w1`), every creation in one of them.
    let before = store.writes();
    let ids: Vec<String> = (0..100).map(|i| format!("b{i:03}")).collect();
    let created =
        futures_util::future::join_all(ids.iter().map(|id| create(&store, id, "W"))).await;
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let burst = batches.take(store.writes() - before).await;
    assert_eq!(
        burst.iter().map(|b| b.creations).sum::<u64>(),
        100,
        "{burst:?}"
    );
    assert_eq!(
        burst.iter().map(|b| b.writes).sum::<u64>(),
        100,
        "{burst:?}"
    );
    assert!(burst.iter().any(|b| b.writes > 1), "{burst:?}");
    assert!(
        burst
            .iter()
            .all(|b| b.writer == "traced" || b.writer == "traced/w1"),
        "{burst:?}"
    );
    assert!(burst.iter().all(|b| b.outcome == "committed"), "{burst:?}");
}
