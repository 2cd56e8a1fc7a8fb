//! sagaflow: workflows, sagas and state machines written as macros, checked at build time, run
//! on a small tokio engine.
//!
//! ```
//! use sagaflow::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Rows(Vec<i64>);
//!
//! async fn extract(_: &StepContext, day: &u32) -> Result<Rows, StepError> {
//!     Ok(Rows(vec![i64::from(*day), -1, 2]))
//! }
//! async fn clean(_: &StepContext, rows: &Rows) -> Result<Rows, StepError> {
//!     Ok(Rows(rows.0.iter().copied().filter(|r| *r >= 0).collect()))
//! }
//! async fn audit(_: &StepContext, rows: &Rows) -> Result<usize, StepError> {
//!     Ok(rows.0.len())
//! }
//! async fn load(_: &StepContext, rows: &Rows, seen: Option<&usize>) -> Result<String, StepError> {
//!     Ok(format!("loaded {} of {:?}", rows.0.len(), seen))
//! }
//!
//! workflow! {
//!     /// A nightly ETL.
//!     pub Etl(u32) -> String {
//!         extract -> [clean, audit] -> load;
//!         extract: retry(max_attempts = 3, initial = 100ms), timeout = 30s;
//!         audit: on_error = continue;
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::ephemeral();
//! let report = Etl::start(&engine, "etl-2026-11-21", 21).await?.wait().await?;
//! assert_eq!(*report.output, "loaded 2 of Some(3)");
//! # Ok(())
//! # }
//! ```

extern crate self as sagaflow;

pub use sagaflow_core::graph::{Graph, GraphError, GraphSpec, NodeStyle};
pub use sagaflow_core::policy::{OnError, PolicyError, RetryPolicy, StepOptions};
pub use sagaflow_core::runtime;
pub use sagaflow_core::runtime::MemoryStore;
pub use sagaflow_core::runtime::{
    Builder, Call, Definition, Engine, EngineError, Name, Recovered, Report, RunError, RunHandle,
    RunId, StepContext, StepError, StepReport, StepReports, StepStatus, Waiting,
};
#[cfg(feature = "postgres")]
pub use sagaflow_postgres::{PgOptions, PgStore, PostgresEngine};
#[cfg(feature = "sqlite")]
pub use sagaflow_sqlite::{SqliteEngine, SqliteOptions, SqliteStore, Synchronous};

