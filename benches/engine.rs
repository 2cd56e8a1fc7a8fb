//! Engine overhead per no-op step, sagaflow against its peers, side by side in one criterion
//! run: a 5-step chain, a 100-step chain, a 1→100 fan-out and 10,000 independent steps.
//!
//! Contenders, each on the same 2-worker multi-thread tokio runtime:
//!
//! - `sagaflow`: definitions built once with [`Builder`] outside the timed loop; each
//!   iteration starts a run with a fresh id and waits for its report. The engine keeps every
//!   finished run (the id is an idempotency key), so a fresh in-memory engine is made,
//!   untimed, for every batch of runs, which keeps memory bounded and the run table small.
//! - `sagaflow_macro` (`chain_5` only): the same chain written with `workflow!`, as a user
//!   writes it (each step an `async fn` borrowing its input, through the macro's expansion
//!   and its `OnceLock`), on the same engine and loop.
//! - `dagx`: a `DagRunner` runs once (running takes its tasks), so each iteration builds the
//!   DAG with `#[task]` tasks and runs it, as dagx's own benchmarks do.
//! - `dagx_run_only`: the same, with the DAGs built (and dropped) outside the timed region, to
//!   show what `run` alone costs.
//! - `dagrs`: the graph is built once per sample, outside the timed region; each iteration is
//!   `reset()` then `async_start()`, dagrs's way of running a graph again.
//! - `tokio`: a hand-written baseline: a task per step, values passed along `JoinHandle`s and
//!   `oneshot` channels in the same shape.
//! - `tokio_kept` (`chain_5` only): the same chain plus, by hand, what a sagaflow run keeps and
//!   reports (its id in a table, each step's duration, the last 10,000 finished runs with
//!   their reports and outputs; see `shared/kept_by_hand.rs`): what the run's promises cost
//!   done the plain way, beside what the engine spends on them.
//! - `tokio_kept_inline` (`chain_5` only): the same promises by hand, with the steps (`async
//!   fn`s) awaited one after the other in the run's own task, as a sequential `async fn` runs
//!   them, instead of a task a step: the promises without the baseline's spawns, which the
//!   engine does not pay for a chain either (its steps run in the task that started the run).
//!
//! Every step is a no-op that passes a `u64` along (`x + 1`). Before anything is timed, every
//! contender runs every shape once and the result is checked, so none of them can skip work.
//!
//! Each timed loop runs in a task spawned on the runtime, not on the thread criterion blocks
//! on: a third thread waking up after every run on a 2-core machine made the figures swing
//! by up to 8× from one run to the next, for every contender alike. sagaflow uses
//! `Engine::ephemeral()` as a user gets it (at most 1,024 step attempts at once, the last
//! 10,000 finished runs kept for their ids). `SAGAFLOW_BENCH_KEEP=<runs>` makes the timed
//! loops' engines keep that many finished runs instead: what keeping them costs a run.
//! `SAGAFLOW_BENCH_WORKERS=<n>` gives that group (and the count mode) n workers instead of 2.
//!
//! A second group, `tasks_64_chain_5`, has 64 tasks start 5-step chains on one engine (built
//! with `Builder`, and with `workflow!`), on runtimes of 1 and of 2 workers, against 64 tasks
//! running the tokio baseline's chain: what
//! a run shares with the others (issue 17, many cores) shows there as a throughput that does
//! not grow with the workers.
//!
//! Run with `cargo bench --bench engine`; figures and how they were taken: `benches/README.md`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use futures::FutureExt as _;
use sagaflow::runtime::{Handle, StepValue};
use sagaflow::{Builder, Definition, Engine, Report, RunId, StepError, StepOptions, StepStatus};
use tokio::runtime::Runtime;

#[path = "shared/kept_by_hand.rs"]
mod kept_by_hand;

/// The shapes measured.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `s0 -> s1 -> ... -> s(n-1)`; the first step takes the input.
    Chain(usize),
    /// One root taking the input, `n` children of the root.
    FanOut(usize),
    /// `n` steps that each take the input and nothing else.
    Independent(usize),
}

