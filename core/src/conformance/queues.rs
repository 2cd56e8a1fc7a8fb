//! Queues on a store several engines share: runs put on a queue are listed to the engines that
//! serve it, highest priority first, then oldest, never as free runs to the others; an engine
//! serving the queue runs each once, and any engine can wait for their outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::durable::{RECOVERIES, TestDatabase};
use crate::StepOptions;
use crate::runtime::definition::{Builder, Definition, StepValue};
use crate::runtime::engine::{Engine, Enqueue, Serve};
use crate::runtime::error::StepError;
use crate::runtime::id::RunId;
use crate::runtime::store::{
    Created, KnownGraph, LeaseStore, NewRun, QueueStore, Queueing, RunStore,
};

/// A lease no check waits for.
const LONG: Duration = Duration::from_secs(30);

/// `one -> two` over a number, each execution counted by run and step.
fn counted(counts: &Arc<Mutex<HashMap<(String, String), u32>>>) -> Definition<u64, u64> {
    let mut b = Builder::<u64>::new("Queued");
    let input = b.input();
    let mut last = input;
    for name in ["one", "two"] {
        let counts = Arc::clone(counts);
        last = b.step(name, StepOptions::new(), (last,), move |ctx, (n,)| {
            *counts
                .lock()
                .unwrap()
                .entry((ctx.run_id().as_str().to_owned(), name.to_owned()))
                .or_default() += 1;
            let n = *n;
            async move { Ok::<_, StepError>(n + 1) }
        });
    }
    b.build_with_output(last)
}

fn fingerprint(def: &Definition<u64, u64>) -> u64 {
    crate::runtime::definition::plan(def.erased()).fingerprint
}

fn graph_of(def: &Definition<u64, u64>) -> KnownGraph {
    KnownGraph {
        workflow: def.name().to_owned(),
        fingerprint: Some(fingerprint(def)),
    }
}

async fn enqueue(
    store: &impl QueueStore,
    def: &Definition<u64, u64>,
    run: &str,
    queue: &str,
    priority: i32,
) -> Created {
    let run_id = RunId::from(run);
    let input = 0_u64;
    store
        .enqueue(
            &NewRun {
                run_id: &run_id,
                workflow: def.name(),
                graph_fingerprint: fingerprint(def),
                input: &input,
                input_codec: crate::runtime::definition::Codec::of::<u64>(),
                graph: None,
                first_step: None,
            },
            Queueing {
                queue,
                priority,
                key: None,
            },
        )
        .await
        .unwrap()
}

fn ids(runs: &[crate::runtime::store::FreeRun]) -> Vec<&str> {
    runs.iter().map(|r| r.run_id.as_str()).collect()
}

/// Two engines on stores of their own (`worker-a`, `worker-b`), each with `def` registered and
/// serving `serve`, polling every 10 ms.
async fn two_workers<I: StepValue, O: StepValue>(
    db: &impl TestDatabase,
    def: &Definition<I, O>,
    serve: Serve,
) -> Vec<Engine> {
    let mut workers = Vec::new();
    for name in ["worker-a", "worker-b"] {
        let worker = Engine::builder()
            .store(Arc::new(db.open(name, LONG, RECOVERIES).await))
            .takeover_every(Duration::from_millis(10))
            .build();
        worker.register(def).unwrap();
        worker.serve(serve.clone()).unwrap();
        workers.push(worker);
    }
    workers
}

/// How long a check waits for a queue's runs to end: far beyond what they take, so that a
/// store that never hands them out fails the check instead of hanging it.
const WAIT_AT_MOST: Duration = Duration::from_secs(60);

/// Waits, from `client`, for the runs `<prefix>-0` to `<prefix>-<n - 1>` to end, each
/// successfully; their outputs, in that order.
async fn wait_all<I: StepValue, O: StepValue>(
    client: &Engine,
    def: &Definition<I, O>,
    prefix: &str,
    n: usize,
) -> Vec<Arc<O>> {
    let mut outputs = Vec::with_capacity(n);
    for k in 0..n {
        let id = format!("{prefix}-{k}");
        let waited = tokio::time::timeout(WAIT_AT_MOST, async {
            client
                .wait_for(def, id.as_str())
                .await
                .unwrap()
                .wait()
                .await
                .unwrap()
        })
        .await;
        let Ok(report) = waited else {
            panic!("`{id}` did not end within {WAIT_AT_MOST:?}: no engine took it up");
        };
        outputs.push(report.output);
    }
    outputs
}