/// Declares a workflow: a DAG of ordinary async functions, checked while it compiles and run on
/// the [`Engine`].
///
/// # Syntax
///
/// ```text
/// workflow! {
///     /// docs and attributes
///     VISIBILITY NAME [(INPUT)] [-> OUTPUT] {
///         CHAIN;                          // a -> b -> c   or   a -> [b, c] -> d
///         STEP: OPTION, OPTION, ...;      // options of one step
///         defaults: OPTION, ...;          // options of every step that does not set its own
///     }
/// }
/// ```
///
/// - A step is an async fn in scope, named by its path (`steps::extract`); its name is the
///   last segment. It is called as `step(&StepContext, inputs...)` and returns
///   `Result<T, E>` where `T: Serialize + DeserializeOwned + Send + Sync + 'static` and
///   `E: Into<StepError>` (any `std::error::Error` is).
/// - A step with no upstream receives `&INPUT` when the workflow declares an input type, and
///   nothing else otherwise. Any other step receives its direct upstream outputs by reference,
///   in the order the edges were written: `[clean, audit] -> load` calls
///   `load(ctx, &Cleaned, &Audit)`. Deref coercion applies, so a step may take `&[T]` for a
///   `Vec<T>` output and `&str` for a `String`.
/// - A step downstream of a step with `when` or `on_error = continue` receives `Option<&T>`
///   for it, so the compiler makes you handle the missing value.
/// - With `-> OUTPUT`, the workflow must end in exactly one step, whose output is the run's.
///
/// # Options
///
/// | option | meaning |
/// | --- | --- |
/// | `retry(max_attempts = 5, initial = 100ms, coefficient = 2.0, max = 10s, jitter = 0.2)` | Temporal's retry vocabulary; unset keys take Temporal's defaults (1 s, 2.0, 100 × initial, unlimited, no jitter). Without `retry`, a step gets one attempt. Temporal's own names work too: `maximum_attempts`, `initial_interval`, `backoff_coefficient`, `maximum_interval` (a key or its other name, not both). `jitter = 0.2` spreads each delay over ±20 % of it, never past `max` (see below). |
/// | `timeout = 30s`, or Temporal's `start_to_close_timeout = 30s` | time allowed for one attempt |
/// | `deadline = 5m`, or Temporal's `schedule_to_close_timeout = 5m` | time allowed for all attempts and delays together, from the first attempt's start; a restart does not extend it |
/// | `on_error = fail \| continue` | `continue` lets the run finish; dependents receive `None` |
/// | `when = guard_fn` | `guard_fn` receives the step's inputs (without the context) and returns `bool`; `false` skips the step, and dependents receive `None` |
/// | `at_most_once` | when a run is resumed after a crash, an attempt the crash cut is not repeated: the step comes back [`StepStatus::Interrupted`] and the run fails (or goes on, with `on_error = continue`) |
///
/// Durations are a number and a unit: `ms`, `s`, `m`, `h` (`100ms`, `1.5s`), read to the
/// nanosecond and at most `876000h` (100 years): a longer one is an error at its token.
///
/// Temporal's `schedule_to_start_timeout` and `heartbeat_timeout` have no equivalent (a step
/// waits in no task queue and sends no heartbeats), nor has `retry`'s
/// `non_retryable_error_types` (return `StepError::permanent` instead): each is an error that
/// says so.
///
/// ## Retry delays
///
/// The delay after failed attempt *n* is `initial × coefficient^(n-1)`, capped at `max` (100 ×
/// `initial` when unset). With `jitter = j`, each delay `d` is drawn uniformly from
/// `[d × (1 - j), min(d × (1 + j), max)]`: `jitter = 0.2` multiplies it by a factor drawn
/// uniformly from `[0.8, 1.2]`, with the part of that range that would pass `max` cut off. No
/// delay is ever longer than `max`; once the backoff has reached it, the delays spread over
/// `[0.8 × max, max]`.
///
/// The draw depends on four things only: the engine's jitter seed, the run id, the step's name
/// and the attempt number. With `Engine::builder().jitter_seed(s)`, a run id waits the same
/// delays each time it runs, and other run ids (or steps) wait other delays; an engine built
/// without a seed takes a random one, so its delays differ from one engine to the next.
/// [`RetryPolicy::retry_delay`]`(seed, run_id, step, attempt)` is the delay the engine waits.
///
/// # What it generates
///
/// A unit struct `NAME` with:
///
/// - `NAME::start(&engine, run_id[, input])`: a [`RunHandle`] on the run; an id that exists
///   hands back that run (a run id is its idempotency key);
/// - `NAME::resume(&engine, run_id)`: takes up one run an earlier process left unfinished
///   ([`Engine::resume`]);
/// - `NAME::recover(&engine)`: takes up every unfinished run of the workflow, as a service
///   does at start-up ([`Engine::recover`]): a [`Recovered`] with the runs taken up now, those
///   another live owner holds (taken up here by themselves once the lease runs out: see
///   [`Waiting`]) and those that could not be;
/// - `NAME::register(&engine)`: tells the engine it can run this workflow, so that it takes
///   up by itself, for its life, the runs other replicas leave ([`Engine::register`]);
/// - `NAME::definition()`, the [`Definition`] the engine runs; `NAME::mermaid()`,
///   `NAME::dot()`; and `NAME::NAME`, the workflow's name.
///
/// `examples/etl_by_hand.rs` shows the same workflow written with [`Builder`] directly: that
/// is what the macro expands to, one `Builder::step_borrowing` a step. Each step's function
/// borrows the attempt's context and its inputs from the engine, so an attempt costs one
/// allocation, its boxed future (a [`Call`]), and takes no reference count of its inputs.
///
/// # Behaviours worth knowing
///
/// - A retry is not started if its delay would end past the step's `deadline`: the step fails
///   then, before the deadline, with an error that says so (`no time left for another`),
///   instead of waiting for an attempt that would be cut at once.
/// - An attempt cut by its `timeout` is a failed attempt like any other, retried by the policy.
/// - A run taken up after a crash keeps its steps' first start times: a `deadline` is not
///   extended by the restart.
///
/// # Build-time errors
///
/// A cycle (at the edge that closes it, with its whole path), a step whose input is declared
/// twice, an unknown step in an options statement, an unknown or repeated option (a name and
/// its Temporal name count as one), a bad duration (over 100 years included) or retry value,
/// an empty workflow, an output type on a workflow with several final steps: each is an error
/// at the offending token, all reported together.
///
/// ```compile_fail
/// use sagaflow::prelude::*;
/// async fn a(_: &StepContext) -> Result<(), StepError> { Ok(()) }
/// async fn b(_: &StepContext, _: &()) -> Result<(), StepError> { Ok(()) }
/// workflow! { Loop { a -> b -> a; } } // error: cycle: a -> b -> a
/// ```
pub use sagaflow_macros::workflow;

