//! Building a saga: its forward steps on a core [`Builder`], and beside them, for each step
//! that has one, its compensation.
//!
//! A compensation is registered with the same dependencies as its step and receives, on top
//! of the step's inputs, the step's output: "what its forward step received and what it
//! returned". Types are checked here exactly as for steps, so a compensation whose signature
//! does not fit is a type error at the call.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::StepOptions;
use sagaflow_core::policy::RetryPolicy;
use sagaflow_core::runtime::{
    BorrowingCall, BorrowingGuard, Builder, Codec, Definition, Dep, Deps, Handle, Name,
    StepContext, StepError, StepValue,
};

use crate::definition::SagaDefinition;
use crate::error::SagaDefinitionError;
use crate::inner::{SagaInner, StepInfo, UndoDef, UndoFn, UndoFuture};

/// Builds a [`SagaDefinition`]: what `saga!` expands to, and usable by hand.
///
/// ```
/// use std::sync::Arc;
/// use sagaflow_core::StepOptions;
/// use sagaflow_core::runtime::{StepContext, StepError};
/// use sagaflow_saga::SagaBuilder;
///
/// async fn charge(_: &StepContext, cents: &u64) -> Result<String, StepError> {
///     Ok(format!("ch_{cents}"))
/// }
/// async fn refund(_: &StepContext, _cents: &u64, charge: &str) -> Result<(), StepError> {
///     assert!(charge.starts_with("ch_"));
///     Ok(())
/// }
///
/// let mut b = SagaBuilder::<u64>::new("Order");
/// let input = b.input();
/// let charged = b.step("charge", StepOptions::new(), (input,), |ctx, (cents,)| async move {
///     charge(&ctx, &cents).await
/// });
/// b.undo(charged, "refund", StepOptions::new(), (input,), |ctx, (cents,), out: Arc<String>| async move {
///     refund(&ctx, &cents, &out).await
/// });
/// let saga = b.build();
/// assert!(saga.problems().is_empty());
/// ```
pub struct SagaBuilder<I> {
    name: String,
    inner: Builder<I>,
    builder_id: u64,
    defaults: StepOptions,
    steps: Vec<StepInfo>,
    undos: Vec<Option<UndoDef>>,
    deadline: Option<Duration>,
    problems: Vec<SagaDefinitionError>,
    _input: PhantomData<fn(I)>,
}

impl<I: StepValue> SagaBuilder<I> {
    /// A builder for the saga called `name`.
    pub fn new(name: impl Into<Name>) -> Self {
        let name: Name = name.into();
        let inner = Builder::new(name.clone());
        let builder_id = inner.input().builder();
        Self {
            name: name.to_string(),
            inner,
            builder_id,
            defaults: StepOptions::new(),
            steps: Vec::new(),
            undos: Vec::new(),
            deadline: None,
            problems: Vec::new(),
            _input: PhantomData,
        }
    }

    /// The saga's input, to pass to the steps that take it.
    pub fn input(&self) -> Handle<I> {
        self.inner.input()
    }

    /// Options for every step and compensation that does not set its own. Set them before
    /// adding steps: each step takes the defaults in force when it is added.
    pub fn defaults(&mut self, defaults: StepOptions) -> &mut Self {
        self.defaults = defaults;
        self
    }

    /// Time allowed for the whole saga: when it runs out before the pivot, the saga is
    /// cancelled and compensated; past the pivot, it goes on. It counts from the run's first
    /// start as the store recorded it (by the wall clock of the process that started it), so
    /// a saga taken up after a restart has only what was left of it.
    pub fn deadline(&mut self, deadline: Duration) -> &mut Self {
        self.deadline = Some(deadline);
        self
    }

    /// Adds a step that receives `deps` and runs `f` on each attempt (see
    /// [`Builder::step`]). Past a pivot, the step is retried until it succeeds: its policy's
    /// attempts are unlimited, its deadline is dropped and its permanent errors are retried.
    pub fn step<D, F, Fut, O, E>(
        &mut self,
        name: impl Into<Name>,
        options: StepOptions,
        deps: D,
        f: F,
    ) -> Handle<O>
    where
        D: Deps,
        F: Fn(StepContext, D::Values) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: StepValue,
        E: Into<StepError>,
    {
        let name = name.into();
        let (options, forward_only) = self.enter(&name, &options, &deps, false);
        if forward_only {
            let f = retry_forever(f);
            self.inner.step(name, options, deps, f)
        } else {
            self.inner.step(name, options, deps, f)
        }
    }