/// A queue's runs are listed to those who serve it, highest priority first, then oldest; not
/// another queue's, not as free runs; not once an engine holds one under a live lease; and
/// listed again once that lease is given up. The id is the idempotency key.
pub async fn a_queue_lists_its_waiting_runs_by_priority_then_age(db: &impl TestDatabase) {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let def = counted(&counts);
    let known = [graph_of(&def)];
    let store = db.open("A", LONG, RECOVERIES).await;
    assert_eq!(enqueue(&store, &def, "low", "q", 0).await, Created::New);
    assert_eq!(enqueue(&store, &def, "high", "q", 5).await, Created::New);
    assert_eq!(enqueue(&store, &def, "later", "q", 0).await, Created::New);
    assert_eq!(
        enqueue(&store, &def, "elsewhere", "other", 9).await,
        Created::New
    );
    assert_eq!(
        enqueue(&store, &def, "low", "q", 7).await,
        Created::Existing {
            workflow: "Queued".to_owned()
        },
        "the id is the idempotency key"
    );
    let queue = ["q".to_owned()];
    let listed = store.queued_runs(&queue, &known, 10).await.unwrap();
    assert_eq!(ids(&listed), ["high", "low", "later"]);
    assert_eq!(
        ids(&store.queued_runs(&queue, &known, 2).await.unwrap()),
        ["high", "low"],
        "at most the limit"
    );
    assert!(
        store.free_runs(&known, 10).await.unwrap().is_empty(),
        "a queue's runs are never free runs: only those who serve it take them"
    );
    let unknown = [KnownGraph {
        workflow: "Other".to_owned(),
        fingerprint: None,
    }];
    assert!(
        store
            .queued_runs(&queue, &unknown, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let stored = store.load_run(&"high".into()).await.unwrap().unwrap();
    assert_eq!(stored.workflow, "Queued");

    // Taken by one owner: no longer listed, to anyone.
    store.acquire(&"high".into()).await.unwrap();
    let other = db.open("B", LONG, RECOVERIES).await;
    assert_eq!(
        ids(&other.queued_runs(&queue, &known, 10).await.unwrap()),
        ["low", "later"]
    );
    // Given up (its engine drained): waiting again.
    store.give_up(&["high".into()]).await.unwrap();
    assert_eq!(
        ids(&other.queued_runs(&queue, &known, 10).await.unwrap()),
        ["high", "low", "later"]
    );
}

/// Claims reserve a queue's runs in its order, each for one owner only: two stores claiming
/// at once share the runs out between them, a claimed run is listed to nobody, and its
/// A bounded queue's listing reserves its first run as it lists (`admit_first`): the run of
/// highest priority, under the queue's bound over all, and the rest listed in order after it
/// (not reserved); once the bound is full, the first run is refused and nothing is listed
/// twice.
pub async fn a_bounded_queue_s_first_run_is_admitted_as_it_is_listed(db: &impl TestDatabase) {
    use crate::runtime::store::{Admission, Admitted};

    let counts = Arc::new(Mutex::new(HashMap::new()));
    let def = counted(&counts);
    let known = [graph_of(&def)];
    let a = db.open("A", LONG, RECOVERIES).await;
    let b = db.open("B", LONG, RECOVERIES).await;
    for (run, priority) in [("low", 0), ("high", 5), ("later", 0)] {
        assert_eq!(enqueue(&a, &def, run, "q", priority).await, Created::New);
    }
    let two = Admission {
        overall: Some(2),
        ..Admission::default()
    };
    let found = a.admit_first("q", &known, 10, &two).await.unwrap();
    let (first, admitted) = found.first.expect("a run waits");
    assert_eq!(
        (first.run_id.as_str(), admitted),
        ("high", Admitted::Reserved)
    );
    assert_eq!(ids(&found.rest), ["low", "later"]);
    assert_eq!(
        ids(&b.queued_runs(&["q".to_owned()], &known, 10).await.unwrap()),
        ["low", "later"],
        "the run reserved is A's"
    );
    let found = b.admit_first("q", &known, 10, &two).await.unwrap();
    let (first, admitted) = found.first.expect("runs wait");
    assert_eq!(
        (first.run_id.as_str(), admitted),
        ("low", Admitted::Reserved)
    );
    assert_eq!(ids(&found.rest), ["later"]);
    let found = a.admit_first("q", &known, 10, &two).await.unwrap();
    let (first, admitted) = found.first.expect("a run waits");
    assert_eq!(
        (first.run_id.as_str(), admitted),
        ("later", Admitted::QueueFull),
        "two runs of the queue are held"
    );
    assert!(found.rest.is_empty(), "{:?}", ids(&found.rest));
    let unknown = [KnownGraph {
        workflow: "Other".to_owned(),
        fingerprint: None,
    }];
    let found = a.admit_first("q", &unknown, 10, &two).await.unwrap();
    assert_eq!((found.first, found.rest), (None, Vec::new()));
    // The reservation is a lease: the take-up that follows finds it this owner's.
    a.acquire(&"high".into()).await.unwrap();
}

/// take-up by the owner that claimed it is granted (by another owner's, refused).
pub async fn claims_share_a_queue_s_runs_out(db: &impl TestDatabase) {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let def = counted(&counts);
    let known = [graph_of(&def)];
    let a = db.open("A", LONG, RECOVERIES).await;
    let b = db.open("B", LONG, RECOVERIES).await;
    for k in 0..12 {
        enqueue(
            &a,
            &def,
            &format!("c{k:02}"),
            "claimed",
            i32::from(k % 3 == 0),
        )
        .await;
    }
    let first = a.claim("claimed", &known, 3).await.unwrap();
    assert_eq!(
        ids(&first),
        ["c00", "c03", "c06"],
        "highest priority first, then oldest"
    );
    let (x, y) = tokio::join!(a.claim("claimed", &known, 5), b.claim("claimed", &known, 5));
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut all: Vec<&str> = ids(&first);
    all.extend(ids(&x));
    all.extend(ids(&y));
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        3 + x.len() + y.len(),
        "a run claimed twice: {x:?} {y:?}"
    );
    assert_eq!(
        x.len() + y.len(),
        9,
        "every run left was claimed: {x:?} {y:?}"
    );
    assert!(
        a.queued_runs(&["claimed".to_owned()], &known, 20)
            .await
            .unwrap()
            .is_empty(),
        "a claimed run is listed to nobody"
    );
    assert!(b.claim("claimed", &known, 5).await.unwrap().is_empty());
    a.acquire(&"c00".into()).await.unwrap();
    assert!(
        b.acquire(&"c03".into()).await.is_err(),
        "another owner's claim is a live lease"
    );
}

/// Runs enqueued from an engine that runs nothing wait until an engine serves their queue: one
/// that only registered the workflow leaves them alone; the serving one runs each once; the
/// first engine waits for their outcome.
pub async fn an_engine_serving_a_queue_runs_its_runs_once(db: &impl TestDatabase) {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let def = counted(&counts);
    let every = Duration::from_millis(20);
    let client = Engine::builder()
        .store(Arc::new(db.open("client", LONG, RECOVERIES).await))
        .build();
    for k in 0..4_u64 {
        let id = client
            .enqueue(
                &def,
                format!("job-{k}").as_str(),
                k * 10,
                &Enqueue::on("jobs").priority(i32::try_from(k).unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(id.as_str(), format!("job-{k}"));
    }
    // Registered, but serving no queue: it takes nothing.
    let bystander = Engine::builder()
        .store(Arc::new(db.open("bystander", LONG, RECOVERIES).await))
        .takeover_every(every)
        .build();
    bystander.register(&def).unwrap();
    tokio::time::sleep(every * 10).await;
    assert!(counts.lock().unwrap().is_empty(), "nobody served the queue");

    let worker = Engine::builder()
        .store(Arc::new(db.open("worker", LONG, RECOVERIES).await))
        .takeover_every(every)
        .build();
    worker.register(&def).unwrap();
    worker.serve("jobs").unwrap();
    let began = Instant::now();
    let outputs = wait_all(&client, &def, "job", 4).await;
    for (k, output) in (0..4_u64).zip(outputs) {
        assert_eq!(*output, k * 10 + 2, "job-{k}'s output, read back");
    }
    assert!(began.elapsed() < Duration::from_secs(10));
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), 8, "every step of every job ran: {counts:?}");
    assert!(counts.values().all(|n| *n == 1), "each once: {counts:?}");
}

/// One slow step (60 ms) over a number, and the most executions of it at once, in this
/// process.
fn slow(name: &str) -> (Definition<u64, u64>, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut b = Builder::<u64>::new(name);
    let input = b.input();
    let (n, m) = (Arc::clone(&now), Arc::clone(&most));
    let out = b.step("slow", StepOptions::new(), (input,), move |_, (x,)| {
        let (now, most, x) = (Arc::clone(&n), Arc::clone(&m), *x);
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(60)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, StepError>(x + 1)
        }
    });
    (b.build_with_output(out), most)
}

