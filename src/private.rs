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
//! of the expansion's body but the user's own `async fn`'s. A step's call borrows its context
//! and its inputs from the engine, which keeps them while the attempt runs
//! (`Builder::step_borrowing`): the boxed future (`call`) is the attempt's one
//! allocation, and no input's reference count is taken. A compensation's call borrows values
//! that a coroutine written once here, generically, owns. Every argument the user's function
//! receives is still written in the expansion, spanned on the edge, so rustc checks each
//! edge's types there as before.

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
    BorrowingCall, BorrowingGuard, Builder, Call, Definition, Deps, Engine, EngineError, Enqueue,
    Handle, Name, Recovered, RunHandle, RunId, StepContext, StepError, StepValue,
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

/// The future of one call of a user's compensation function, boxed.
pub type CallFuture<'a, O, E> = Pin<Box<dyn Future<Output = Result<O, E>> + Send + 'a>>;

/// One attempt of a step: the user's function called on the attempt's context and the step's
/// inputs, borrowed (`&T`, or `Option<&T>`), its future boxed once in a [`Call`].
pub type StepCall<D, O> = BorrowingCall<D, O>;

/// A step's `when` guard, called on the step's inputs, borrowed.
pub type GuardCall<D> = BorrowingGuard<D>;

/// One attempt of a compensation: the user's function called on the step's inputs and the
/// step's output (`Arc<O>`, or `Option<Arc<O>>` for `undo_on_unknown`), borrowed.
pub type UndoCall<D, X, T, E> =
    for<'a> fn(&'a StepContext, &'a <D as Deps>::Values, &'a X) -> CallFuture<'a, T, E>;

/// The future of one call of a step's function: boxed once, typed by its output.
pub fn call<'a, O, E>(future: impl Future<Output = Result<O, E>> + Send + 'a) -> Call<'a, O>
where
    O: StepValue,
    E: Into<StepError>,
{
    Call::new(future)
}

/// The adapters of the builders' step methods, for the macros' expansions: `step`, say, is
/// `builder.step_borrowing(name, options, deps, None, call)` for `workflow!`. A step's name is
/// the macro's literal, kept as written ([`Name::from_static`]): a run's report clones it
/// without a reference count.
macro_rules! step_adapters {
    ($(
        $adapter:ident($builder:ident, $macro:literal, $call:ident $(, $guard:ident)?)
            => $method:ident($($arg:expr),*);
    )*) => {
        $(
            #[doc = concat!("`builder.", stringify!($method), "(…)` for `", $macro, "`.")]
            pub fn $adapter<I: StepValue, D: Deps + 'static, O: StepValue>(
                builder: &mut $builder<I>,
                name: &'static str,
                options: StepOptions,
                deps: D,
                $($guard: GuardCall<D>,)?
                $call: StepCall<D, O>,
            ) -> Handle<O> {
                builder.$method(Name::from_static(name), options, deps, $($arg),*)
            }
        )*
    };
}

step_adapters! {
    step(Builder, "workflow!", call) => step_borrowing(None, call);
    step_when(Builder, "workflow!", call, guard) => step_borrowing(Some(guard), call);
    saga_step(SagaBuilder, "saga!", call) => step_borrowing(None, call);
    saga_step_when(SagaBuilder, "saga!", call, guard) => step_borrowing(Some(guard), call);
    saga_pivot(SagaBuilder, "saga!", call) => pivot_borrowing(call);
}

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