pub use sagaflow_saga::{
    RecoveredSagas, SagaBuilder, SagaDefinition, SagaDefinitionError, SagaError, SagaHandle,
    SagaOutcome, SagaStatus,
};

/// Declares a saga: a workflow whose completed steps are undone, newest first, when a later
/// step fails; checked while it compiles and run on the [`Engine`] by [`SagaDefinition`].
///
/// ```
/// use sagaflow::prelude::*;
/// use sagaflow::SagaOutcome;
///
/// async fn charge(_: &StepContext, cents: &u64) -> Result<String, StepError> {
///     Ok(format!("ch_{cents}"))
/// }
/// async fn refund(_: &StepContext, _cents: &u64, charge: &str) -> Result<(), StepError> {
///     assert!(charge.starts_with("ch_"));
///     Ok(())
/// }
/// async fn reserve(_: &StepContext, _charge: &str) -> Result<u32, StepError> {
///     Ok(3)
/// }
/// async fn release(_: &StepContext, _charge: &str, _units: &u32) -> Result<(), StepError> {
///     Ok(())
/// }
/// async fn ship(_: &StepContext, _units: &u32) -> Result<(), StepError> {
///     Err(StepError::permanent("no courier"))
/// }
///
/// saga! {
///     /// Charge, reserve, ship; refund and release if shipping fails.
///     pub Order(u64) {
///         charge / refund -> reserve / release -> ship;
///         refund: retry(max_attempts = 5, initial = 1s);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::open_in_memory()?; // a store that keeps step outputs
/// let outcome = Order::start(&engine, "order-17", 1299).await?.wait().await?;
/// let SagaOutcome::Compensated { undone, .. } = outcome else { panic!() };
/// assert_eq!(undone, ["reserve", "charge"]); // newest first
/// # Ok(())
/// # }
/// ```
///
/// # Syntax
///
/// ```text
/// saga! {
///     /// docs and attributes
///     VISIBILITY NAME [(INPUT)] [-> OUTPUT] {
///         CHAIN;                          // build / delete -> [push / untag, migrate] -> shift! -> test
///         STEP: OPTION, OPTION, ...;      // options of one step
///         COMPENSATION: OPTION, ...;      // options of one compensation, by its own name
///         defaults: OPTION, ...;          // options of every step and compensation that sets none
///         deadline = 10m;                 // the whole saga's deadline
///     }
/// }
/// ```
///
/// The forward graph is a workflow's, with the same forms, types and rules: chains, groups
/// `[a, b]`, fan-in, steps named by their path's last segment, each step receiving its direct
/// upstream outputs by reference in the order the edges were written (see [`workflow!`]).
/// Each element of a chain may carry two marks:
///
/// - `step / undo` declares `undo` the compensation of `step`. It is an async fn in scope,
///   called as `undo(&StepContext, <the step's inputs, exactly as the step receives them>,
///   &Out)` where `Out` is the step's output type, returning `Result<T, E>` for any `T` and
///   `E: Into<StepError>`. A step written in several chains declares its compensation once
///   (or the same each time). Two steps may share a compensation function; its options are
///   then shared too.
/// - `step!` marks the pivot: the point of no return. A failure before it, or of it, is
///   compensated; every step after it (its descendants) is retried until it succeeds, even on
///   a permanent error, and has no compensation. A path has at most one pivot, and the pivot
///   itself has no compensation.
///
/// Compensations run when the forward run stops short: a step failed after its retries (and
/// not `on_error = continue`), the saga was cancelled ([`SagaHandle::cancel`]), or its
/// `deadline` passed before the pivot. Each step that completed is undone, newest first
/// (parallel branches by completion order); each compensation is a durable step with its own
/// retry policy. When a compensation's retries run out, the saga is `Stuck` with the error
/// kept, until an operator calls `retry`, `skip` or `abandon`. A saga whose first step fails
/// ends [`SagaOutcome::Compensated`] with `undone` empty: nothing had completed, so nothing
/// is undone, and `cause` says why it stopped.
///
/// # Options
///
/// Steps take every option of [`workflow!`], Temporal's names included: `retry(...)`,
/// `timeout`, `deadline`, `on_error`, `when`, `at_most_once`, plus one:
///
/// | option | meaning |
/// | --- | --- |
/// | `undo_on_unknown` | the step's compensation is safe to run when the step's outcome is unknown (it started but did not complete: it failed, or a crash or a cancellation cut it). Such a compensation is called for those steps too, and receives `Option<&Out>`: `None` when there is no output. Without it, such a step is not undone, and the compensation receives `&Out`. |
///
/// A compensation, named by its function's name, takes `retry(...)`, `timeout` and
/// `deadline`: it is never skipped and never left failed. `defaults` apply to steps and
/// compensations alike. Past the pivot, a step's `retry` keeps its intervals but its attempts
/// are unlimited and its `deadline` is dropped. The pivot cannot have a `when` guard.
///
/// `deadline = 10m` (a statement of its own, not a step option) bounds the whole saga: when it
/// passes before the pivot completes, the saga is cancelled and compensated; past the pivot,
/// it goes on. Durations are a number and a unit: `ms`, `s`, `m`, `h`, at most `876000h`
/// (100 years).
///
/// # What it generates
///
/// A unit struct `NAME` whose associated functions are those of its [`SagaDefinition`]:
///
/// - `NAME::start(&engine, run_id[, input])`: a [`SagaHandle`] whose `wait()` gives the
///   [`SagaOutcome`]; the run id is the idempotency key. The engine must keep step outputs
///   (`Engine::open`, `Engine::open_in_memory`), since a failure is compensated from them.
/// - `NAME::resume(&engine, run_id)` and `NAME::recover(&engine)`: take up runs after a crash;
///   `NAME::register(&engine)`: the engine takes up by itself, for its life, the saga's runs
///   other replicas leave ([`SagaDefinition::register`]).
/// - `NAME::status(&engine, run_id)`: the [`SagaStatus`].
/// - `NAME::retry`, `NAME::skip`, `NAME::abandon(&engine, run_id)`: an operator's actions on a
///   stuck saga.
/// - `NAME::definition()`, `NAME::mermaid()`, `NAME::dot()` and `NAME::NAME`.
///
/// It expands to [`SagaBuilder`] calls: `step_borrowing` (with its guard if it has one, or
/// `pivot_borrowing`) for each step in topological order, then `undo` (or `undo_on_unknown`)
/// for its compensation, with the step's own dependencies.
///
/// # Build-time errors
///
/// Every error [`workflow!`] reports (a cycle with its path, an input declared twice, an
/// unknown option, a bad duration, an empty saga...), and: a compensation on a step after a
/// pivot, two pivots on one path, a pivot with a compensation, `!` on a compensation, a step
/// whose compensation is declared twice differently, a name that is both a step and a
/// compensation, options for a name that is neither a step nor a compensation (with "did you
/// mean"), an option a compensation does not take, `undo_on_unknown` on a step without
/// compensation, an unknown saga setting. Each is an error at the offending token, all
/// reported together. A compensation whose signature does not fit its step is a type error
/// at the compensation's name in the chain, with rustc's note pointing at its function.
/// Each has a case under `tests/ui/saga/fail`.
///
/// ```compile_fail
/// use sagaflow::prelude::*;
/// async fn reserve(_: &StepContext) -> Result<u32, StepError> { Ok(1) }
/// async fn commit(_: &StepContext, _: &u32) -> Result<u32, StepError> { Ok(1) }
/// async fn notify(_: &StepContext, _: &u32) -> Result<(), StepError> { Ok(()) }
/// async fn unnotify(_: &StepContext, _: &u32, _: &()) -> Result<(), StepError> { Ok(()) }
/// // error: step `notify` comes after the pivot `commit`, so it cannot have a compensation
/// saga! { Booking { reserve -> commit! -> notify / unnotify } }
/// ```
pub use sagaflow_macros::saga;