    /// Adds a step that runs only when `guard` returns `true` (see [`Builder::step_when`]).
    pub fn step_when<D, G, F, Fut, O, E>(
        &mut self,
        name: impl Into<Name>,
        options: StepOptions,
        deps: D,
        guard: G,
        f: F,
    ) -> Handle<O>
    where
        D: Deps,
        G: Fn(D::Values) -> bool + Send + Sync + 'static,
        F: Fn(StepContext, D::Values) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: StepValue,
        E: Into<StepError>,
    {
        let name = name.into();
        let (options, forward_only) = self.enter(&name, &options, &deps, false);
        if forward_only {
            let f = retry_forever(f);
            self.inner.step_when(name, options, deps, guard, f)
        } else {
            self.inner.step_when(name, options, deps, guard, f)
        }
    }

    /// Adds the saga's pivot: the point of no return. A failure before it (or of it) is
    /// compensated; every step after it is retried until it succeeds, and none of them may
    /// have a compensation.
    pub fn pivot<D, F, Fut, O, E>(
        &mut self,
        name: impl Into<Name>,
        options: StepOptions,
        deps: D,
        f: F,
    ) -> Handle<O>
    where
        D: Deps,
        F: Fn(StepContext, D::Values) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: StepValue,
        E: Into<StepError>,
    {
        let name = name.into();
        let (options, forward_only) = self.enter(&name, &options, &deps, true);
        if forward_only {
            let f = retry_forever(f);
            self.inner.step(name, options, deps, f)
        } else {
            self.inner.step(name, options, deps, f)
        }
    }

    /// Adds a step whose call borrows its context and inputs, run only when `guard` (if
    /// given) returns `true` (see [`Builder::step_borrowing`]): what `saga!` expands to. Past
    /// a pivot, it is retried until it succeeds, as [`step`](Self::step) says.
    pub fn step_borrowing<D, O>(
        &mut self,
        name: impl Into<Name>,
        options: StepOptions,
        deps: D,
        guard: Option<BorrowingGuard<D>>,
        call: BorrowingCall<D, O>,
    ) -> Handle<O>
    where
        D: Deps + 'static,
        O: StepValue,
    {
        self.borrowing(name, options, deps, guard, call, false)
    }

    /// Adds the saga's pivot, its call borrowing its context and inputs (see
    /// [`pivot`](Self::pivot) and [`Builder::step_borrowing`]).
    pub fn pivot_borrowing<D, O>(
        &mut self,
        name: impl Into<Name>,
        options: StepOptions,
        deps: D,
        call: BorrowingCall<D, O>,
    ) -> Handle<O>
    where
        D: Deps + 'static,
        O: StepValue,
    {
        self.borrowing(name, options, deps, None, call, true)
    }

    fn borrowing<D, O>(
        &mut self,
        name: impl Into<Name>,
        options: StepOptions,
        deps: D,
        guard: Option<BorrowingGuard<D>>,
        call: BorrowingCall<D, O>,
        is_pivot: bool,
    ) -> Handle<O>
    where
        D: Deps + 'static,
        O: StepValue,
    {
        let name = name.into();
        let (options, forward_only) = self.enter(&name, &options, &deps, is_pivot);
        self.inner
            .step_borrowing_with(name, options, deps, guard, call, forward_only)
    }