/// An engine that serves a queue with a bound runs at most that many of its runs at once,
/// and every run in the end; the bound is the engine's, checked where the steps run.
pub async fn an_engine_runs_at_most_its_bound_of_a_queue_s_runs_at_once(db: &impl TestDatabase) {
    let (def, most) = slow("Bounded");
    let client = Engine::builder()
        .store(Arc::new(db.open("client", LONG, RECOVERIES).await))
        .build();
    for k in 0..6_u64 {
        client
            .enqueue(&def, format!("slow-{k}").as_str(), k, &Enqueue::on("slow"))
            .await
            .unwrap();
    }
    let worker = Engine::builder()
        .store(Arc::new(db.open("worker", LONG, RECOVERIES).await))
        .takeover_every(Duration::from_millis(10))
        .build();
    worker.register(&def).unwrap();
    worker.serve(Serve::queue("slow").at_most(2)).unwrap();
    let outputs = wait_all(&client, &def, "slow", 6).await;
    for (k, output) in (0_u64..).zip(&outputs) {
        assert_eq!(**output, k + 1);
    }
    assert_eq!(
        most.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "two at once, never more (and the bound was reached)"
    );
}

/// Engines that serve a queue with a bound over all of them run at most that many of its
/// runs at once together, though each alone would take more; every run in the end. The
/// store counts and reserves (`QueueStore::admit`); the steps count where they run.
pub async fn engines_together_run_at_most_a_queue_s_overall_bound(db: &impl TestDatabase) {
    let (def, most) = slow("Shared");
    let client = Engine::builder()
        .store(Arc::new(db.open("client", LONG, RECOVERIES).await))
        .build();
    for k in 0..9_u64 {
        client
            .enqueue(
                &def,
                format!("shared-{k}").as_str(),
                k,
                &Enqueue::on("shared"),
            )
            .await
            .unwrap();
    }
    let _workers = two_workers(
        db,
        &def,
        Serve::queue("shared").at_most(2).at_most_overall(3),
    )
    .await;
    let outputs = wait_all(&client, &def, "shared", 9).await;
    for (k, output) in (0_u64..).zip(&outputs) {
        assert_eq!(**output, k + 1);
    }
    assert_eq!(
        most.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "three at once over both engines (each alone would run two), never more"
    );
}