impl Shape {
    const ALL: [Shape; 4] = [
        Shape::Chain(5),
        Shape::Chain(100),
        Shape::FanOut(100),
        Shape::Independent(10_000),
    ];

    fn name(self) -> String {
        match self {
            Shape::Chain(n) => format!("chain_{n}"),
            Shape::FanOut(n) => format!("fanout_1_to_{n}"),
            Shape::Independent(n) => format!("independent_{n}"),
        }
    }

    /// Steps in one run.
    fn steps(self) -> usize {
        match self {
            Shape::Chain(n) | Shape::Independent(n) => n,
            Shape::FanOut(n) => n + 1,
        }
    }

    /// The check value for input 0: the chain's last output, or the sum of the outputs of
    /// the sinks (fan-out children: 2 each; independent steps: 1). sagaflow's runs without an
    /// output are checked through their reports instead: every step completed, once.
    fn expected(self) -> u64 {
        match self {
            Shape::Chain(n) => n as u64,
            Shape::FanOut(n) => 2 * n as u64,
            Shape::Independent(n) => n as u64,
        }
    }

    /// Runs per fresh engine (sagaflow) or per batch of prebuilt DAGs (dagx_run_only): about
    /// 200,000 steps' worth, so that what a batch keeps alive stays well under a gigabyte.
    fn runs_per_batch(self) -> u64 {
        (200_000 / self.steps()).max(1) as u64
    }
}

/// The runtime of the `engine_overhead` group and of the count mode: 2 workers, or
/// `SAGAFLOW_BENCH_WORKERS` (1 takes the other worker's wake-ups out of an A/B comparison).
fn runtime() -> Runtime {
    let workers = std::env::var("SAGAFLOW_BENCH_WORKERS").map_or(2, |w| {
        w.parse()
            .expect("SAGAFLOW_BENCH_WORKERS is a number of workers")
    });
    runtime_of(workers)
}