    /// Declares `undo` the compensation of `step`: if a later step fails, it runs with the
    /// step's inputs (`deps` must be the step's own, in order) and the step's output. It is
    /// a durable step of its own, with its own `options` (retry policy).
    pub fn undo<D, O, U, UFut, T, UE>(
        &mut self,
        step: Handle<O>,
        name: &str,
        options: StepOptions,
        deps: D,
        undo: U,
    ) where
        D: Deps,
        O: StepValue,
        U: Fn(StepContext, D::Values, Arc<O>) -> UFut + Send + Sync + 'static,
        UFut: Future<Output = Result<T, UE>> + Send + 'static,
        T: Send + 'static,
        UE: Into<StepError>,
    {
        let undo_name = name.to_owned();
        let call: Arc<UndoFn> = Arc::new(move |ctx, values, output| {
            let inputs = D::take(values).ok_or_else(|| wrong_inputs(&undo_name))?;
            let output = output
                .and_then(|o| o.downcast::<O>().ok())
                .ok_or_else(|| missing_output(&undo_name))?;
            let fut = undo(ctx, inputs, output);
            Ok(Box::pin(async move { fut.await.map(drop).map_err(Into::into) }) as UndoFuture)
        });
        self.register(step, name, options, &deps, false, call);
    }

    /// Like [`undo`](Self::undo), for a compensation that is safe to run when the step's
    /// outcome is unknown: it also runs for a step that was started but did not complete
    /// (interrupted by a crash, failed, cancelled), and then receives `None` for the output.
    pub fn undo_on_unknown<D, O, U, UFut, T, UE>(
        &mut self,
        step: Handle<O>,
        name: &str,
        options: StepOptions,
        deps: D,
        undo: U,
    ) where
        D: Deps,
        O: StepValue,
        U: Fn(StepContext, D::Values, Option<Arc<O>>) -> UFut + Send + Sync + 'static,
        UFut: Future<Output = Result<T, UE>> + Send + 'static,
        T: Send + 'static,
        UE: Into<StepError>,
    {
        let undo_name = name.to_owned();
        let call: Arc<UndoFn> = Arc::new(move |ctx, values, output| {
            let inputs = D::take(values).ok_or_else(|| wrong_inputs(&undo_name))?;
            let output = match output {
                None => None,
                Some(o) => Some(o.downcast::<O>().map_err(|_| wrong_inputs(&undo_name))?),
            };
            let fut = undo(ctx, inputs, output);
            Ok(Box::pin(async move { fut.await.map(drop).map_err(Into::into) }) as UndoFuture)
        });
        self.register(step, name, options, &deps, true, call);
    }

    /// Finishes a saga whose run produces no output (`()`).
    pub fn build(self) -> SagaDefinition<I, ()> {
        let (parts, inner) = self.split();
        parts.finish(inner.build())
    }

    /// Finishes a saga whose run produces the output of `output`.
    pub fn build_with_output<O: StepValue>(self, output: Handle<O>) -> SagaDefinition<I, O> {
        let (parts, inner) = self.split();
        parts.finish(inner.build_with_output(output))
    }

    fn split(self) -> (Parts, Builder<I>) {
        (
            Parts {
                name: self.name,
                steps: self.steps,
                undos: self.undos,
                deadline: self.deadline,
                problems: self.problems,
            },
            self.inner,
        )
    }

    /// Records a new step; returns its options (the defaults applied, and for a step past a
    /// pivot, unlimited attempts and no deadline) and whether it is past a pivot.
    fn enter<D: Deps>(
        &mut self,
        name: &str,
        options: &StepOptions,
        deps: &D,
        is_pivot: bool,
    ) -> (StepOptions, bool) {
        let inputs: Vec<usize> = deps.slots().into_iter().map(|(slot, _, _)| slot).collect();
        let after = inputs
            .iter()
            .filter_map(|&slot| slot.checked_sub(1).and_then(|i| self.steps.get(i)))
            .find_map(|s| s.pivot.clone());
        if is_pivot && let Some(first) = &after {
            self.problems.push(SagaDefinitionError::TwoPivots {
                first: first.clone(),
                second: name.to_owned(),
            });
        }
        let mut options = options_or(options, &self.defaults);
        let pivot = if is_pivot {
            Some(name.to_owned())
        } else {
            after.clone()
        };
        let forward_only = after.is_some();
        self.steps.push(StepInfo {
            name: name.to_owned(),
            inputs,
            pivot,
            is_pivot,
        });
        self.undos.push(None);
        if forward_only {
            let policy = options.retry.unwrap_or_default();
            options.retry = Some(RetryPolicy {
                maximum_attempts: 0,
                ..policy
            });
            options.deadline = None;
        }
        (options, forward_only)
    }

