//! # Why the step calls go through the functions here
//!
//! `workflow!` and `saga!` expand to one function body that adds every step to a builder. If
//! each step were added with a closure returning an `async` block, as one writes by hand, that
//! body would hold one closure and one coroutine per step, and rustc type-checks a body's
//! closures and coroutines together: the auto-trait obligations on each of them (`Send`,
//! `Sync`, and the coroutines' own) stay pending until the whole body is checked, and every
//! later step works through all of them again. Type-checking the expansion was quadratic in the
//! steps (10.9 s of a 13.2 s `cargo check` for 1,000 steps; `benches/README.md`).
//!
//! So the generated closures capture nothing and are coerced to the function pointers below
//! (`StepCall`, `GuardCall`, `UndoCall`), whose types are fully known at once; they
//! call the user's function on borrowed values and box its future, which is not a coroutine
//! of the expansion's body but the user's own `async fn`'s. The one coroutine per step that
//! owns the values the call borrows is written once, here, generically. Every argument the
//! user's function receives is still written in the expansion, spanned on the edge, so rustc
//! checks each edge's types there as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use ::std::boxed::Box;
pub use ::std::string::String;
pub use ::std::sync::OnceLock;
pub use ::std::time::Duration;
pub use ::std::vec::Vec;
pub use sagaflow_core::policy::{OnError, RetryPolicy, StepOptions};
pub use sagaflow_core::runtime::{
    Builder, Definition, Deps, Engine, EngineError, Enqueue, Handle, Recovered, RunHandle, RunId,
    StepContext, StepError, StepValue,
};
pub use sagaflow_saga::{
    RecoveredSagas, SagaBuilder, SagaDefinition, SagaError, SagaHandle, SagaStatus,
};

/// What `fsm!`'s generated code names of the state-machine runtime, and nothing else of it.
pub mod fsm {
    pub use sagaflow_fsm::serde;
    pub use sagaflow_fsm::transition;
    pub use sagaflow_fsm::{
        ActionError, Fsm, Machine, MachineError, MachineStore, PersistedMachine, Spec, StateSpec,
        Step, StoreError, Transition, TransitionError, TransitionErrorKind, TransitionSpec,
    };
}

/// The future of one call of a user's step function, boxed.
pub type CallFuture<'a, O, E> = Pin<Box<dyn Future<Output = Result<O, E>> + Send + 'a>>;

/// One attempt of a step: the user's function called on the step's inputs, borrowed.
pub type StepCall<D, O, E> =
    for<'a> fn(&'a StepContext, &'a <D as Deps>::Values) -> CallFuture<'a, O, E>;

/// A step's `when` guard, called on the step's inputs, borrowed.
pub type GuardCall<D> = for<'a> fn(&'a <D as Deps>::Values) -> bool;

/// One attempt of a compensation: the user's function called on the step's inputs and the
/// step's output (`Arc<O>`, or `Option<Arc<O>>` for `undo_on_unknown`), borrowed.
pub type UndoCall<D, X, T, E> =
    for<'a> fn(&'a StepContext, &'a <D as Deps>::Values, &'a X) -> CallFuture<'a, T, E>;

/// The adapters of one builder's step methods: each passes the builder's method of the same
/// name a closure that owns what the call (and the guard) borrows.
macro_rules! step_adapters {
    ($builder:ident, $macro:literal: $($method:ident as $adapter:ident),* ; $($when:ident as $when_adapter:ident)?) => {
        $(
            #[doc = concat!("`builder.", stringify!($method), "(…)` for `", $macro, "`.")]
            pub fn $adapter<I, D, O, E>(
                builder: &mut $builder<I>,
                name: &str,
                options: StepOptions,
                deps: D,
                call: StepCall<D, O, E>,
            ) -> Handle<O>
            where
                I: StepValue,
                D: Deps,
                O: StepValue,
                E: Into<StepError> + 'static,
            {
                builder.$method(name, options, deps, move |ctx, values| async move {
                    call(&ctx, &values).await
                })
            }
        )*
        $(
            #[doc = concat!("`builder.", stringify!($when), "(…)` for `", $macro, "`.")]
            pub fn $when_adapter<I, D, O, E>(
                builder: &mut $builder<I>,
                name: &str,
                options: StepOptions,
                deps: D,
                guard: GuardCall<D>,
                call: StepCall<D, O, E>,
            ) -> Handle<O>
            where
                I: StepValue,
                D: Deps,
                O: StepValue,
                E: Into<StepError> + 'static,
            {
                builder.$when(
                    name,
                    options,
                    deps,
                    move |values| guard(&values),
                    move |ctx, values| async move { call(&ctx, &values).await },
                )
            }
        )?
    };
}

step_adapters!(Builder, "workflow!": step as step; step_when as step_when);
step_adapters!(SagaBuilder, "saga!": step as saga_step, pivot as saga_pivot; step_when as saga_step_when);

/// The adapters of `SagaBuilder`'s compensation methods; `$output` is what the compensation
/// receives of the step's output.
macro_rules! undo_adapters {
    ($($method:ident as $adapter:ident with $output:ty),*) => {
        $(
            #[doc = concat!("`builder.", stringify!($method), "(…)` for `saga!`.")]
            pub fn $adapter<I, D, O, T, E>(
                builder: &mut SagaBuilder<I>,
                step: Handle<O>,
                name: &str,
                options: StepOptions,
                deps: D,
                call: UndoCall<D, $output, T, E>,
            ) where
                I: StepValue,
                D: Deps,
                O: StepValue,
                T: Send + 'static,
                E: Into<StepError> + 'static,
            {
                builder.$method(step, name, options, deps, move |ctx, values, output| async move {
                    call(&ctx, &values, &output).await
                });
            }
        )*
    };
}

undo_adapters!(undo as saga_undo with Arc<O>, undo_on_unknown as saga_undo_on_unknown with Option<Arc<O>>);