/// A slow step over a key (the run's input), recording each execution's start and end
/// (instants in this process) by key.
type Spans = Arc<Mutex<Vec<(String, Instant, Instant)>>>;

fn keyed(name: &str, spans: &Spans) -> Definition<String, String> {
    let mut b = Builder::<String>::new(name);
    let input = b.input();
    let spans = Arc::clone(spans);
    let out = b.step("deploy", StepOptions::new(), (input,), move |_, (key,)| {
        let (spans, key) = (Arc::clone(&spans), key.as_str().to_owned());
        async move {
            let began = Instant::now();
            tokio::time::sleep(Duration::from_millis(40)).await;
            spans
                .lock()
                .unwrap()
                .push((key.clone(), began, Instant::now()));
            Ok::<_, StepError>(key)
        }
    });
    b.build_with_output(out)
}

/// Two engines serving a queue with at most one run per concurrency key run two runs of one
/// key never at once, while runs of different keys do run side by side (the bound is per
/// key, not the queue's); every run in the end. The store counts (`QueueStore::admit`).
pub async fn a_concurrency_key_runs_one_at_a_time_over_engines(db: &impl TestDatabase) {
    let spans: Spans = Arc::default();
    let def = keyed("Deploy", &spans);
    let client = Engine::builder()
        .store(Arc::new(db.open("client", LONG, RECOVERIES).await))
        .build();
    for k in 0..8 {
        let service = if k % 2 == 0 { "api" } else { "web" };
        client
            .enqueue(
                &def,
                format!("deploy-{k}").as_str(),
                service.to_owned(),
                &Enqueue::on("deploys").key(service),
            )
            .await
            .unwrap();
    }
    let _workers = two_workers(db, &def, Serve::queue("deploys").at_most_per_key(1)).await;
    wait_all(&client, &def, "deploy", 8).await;
    let spans = spans.lock().unwrap();
    assert_eq!(spans.len(), 8, "each run's step ran once: {spans:?}");
    let overlap =
        |a: &(String, Instant, Instant), b: &(String, Instant, Instant)| a.1 < b.2 && b.1 < a.2;
    let mut across = false;
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if overlap(a, b) {
                assert_ne!(a.0, b.0, "two runs of key `{}` at once", a.0);
                across = true;
            }
        }
    }
    assert!(across, "runs of different keys never ran side by side");
}