fn runtime_of(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// sagaflow

/// A sagaflow definition of either output type.
#[derive(Clone)]
enum SagaDef {
    /// Chains end in one step whose output is the run's.
    Output(Definition<u64, u64>),
    /// Fan-out and independent steps have many sinks, so the run has no output.
    NoOutput(Definition<u64, ()>),
}

fn sagaflow_definition(shape: Shape) -> SagaDef {
    fn step(b: &mut Builder<u64>, name: String, from: Handle<u64>) -> Handle<u64> {
        b.step(
            &name,
            StepOptions::new(),
            (from,),
            |_ctx, (x,)| async move { Ok::<u64, StepError>(*x + 1) },
        )
    }
    let mut b = Builder::<u64>::new(shape.name());
    let input = b.input();
    match shape {
        Shape::Chain(n) => {
            let mut last = step(&mut b, "s0".to_owned(), input);
            for i in 1..n {
                last = step(&mut b, format!("s{i}"), last);
            }
            SagaDef::Output(b.build_with_output(last))
        }
        Shape::FanOut(n) => {
            let root = step(&mut b, "root".to_owned(), input);
            for i in 0..n {
                step(&mut b, format!("child{i}"), root);
            }
            SagaDef::NoOutput(b.build())
        }
        Shape::Independent(n) => {
            for i in 0..n {
                step(&mut b, format!("s{i}"), input);
            }
            SagaDef::NoOutput(b.build())
        }
    }
}

/// `chain_5` as `workflow!` writes it: the same no-op steps, each an `async fn` that borrows
/// its input, called through the macro's expansion rather than through `Builder::step`.
mod macro_chain {
    use sagaflow::prelude::*;

    async fn s0(_: &StepContext, x: &u64) -> Result<u64, StepError> {
        Ok(x + 1)
    }
    async fn s1(_: &StepContext, x: &u64) -> Result<u64, StepError> {
        Ok(x + 1)
    }
    async fn s2(_: &StepContext, x: &u64) -> Result<u64, StepError> {
        Ok(x + 1)
    }
    async fn s3(_: &StepContext, x: &u64) -> Result<u64, StepError> {
        Ok(x + 1)
    }
    async fn s4(_: &StepContext, x: &u64) -> Result<u64, StepError> {
        Ok(x + 1)
    }

    workflow! {
        pub Chain5(u64) -> u64 { s0 -> s1 -> s2 -> s3 -> s4; }
    }
}

async fn sagaflow_run<O: StepValue>(
    engine: &Engine,
    def: &Definition<u64, O>,
    id: RunId,
) -> Report<O> {
    engine
        .start(def, id, 0)
        .await
        .expect("the run starts")
        .wait()
        .await
        .expect("the run completes")
}

/// Runs `def` once and checks that every step completed after one attempt, and, for a chain,
/// that the output is the chain's length.
async fn sagaflow_check(def: &SagaDef, shape: Shape) {
    let engine = Engine::ephemeral();
    let id = RunId::from("check");
    let steps = match def {
        SagaDef::Output(def) => {
            let report = sagaflow_run(&engine, def, id).await;
            assert_eq!(*report.output, shape.expected());
            report.steps
        }
        SagaDef::NoOutput(def) => sagaflow_run(&engine, def, id).await.steps,
    };
    assert_eq!(steps.len(), shape.steps());
    assert!(
        steps
            .iter()
            .all(|s| s.status == StepStatus::Completed && s.attempts == 1),
        "every step ran once"
    );
}

/// The engine of a timed loop: `Engine::ephemeral()`, or, with `SAGAFLOW_BENCH_KEEP=<runs>`,
/// one that keeps that many finished runs.
fn bench_engine() -> Engine {
    match std::env::var("SAGAFLOW_BENCH_KEEP") {
        Ok(runs) => Engine::builder()
            .keep_finished_runs(
                runs.parse()
                    .expect("SAGAFLOW_BENCH_KEEP is a number of runs"),
            )
            .build(),
        Err(_) => Engine::ephemeral(),
    }
}

/// Times `iters` runs, on a fresh engine per batch of [`Shape::runs_per_batch`] runs; making
/// the engine, the run ids and dropping the engine are not timed.
async fn sagaflow_timed<O: StepValue>(
    def: Definition<u64, O>,
    shape: Shape,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(shape.runs_per_batch());
        left -= batch;
        let engine = bench_engine();
        let ids: Vec<RunId> = (0..batch)
            .map(|i| RunId::from(format!("run-{i}")))
            .collect();
        let started = Instant::now();
        for id in ids {
            black_box(sagaflow_run(&engine, &def, id).await);
        }
        total += started.elapsed();
        drop(engine);
    }
    total
}

// ---------------------------------------------------------------------------------------------
// dagx

mod dagx_tasks {
    use dagx::{Task, task};

    /// A root: returns its input plus one.
    pub(crate) struct Source(pub(crate) u64);

    #[task]
    impl Source {
        async fn run(&self) -> u64 {
            self.0 + 1
        }
    }

    /// Any other step: its upstream's output plus one.
    pub(crate) struct Inc;

    #[task]
    impl Inc {
        async fn run(x: &u64) -> u64 {
            x + 1
        }
    }
}

/// A DAG of `shape`, and the handles whose outputs make its check value.
fn dagx_build(shape: Shape) -> (dagx::DagRunner, Vec<dagx::TaskHandle<u64>>) {
    use dagx_tasks::{Inc, Source};
    let dag = dagx::DagRunner::new();
    let sinks = match shape {
        Shape::Chain(n) => {
            let mut last: dagx::TaskHandle<u64> = dag.add_task(Source(0)).into();
            for _ in 1..n {
                last = dag.add_task(Inc).depends_on(last);
            }
            vec![last]
        }
        Shape::FanOut(n) => {
            let root: dagx::TaskHandle<u64> = dag.add_task(Source(0)).into();
            (0..n).map(|_| dag.add_task(Inc).depends_on(root)).collect()
        }
        Shape::Independent(n) => (0..n).map(|_| dag.add_task(Source(0)).into()).collect(),
    };
    (dag, sinks)
}

async fn dagx_run(dag: &dagx::DagRunner) {
    dag.run(|fut| {
        tokio::spawn(fut);
    })
    .await
    .expect("the DAG runs");
}

async fn dagx_check(shape: Shape) -> u64 {
    let (dag, sinks) = dagx_build(shape);
    dagx_run(&dag).await;
    sinks
        .into_iter()
        .map(|h| dag.get(h).expect("every task ran"))
        .sum()
}