    fn register<D: Deps>(
        &mut self,
        step: Handle<impl StepValue>,
        name: &str,
        options: StepOptions,
        deps: &D,
        on_unknown: bool,
        call: Arc<UndoFn>,
    ) {
        let slot = Dep::slot(&step);
        let index = match slot.checked_sub(1) {
            Some(index) if Dep::builder(&step) == self.builder_id && index < self.steps.len() => {
                index
            }
            _ => {
                self.problems.push(SagaDefinitionError::ForeignStep {
                    undo: name.to_owned(),
                });
                return;
            }
        };
        let info = &self.steps[index];
        let inputs: Vec<usize> = deps.slots().into_iter().map(|(slot, _, _)| slot).collect();
        if inputs != info.inputs {
            self.problems.push(SagaDefinitionError::UndoInputs {
                step: info.name.clone(),
            });
            return;
        }
        if info.is_pivot {
            self.problems.push(SagaDefinitionError::UndoOnPivot {
                step: info.name.clone(),
            });
            return;
        }
        if let Some(pivot) = &info.pivot {
            self.problems.push(SagaDefinitionError::UndoAfterPivot {
                step: info.name.clone(),
                pivot: pivot.clone(),
            });
            return;
        }
        let entry = &mut self.undos[index];
        if entry.is_some() {
            self.problems.push(SagaDefinitionError::DuplicateUndo {
                step: info.name.clone(),
            });
            return;
        }
        // A compensation takes the saga's defaults for what it may set itself: its retry
        // policy and time limits, not `on_error`, `when` or `at_most_once`.
        let defaults = StepOptions {
            retry: self.defaults.retry,
            timeout: self.defaults.timeout,
            deadline: self.defaults.deadline,
            ..StepOptions::new()
        };
        *entry = Some(UndoDef {
            name: name.to_owned(),
            options: options_or(&options, &defaults),
            on_unknown,
            call,
        });
    }
}

/// The builder's own parts, once the core builder is taken out to finish the forward graph.
struct Parts {
    name: String,
    steps: Vec<StepInfo>,
    undos: Vec<Option<UndoDef>>,
    deadline: Option<Duration>,
    problems: Vec<SagaDefinitionError>,
}

impl Parts {
    fn finish<I: StepValue, O: StepValue>(self, forward: Definition<I, O>) -> SagaDefinition<I, O> {
        let mut problems: Vec<SagaDefinitionError> = match forward.erased().graph() {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().cloned().map(Into::into).collect(),
        };
        problems.extend(self.problems);
        SagaDefinition::new(
            forward,
            Arc::new(SagaInner {
                name: self.name,
                steps: self.steps,
                undos: self.undos,
                deadline: self.deadline,
                problems,
                input_codec: Codec::of::<I>(),
            }),
        )
    }
}

/// `own`, with `defaults` for what it leaves unset.
fn options_or(own: &StepOptions, defaults: &StepOptions) -> StepOptions {
    own.or(defaults)
}

/// Wraps a step past the pivot so that its permanent errors are retried too: there is no
/// going back, so the only way is forward.
fn retry_forever<V, F, Fut, O, E>(
    f: F,
) -> impl Fn(StepContext, V) -> Pin<Box<dyn Future<Output = Result<O, StepError>> + Send>>
+ Send
+ Sync
+ 'static
where
    F: Fn(StepContext, V) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    O: Send + 'static,
    E: Into<StepError>,
{
    move |ctx, values| {
        let fut = f(ctx, values);
        Box::pin(async move { fut.await.map_err(|e| e.into().into_transient()) })
    }
}

fn wrong_inputs(undo: &str) -> StepError {
    StepError::permanent(format!(
        "internal: compensation `{undo}` received inputs of the wrong type or number"
    ))
}

fn missing_output(undo: &str) -> StepError {
    StepError::permanent(format!(
        "internal: compensation `{undo}` was called without its step's output"
    ))
}