/// Two engines serving a queue with at most 3 starts a second start no more than 3 of its
/// runs in any second, by the store's clock (the rate bound counts the runs' start times,
/// `QueueStore::admit`), and every run in the end.
pub async fn a_queue_s_rate_holds_over_engines(db: &impl TestDatabase) {
    let spans: Spans = Arc::default();
    let def = keyed("Paced", &spans);
    let client = Engine::builder()
        .store(Arc::new(db.open("client", LONG, RECOVERIES).await))
        .build();
    for k in 0..7 {
        client
            .enqueue(
                &def,
                format!("paced-{k}").as_str(),
                format!("k{k}"),
                &Enqueue::on("paced"),
            )
            .await
            .unwrap();
    }
    let began = Instant::now();
    let _workers = two_workers(
        db,
        &def,
        Serve::queue("paced").rate(3, Duration::from_secs(1)),
    )
    .await;
    wait_all(&client, &def, "paced", 7).await;
    // Seven runs at three a second: the seventh cannot start before two seconds are out.
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "seven runs started within {:?}",
        began.elapsed()
    );
    let mut starts: Vec<Instant> = spans.lock().unwrap().iter().map(|s| s.1).collect();
    starts.sort();
    assert_eq!(starts.len(), 7);
    // The steps start a little after the store's start times, each by its own delay, longer
    // on a loaded machine (101 ms once, in a run of the suite on 2 cores): a window of a
    // second less a margin holds at most three. Without the rate, four start within
    // milliseconds.
    for window in starts.windows(4) {
        assert!(
            window[3] - window[0] >= Duration::from_millis(750),
            "four starts within {:?}",
            window[3] - window[0]
        );
    }
}

/// A backlog on a queue that runs one at a time over two engines starts in priority order:
/// every run of the higher priority before any of the lower, though the lower were enqueued
/// first (each engine reserves in the queue's order, and stops at a full queue).
pub async fn a_backlog_starts_in_priority_order_over_engines(db: &impl TestDatabase) {
    let spans: Spans = Arc::default();
    let def = keyed("Backlog", &spans);
    let client = Engine::builder()
        .store(Arc::new(db.open("client", LONG, RECOVERIES).await))
        .build();
    for (k, priority) in [0, 0, 0, 0, 5, 5, 5].into_iter().enumerate() {
        client
            .enqueue(
                &def,
                format!("backlog-{k}").as_str(),
                format!("p{priority}-{k}"),
                &Enqueue::on("backlog").priority(priority),
            )
            .await
            .unwrap();
    }
    let _workers = two_workers(db, &def, Serve::queue("backlog").at_most_overall(1)).await;
    wait_all(&client, &def, "backlog", 7).await;
    let mut spans = spans.lock().unwrap().clone();
    spans.sort_by_key(|span| span.1);
    let order: Vec<&str> = spans.iter().map(|span| span.0.as_str()).collect();
    assert_eq!(order.len(), 7, "{order:?}");
    assert!(
        order[..3].iter().all(|label| label.starts_with("p5")),
        "the higher priority first: {order:?}"
    );
    for pair in spans.windows(2) {
        assert!(pair[0].2 <= pair[1].1, "two at once: {spans:?}");
    }
}

/// Runs every queue check as a test of its own (multi-threaded), each on a fresh database made
/// by `$make`.
#[macro_export]
macro_rules! queue_conformance {
    ($make:expr) => {
        $crate::__conformance_checks!(queues, $make,
            [(flavor = "multi_thread", worker_threads = 2)]:
            a_queue_lists_its_waiting_runs_by_priority_then_age,
            a_bounded_queue_s_first_run_is_admitted_as_it_is_listed,
            claims_share_a_queue_s_runs_out,
            an_engine_serving_a_queue_runs_its_runs_once,
            an_engine_runs_at_most_its_bound_of_a_queue_s_runs_at_once,
            engines_together_run_at_most_a_queue_s_overall_bound,
            a_concurrency_key_runs_one_at_a_time_over_engines,
            a_queue_s_rate_holds_over_engines,
            a_backlog_starts_in_priority_order_over_engines,
        );
    };
}