/// Builds, runs and drops `iters` DAGs, all timed.
async fn dagx_timed(shape: Shape, iters: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        let (dag, sinks) = dagx_build(shape);
        dagx_run(&dag).await;
        black_box((dag, sinks));
    }
    started.elapsed()
}

/// Runs `iters` DAGs built beforehand; building and dropping them is not timed.
async fn dagx_run_only_timed(shape: Shape, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(shape.runs_per_batch());
        left -= batch;
        let dags: Vec<_> = (0..batch).map(|_| dagx_build(shape)).collect();
        let started = Instant::now();
        for (dag, _) in &dags {
            dagx_run(dag).await;
        }
        total += started.elapsed();
        drop(dags);
    }
    total
}

// ---------------------------------------------------------------------------------------------
// dagrs

mod dagrs_actions {
    use std::sync::Arc;

    use dagrs::async_trait::async_trait;
    use dagrs::{Action, Content, EnvVar, InChannels, OutChannels, Output};

    /// A root: sends its input plus one to every downstream node.
    pub(crate) struct Source(pub(crate) u64);

    #[async_trait]
    impl Action for Source {
        async fn run(&self, _: &mut InChannels, out: &mut OutChannels, _: Arc<EnvVar>) -> Output {
            let y = self.0 + 1;
            out.broadcast(Content::new(y)).await;
            Output::new(y)
        }
    }

    /// Any other step: its upstream's output plus one, sent on.
    pub(crate) struct Inc;

    #[async_trait]
    impl Action for Inc {
        async fn run(
            &self,
            input: &mut InChannels,
            out: &mut OutChannels,
            _: Arc<EnvVar>,
        ) -> Output {
            let x: u64 = input
                .map(|c| c.ok().and_then(|c| c.into_inner::<u64>()).map_or(0, |x| *x))
                .await
                .into_iter()
                .sum();
            let y = x + 1;
            out.broadcast(Content::new(y)).await;
            Output::new(y)
        }
    }
}

/// A graph of `shape`, and the nodes whose outputs make its check value.
fn dagrs_build(shape: Shape) -> (dagrs::Graph, Vec<dagrs::NodeId>) {
    use dagrs::{DefaultNode, EnvVar, Graph, Node, NodeTable};
    use dagrs_actions::{Inc, Source};

    let mut table = NodeTable::default();
    let mut graph = Graph::new();
    let mut add = |graph: &mut Graph, name: String, root: bool| {
        let node = if root {
            DefaultNode::with_action(name, Source(0), &mut table)
        } else {
            DefaultNode::with_action(name, Inc, &mut table)
        };
        let id = node.id();
        graph.add_node(node).expect("a new node");
        id
    };
    let sinks = match shape {
        Shape::Chain(n) => {
            let mut last = add(&mut graph, "s0".to_owned(), true);
            for i in 1..n {
                let next = add(&mut graph, format!("s{i}"), false);
                graph.add_edge(last, [next]).expect("an edge");
                last = next;
            }
            vec![last]
        }
        Shape::FanOut(n) => {
            let root = add(&mut graph, "root".to_owned(), true);
            let children: Vec<_> = (0..n)
                .map(|i| add(&mut graph, format!("child{i}"), false))
                .collect();
            graph.add_edge(root, children.clone()).expect("edges");
            children
        }
        Shape::Independent(n) => (0..n)
            .map(|i| add(&mut graph, format!("s{i}"), true))
            .collect(),
    };
    graph.set_env(EnvVar::new(table));
    (graph, sinks)
}

async fn dagrs_run(graph: &mut dagrs::Graph) -> dagrs::ExecutionReport {
    graph.reset().await.expect("the graph resets");
    graph.async_start().await.expect("the graph runs")
}

async fn dagrs_check(shape: Shape) -> u64 {
    let (mut graph, sinks) = dagrs_build(shape);
    let mut value = 0;
    // Twice, to check that a reset graph runs again in full.
    for _ in 0..2 {
        let report = dagrs_run(&mut graph).await;
        assert_eq!(report.node_succeeded, shape.steps(), "{report:?}");
        let results = graph.get_results::<u64>();
        value = sinks
            .iter()
            .map(|id| **results[id].as_ref().expect("every node has an output"))
            .sum();
    }
    value
}