/// The sequence of one state-machine transition (guard, action, exit and entry actions, the
/// error of each), which `fsm!`'s transition functions call; for machines written by hand.
pub use sagaflow_fsm::transition;
pub use sagaflow_fsm::{
    ActionError, Fsm, Machine, MachineError, MachineStore, MachineTransition, PersistedMachine,
    Spec, StateSpec, Step, Transition, TransitionError, TransitionErrorKind, TransitionSpec,
};
/// Declares a typed state machine: a smlang-style transition table, checked while it
/// compiles, with guards and actions (async, `Send`) on a context trait, entry and exit
/// actions, state and event data, and machines persisted in a store (SQLite, or memory).
///
/// ```
/// use sagaflow::{ActionError, SqliteStore, fsm};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Code(u32);
///
/// fsm! {
///     /// A door.
///     pub Door {
///         *Closed + Open [unlocked] / log_open = Opened,
///         Opened + Close = Closed,
///         Closed + Lock(Code) / remember = Locked(Code),
///         Locked(Code) + Unlock(Code) [code_matches] = Closed,
///         _ + Break = Broken,
///         state Opened { entry = ring },
///         state Broken { final },
///     }
/// }
///
/// struct Hall { log: Vec<String> }
///
/// impl DoorContext for Hall {
///     async fn unlocked(&mut self) -> bool { true }
///     async fn log_open(&mut self) -> Result<(), ActionError> {
///         self.log.push("opened".into());
///         Ok(())
///     }
///     async fn remember(&mut self, event: Code) -> Result<Code, ActionError> { Ok(event) }
///     async fn code_matches(&mut self, state: &Code, event: &Code) -> bool { state == event }
///     async fn ring(&mut self) -> Result<(), ActionError> { Ok(()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut hall = Hall { log: Vec::new() };
///
/// // In memory: the pure transition function changes nothing itself.
/// let next = Door::transition(&mut hall, &DoorState::Closed, DoorEvent::Open).await?;
/// assert!(matches!(next, DoorState::Opened));
///
/// // Persisted: the state and a version in the database, every transition logged.
/// let store = SqliteStore::in_memory()?;
/// let mut door = Door::open(&store, "front-door").await?;
/// door.fire(&mut hall, DoorEvent::Lock(Code(1234))).await?;
/// let err = door.fire(&mut hall, DoorEvent::Unlock(Code(1))).await.unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "machine `front-door`: Door: guard `code_matches` refused `Unlock` in `Locked`"
/// );
/// assert!(matches!(door.state(), DoorState::Locked(Code(1234)))); // unchanged
/// assert_eq!(door.version(), 1);
/// println!("{}", door.mermaid()); // `Locked` highlighted
/// # Ok(())
/// # }
/// ```
///
/// # Syntax
///
/// ```text
/// fsm! {
///     /// docs and attributes (on the machine's struct)
///     VISIBILITY NAME {
///         ITEM, ITEM, ...
///     }
/// }
///
/// ITEM := [*]SOURCE + EVENT [ [GUARD] ] [ / ACTION ] = TARGET      a transition
///       | [*]state STATE { OPTION, ... }                          a state's declaration
///       | event EVENT                                             an event's declaration
/// SOURCE := STATE | _            STATE := Name | Name(Type)       EVENT := Name | Name(Type)
/// OPTION := entry = method | exit = method | final
/// ```
///
/// - `*` marks the initial state (exactly one; it cannot hold data).
/// - A state or event with `(Type)` holds data; write the type at any one mention (others may
///   repeat it, and must agree). An event's payload moves into the target state when the
///   transition has no action and the target holds data of that type.
/// - `_ + Event = Target` leaves every state that is not final and has no transition of its
///   own on `Event` that fires first: a state's own transitions are tried before the wildcard's.
/// - Transitions on one state and event are tried in the order written; the first whose guard
///   says yes fires (one without a guard always does, so it must come last).
/// - A state exists if a transition leaves it or it is declared with `state`; a target that is
///   neither is an error (declare an end state with `state Done { final }`).
/// - `entry` runs when a transition enters the state, `exit` when one leaves it (a transition
///   to the same state runs both). Creating a machine does not run its initial state's entry
///   action; loading a persisted one runs none.
///
/// # What it generates
///
/// For `pub Door`: the unit struct `Door`; `DoorState` (`Debug`, `Clone`, serde) and
/// `DoorEvent` (`Debug`), one variant each, with `name()`; the trait `DoorContext: Send` with
/// one method per guard, action, entry and exit action, each returning a `Send` future (write
/// them as `async fn`):
///
/// | hook | signature |
/// | --- | --- |
/// | guard | `async fn g(&mut self, [state: &SourceData,] [event: &Payload]) -> bool` |
/// | action | `async fn a(&mut self, [state: &SourceData,] [event: Payload]) -> Result<TargetData or (), ActionError>` |
/// | entry, exit | `async fn f(&mut self, [state: &Data]) -> Result<(), ActionError>` |
///
/// (`state` is absent for `_` and for states without data; `event` for events without one.)
/// A machine without hooks gets `impl DoorContext for ()`, a synchronous
/// `Door::next(&state, event)` and [`Step`] (so [`Machine::step`] works without a future). Every machine gets [`Fsm`] and [`Transition`] impls,
/// `Door::transition(&mut ctx, &state, event)` (the pure transition function: it returns the
/// next state, or a [`TransitionError`] that says which guard refused or which action failed,
/// and never changes `state`), `Door::machine()` (a [`Machine`] in memory), `Door::open`,
/// `Door::load`, `Door::create` (a [`PersistedMachine`] on any [`MachineStore`]: a `SqliteStore`,
/// an `Arc<MemoryStore>`) and `Door::ids`
/// (every stored machine of the type, for sweeps),
/// `Door::spec()`, `Door::mermaid()` and `Door::dot()`.
///
/// State data must be `Debug + Clone + Serialize + Deserialize + Send + Sync` (states are
/// stored as JSON), event payloads `Debug + Send`. Names are generated from the machine's:
/// `Door`, `DoorState`, `DoorEvent`, `DoorContext`.
///
/// # Persisted machines
///
/// A [`PersistedMachine`] keeps the state (serde JSON) and a version in a store with the
/// machine capability ([`MachineStore`]): the SQLite file the engine uses, many machines by id
/// in one file, or a [`MemoryStore`]. [`PersistedMachine::fire`] computes the next state, then
/// writes it with an append-only log row (from, event, to, time:
/// [`PersistedMachine::history`]) together, only if the machine is still at the version it
/// read (on SQLite, `UPDATE ... WHERE version = ?` and the log row in one transaction). A writer that
/// lost a race to another (task or process) writes nothing and gets
/// [`MachineError::Conflict`]: exactly one transition per version. Share the file with the
/// engine by opening the store first and the engine on it: `SqliteStore::engine`.
///
/// # Build-time errors
///
/// Each at the offending token, all reported together: an unknown state (with "did you
/// mean"), no initial state or two, two transitions on one state and event that no guard tells
/// apart, a guarded transition after an unguarded one on the same pair, an unreachable state,
/// a state with no way to a final state (when final states are declared), a transition out of
/// a final state, a declared event no transition uses, a state or event given two data types,
/// a target whose data nothing makes, a method used with two signatures or as two kinds of
/// hook, an unknown or repeated state option. Each has a case under `tests/ui/fsm/fail`.
///
/// ```compile_fail
/// sagaflow::fsm! {
///     Door {
///         *Closed + Open = Opened,
///         Opened + Close = Clsoed, // error: unknown state `Clsoed` ...; did you mean `Closed`?
///     }
/// }
/// ```
pub use sagaflow_macros::fsm;

/// The names most programs need.
pub mod prelude {
    #[cfg(feature = "postgres")]
    pub use crate::PostgresEngine;
    #[cfg(feature = "sqlite")]
    pub use crate::SqliteEngine;
    pub use crate::{
        Engine, OnError, Report, RunError, RunId, SagaOutcome, SagaStatus, StepContext, StepError,
        StepStatus,
    };
    pub use crate::{fsm, saga, workflow};
}

/// What the macros' generated code names. Not public API: it may change in any release.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The README's examples, compiled and run as doctests so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