/// Builds one graph (not timed), then resets and runs it `iters` times.
async fn dagrs_timed(shape: Shape, iters: u64) -> Duration {
    let (mut graph, _) = dagrs_build(shape);
    let started = Instant::now();
    for _ in 0..iters {
        black_box(dagrs_run(&mut graph).await);
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------------------
// tokio baseline

fn inc(x: u64) -> Result<u64, StepError> {
    Ok::<u64, StepError>(x + 1)
}

/// A task per step; returns the check value.
async fn tokio_run(shape: Shape) -> u64 {
    let input = 0_u64;
    match shape {
        Shape::Chain(n) => {
            let mut last = tokio::spawn(async move { inc(input) });
            for _ in 1..n {
                let upstream = last;
                last = tokio::spawn(async move { inc(upstream.await.expect("joined")?) });
            }
            last.await.expect("joined").expect("the step succeeds")
        }
        Shape::FanOut(n) => {
            let (senders, children): (Vec<_>, Vec<_>) = (0..n)
                .map(|_| {
                    let (tx, rx) = tokio::sync::oneshot::channel::<Arc<u64>>();
                    let child =
                        tokio::spawn(async move { inc(*rx.await.expect("the root sends")) });
                    (tx, child)
                })
                .unzip();
            tokio::spawn(async move {
                let out = Arc::new(inc(input)?);
                for tx in senders {
                    let _ = tx.send(Arc::clone(&out));
                }
                Ok::<(), StepError>(())
            });
            let mut sum = 0;
            for child in children {
                sum += child.await.expect("joined").expect("the step succeeds");
            }
            sum
        }
        Shape::Independent(n) => {
            let tasks: Vec<_> = (0..n)
                .map(|_| tokio::spawn(async move { inc(input) }))
                .collect();
            let mut sum = 0;
            for task in tasks {
                sum += task.await.expect("joined").expect("the step succeeds");
            }
            sum
        }
    }
}

async fn tokio_timed(shape: Shape, iters: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        black_box(tokio_run(shape).await);
    }
    started.elapsed()
}

/// The chain with what a run keeps written by hand ([`kept_by_hand`]): `iters` runs, on a
/// fresh table per batch of [`Shape::runs_per_batch`] runs, the ids made before the clock
/// starts, as [`sagaflow_timed`] does.
async fn tokio_kept_timed(shape: Shape, iters: u64, inline: bool) -> Duration {
    let names = kept_by_hand::names(shape.steps());
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(shape.runs_per_batch());
        left -= batch;
        let runs = kept_by_hand::Runs::default();
        let ids: Vec<Arc<str>> = (0..batch).map(|i| Arc::from(format!("run-{i}"))).collect();
        let started = Instant::now();
        for id in ids {
            black_box(kept_by_hand::run(&runs, &names, id, inline).await);
        }
        total += started.elapsed();
        drop(runs);
    }
    total
}

/// Runs the chain by hand once, checks its output and report, and that a second start of its
/// id gets the same run back without running it again.
async fn tokio_kept_check(shape: Shape, inline: bool) {
    let (runs, names) = (
        kept_by_hand::Runs::default(),
        kept_by_hand::names(shape.steps()),
    );
    let began = Instant::now();
    let first = kept_by_hand::run(&runs, &names, Arc::from("check"), inline)
        .await
        .expect("a new run");
    let took = began.elapsed();
    assert_eq!(*first.output, shape.expected());
    assert_eq!(first.steps.len(), shape.steps());
    assert!(first.steps.iter().zip(&names).all(|(s, n)| s.name == *n));
    // The steps' durations follow one another within the run.
    assert!(first.steps.iter().map(|s| s.duration).sum::<Duration>() <= took);
    let again = kept_by_hand::run(&runs, &names, Arc::from("check"), inline)
        .await
        .expect("kept");
    assert!(Arc::ptr_eq(&first.output, &again.output), "not run again");
}

// ---------------------------------------------------------------------------------------------

/// Runs a timed loop on one of the runtime's two workers instead of on the thread criterion
/// blocks on, so that only the runtime's two threads take part, on two cores, as in a service
/// that starts runs from its own tasks.
async fn on_worker(timed: impl Future<Output = Duration> + Send + 'static) -> Duration {
    tokio::spawn(timed).await.expect("the timed loop ends")
}

fn engine_overhead(c: &mut Criterion) {
    let rt = runtime();
    for shape in Shape::ALL {
        let saga = sagaflow_definition(shape);

        // Every contender runs every step: checked once, before anything is timed.
        rt.block_on(async {
            let expected = shape.expected();
            sagaflow_check(&saga, shape).await;
            assert_eq!(dagx_check(shape).await, expected, "dagx {shape:?}");
            assert_eq!(dagrs_check(shape).await, expected, "dagrs {shape:?}");
            assert_eq!(tokio_run(shape).await, expected, "tokio {shape:?}");
        });

        let mut group = c.benchmark_group(shape.name());
        group.throughput(Throughput::Elements(shape.steps() as u64));
        if let Shape::Independent(_) = shape {
            group.sample_size(10);
        } else {
            group.sample_size(30);
        }
        group.bench_function("sagaflow", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(match saga.clone() {
                    SagaDef::Output(def) => sagaflow_timed(def, shape, iters).boxed(),
                    SagaDef::NoOutput(def) => sagaflow_timed(def, shape, iters).boxed(),
                })
            });
        });
        if let Shape::Chain(5) = shape {
            let def = macro_chain::Chain5::definition();
            rt.block_on(sagaflow_check(&SagaDef::Output(def.clone()), shape));
            group.bench_function("sagaflow_macro", |b| {
                b.to_async(&rt)
                    .iter_custom(|iters| on_worker(sagaflow_timed(def.clone(), shape, iters)));
            });
        }
        group.bench_function("dagx", |b| {
            b.to_async(&rt)
                .iter_custom(|iters| on_worker(dagx_timed(shape, iters)));
        });
        group.bench_function("dagx_run_only", |b| {
            b.to_async(&rt)
                .iter_custom(|iters| on_worker(dagx_run_only_timed(shape, iters)));
        });
        group.bench_function("dagrs", |b| {
            b.to_async(&rt)
                .iter_custom(|iters| on_worker(dagrs_timed(shape, iters)));
        });
        group.bench_function("tokio", |b| {
            b.to_async(&rt)
                .iter_custom(|iters| on_worker(tokio_timed(shape, iters)));
        });
        if let Shape::Chain(5) = shape {
            for (name, inline) in [("tokio_kept", false), ("tokio_kept_inline", true)] {
                rt.block_on(tokio_kept_check(shape, inline));
                group.bench_function(name, |b| {
                    b.to_async(&rt)
                        .iter_custom(|iters| on_worker(tokio_kept_timed(shape, iters, inline)));
                });
            }
        }
        group.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Many tasks on one engine

/// Tasks that start runs at once, each one run after another.
const TASKS: u64 = 64;

/// `iters` runs of `def` started by [`TASKS`] tasks on one fresh engine, each task waiting for
/// a run before it starts its next; the engine and the ids are made before the clock starts.
async fn sagaflow_tasks_timed(def: Definition<u64, u64>, iters: u64) -> Duration {
    let engine = bench_engine();
    let ids: Vec<Vec<RunId>> = (0..TASKS)
        .map(|t| {
            let runs = iters / TASKS + u64::from(t < iters % TASKS);
            (0..runs)
                .map(|i| RunId::from(format!("t{t}-{i}")))
                .collect()
        })
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|ids| {
            let (engine, def) = (engine.clone(), def.clone());
            tokio::spawn(async move {
                for id in ids {
                    black_box(sagaflow_run(&engine, &def, id).await);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task ends");
    }
    let elapsed = started.elapsed();
    drop(engine);
    elapsed
}

/// `iters` runs of the tokio baseline's 5-step chain by [`TASKS`] tasks, as above.
async fn tokio_tasks_timed(iters: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let runs = iters / TASKS + u64::from(t < iters % TASKS);
            tokio::spawn(async move {
                for _ in 0..runs {
                    black_box(tokio_run(Shape::Chain(5)).await);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task ends");
    }
    started.elapsed()
}

fn many_tasks(c: &mut Criterion) {
    let SagaDef::Output(def) = sagaflow_definition(Shape::Chain(5)) else {
        unreachable!("a chain has an output");
    };
    let mut group = c.benchmark_group("tasks_64_chain_5");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for workers in [1, 2] {
        let rt = runtime_of(workers);
        rt.block_on(async {
            let report = sagaflow_run(&Engine::ephemeral(), &def, RunId::from("check")).await;
            assert_eq!(*report.output, 5);
            assert_eq!(tokio_run(Shape::Chain(5)).await, 5);
        });
        let plural = if workers == 1 { "worker" } else { "workers" };
        group.bench_function(format!("sagaflow_{workers}_{plural}"), |b| {
            b.to_async(&rt)
                .iter_custom(|iters| on_worker(sagaflow_tasks_timed(def.clone(), iters)));
        });
        // The chain as `workflow!` writes it: its names are static, so its runs write no
        // name's count (what a report of a `Builder` chain with made names still does).
        group.bench_function(format!("sagaflow_macro_{workers}_{plural}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                on_worker(sagaflow_tasks_timed(
                    macro_chain::Chain5::definition(),
                    iters,
                ))
            });
        });
        group.bench_function(format!("tokio_{workers}_{plural}"), |b| {
            b.to_async(&rt)
                .iter_custom(|iters| on_worker(tokio_tasks_timed(iters)));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = engine_overhead, many_tasks
}
/// `SAGAFLOW_BENCH_COUNT=<shape>:<contender>:<runs>` (`chain_5:sagaflow:10000`, say): runs
/// that many runs of one contender, untimed and without criterion, for an instruction counter
/// (`benches/instructions.sh` runs it under callgrind twice and takes the difference, so that
/// what the process does once drops out). The runs go as in the timed loops: on a worker of
/// the same 2-worker runtime, a fresh engine per [`Shape::runs_per_batch`] runs.
fn count_only() -> bool {
    let Ok(spec) = std::env::var("SAGAFLOW_BENCH_COUNT") else {
        return false;
    };
    let mut parts = spec.split(':');
    let (Some(shape), Some(contender), Some(runs), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("SAGAFLOW_BENCH_COUNT is <shape>:<contender>:<runs>, not `{spec}`");
    };
    let shape = Shape::ALL
        .into_iter()
        .find(|s| s.name() == shape)
        .unwrap_or_else(|| panic!("no shape `{shape}`"));
    let runs: u64 = runs.parse().expect("a number of runs");
    let (contender, rt) = (contender.to_owned(), runtime());
    rt.block_on(on_worker(async move {
        match contender.as_str() {
            "sagaflow" => match sagaflow_definition(shape) {
                SagaDef::Output(def) => sagaflow_timed(def, shape, runs).await,
                SagaDef::NoOutput(def) => sagaflow_timed(def, shape, runs).await,
            },
            "tokio" => tokio_timed(shape, runs).await,
            "tokio_kept" => tokio_kept_timed(shape, runs, false).await,
            "tokio_kept_inline" => tokio_kept_timed(shape, runs, true).await,
            "sagaflow_macro" => match shape {
                Shape::Chain(5) => {
                    sagaflow_timed(macro_chain::Chain5::definition(), shape, runs).await
                }
                other => panic!("sagaflow_macro has `chain_5` only, not {other:?}"),
            },
            // What the sagaflow count spends on the bench's own run ids, made (and dropped)
            // as `sagaflow_timed` makes them, outside its clock: subtracted from it.
            "ids" => {
                let ids: Vec<RunId> = (0..runs).map(|i| RunId::from(format!("run-{i}"))).collect();
                drop(black_box(ids));
                Duration::ZERO
            }
            other => {
                panic!(
                "no contender `{other}` to count (sagaflow, sagaflow_macro, tokio, tokio_kept, tokio_kept_inline, ids)"
            )
            }
        }
    }));
    true
}

fn main() {
    if count_only() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
