//! A workflow definition: the graph plus, for each step, a type-erased call of the user's
//! function.
//!
//! The [`Builder`] is where types are checked. Each step is added with typed [`Handle`]s of its
//! inputs and a closure; the closure's argument types come from the handles and its output type
//! becomes the new step's handle, so rustc checks every edge. Once built, values travel as
//! `Arc<dyn Any>` and each step downcasts its inputs, which cannot fail for a definition the
//! builder accepted.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::graph::{Graph, GraphSpec};
use crate::policy::StepOptions;
use crate::runtime::context::StepContext;
use crate::runtime::error::{DefinitionError, StepError};

mod inputs;
mod name;
mod plan;

pub use inputs::{BorrowingCall, BorrowingGuard, Call, Dep, Deps, Handle, Optional};
pub use name::Name;
pub(crate) use plan::{Plan, plan};

/// What a step may return and receive: owned, thread-safe, and serializable so the durable
/// store can checkpoint it.
pub trait StepValue: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> StepValue for T {}

/// A type-erased value: the workflow input or a step's output.
pub type Value = Arc<dyn Any + Send + Sync>;

/// The future of one attempt of a step. It may borrow, for `'a`, the attempt's context and
/// the step's inputs, which the engine keeps while the attempt runs.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, StepError>> + Send + 'a>>;

/// One attempt's call: given the attempt's context (a step that owns its context takes it
/// from the slot; one that borrows it leaves it there) and the step's inputs.
type CallFn = dyn for<'a> Fn(
        &'a mut Option<StepContext>,
        &'a [Option<Value>],
    ) -> Result<StepFuture<'a>, StepError>
    + Send
    + Sync;
type GuardFn = dyn Fn(&[Option<Value>]) -> Result<bool, StepError> + Send + Sync;

/// A closure as a [`CallFn`]: passed through a function bound by the signature, so that the
/// closure's future is known to borrow what the call lends it.
fn erase_call<F>(call: F) -> Arc<CallFn>
where
    F: for<'a> Fn(
            &'a mut Option<StepContext>,
            &'a [Option<Value>],
        ) -> Result<StepFuture<'a>, StepError>
        + Send
        + Sync
        + 'static,
{
    Arc::new(call)
}

/// Turns a step's output into JSON and back, for the store.
#[derive(Clone, Copy)]
pub struct Codec {
    /// Encodes a value of the step's output type.
    pub encode: fn(&(dyn Any + Send + Sync)) -> Result<String, String>,
    /// Decodes JSON into a value of the step's output type.
    pub decode: fn(&str) -> Result<Value, String>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl Codec {
    /// The codec of values of type `T`.
    pub fn of<T: StepValue>() -> Self {
        Codec {
            encode: |value| match value.downcast_ref::<T>() {
                Some(v) => serde_json::to_string(v).map_err(|e| e.to_string()),
                None => Err(format!(
                    "the value is not a `{}`",
                    std::any::type_name::<T>()
                )),
            },
            decode: |text| {
                serde_json::from_str::<T>(text)
                    .map(|v| Arc::new(v) as Value)
                    .map_err(|e| e.to_string())
            },
        }
    }
}

/// One step of a built definition.
pub struct StepDef {
    pub(crate) name: Name,
    /// Value slots this step reads, in argument order. Slot 0 is the workflow input; slot
    /// `i + 1` is the output of step `i`.
    pub(crate) inputs: Vec<usize>,
    pub(crate) options: StepOptions,
    pub(crate) guard: Option<Arc<GuardFn>>,
    pub(crate) call: Arc<CallFn>,
    pub(crate) codec: Codec,
}

impl StepDef {
    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The step's name as the definition holds it, for a report to share.
    pub fn shared_name(&self) -> &Name {
        &self.name
    }

    /// The options in force (the step's own, then the workflow's defaults).
    pub fn options(&self) -> &StepOptions {
        &self.options
    }

    /// Value slots read, in argument order (0 is the workflow input, `i + 1` step `i`).
    pub fn inputs(&self) -> &[usize] {
        &self.inputs
    }

    /// Whether the step has a `when` guard.
    pub fn is_guarded(&self) -> bool {
        self.guard.is_some()
    }

    /// Whether the step may finish without an output (guarded, or `on_error = continue`).
    pub fn may_be_missing(&self) -> bool {
        crate::policy::may_be_missing(self.guard.is_some(), self.options.on_error).is_some()
    }

    /// Evaluates the guard on the step's inputs (`true` when there is none).
    pub fn guard(&self, inputs: &[Option<Value>]) -> Result<bool, StepError> {
        match &self.guard {
            Some(g) => g(inputs),
            None => Ok(true),
        }
    }

    /// Starts one attempt with the step's inputs, in argument order. The attempt's context is
    /// lent in `ctx`: a step that owns its context ([`Builder::step`]) takes it, one that
    /// borrows it ([`Builder::step_borrowing`]) leaves it there, and its future borrows it,
    /// as it may borrow `inputs`, for as long as it runs.
    pub fn call<'a>(
        &self,
        ctx: &'a mut Option<StepContext>,
        inputs: &'a [Option<Value>],
    ) -> Result<StepFuture<'a>, StepError> {
        (self.call)(ctx, inputs)
    }

    /// The step's output codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }
}

/// A workflow definition, type-erased: what the engine executes.
///
/// Aligned to 128 bytes, so that the counts of the `Arc` it is shared in, which every run
/// raises and lowers from whichever core runs it, are on a line of their own, apart from the
/// fields every step reads.
#[repr(align(128))]
pub struct ErasedDefinition {
    pub(crate) name: Name,
    pub(crate) graph: Result<Graph, Vec<DefinitionError>>,
    pub(crate) steps: Vec<StepDef>,
    /// The step whose output is the run's output.
    pub(crate) output: Option<usize>,
    /// What the engine derives from the definition, once rather than on every run.
    pub(crate) plan: std::sync::OnceLock<Plan>,
}

impl ErasedDefinition {
    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The workflow's name as the definition holds it, for a report to share.
    pub fn shared_name(&self) -> &Name {
        &self.name
    }

    /// The validated graph, or every problem of the definition.
    pub fn graph(&self) -> Result<&Graph, &[DefinitionError]> {
        self.graph.as_ref().map_err(Vec::as_slice)
    }

    /// The steps, in declaration order (the graph's node indexes).
    pub fn steps(&self) -> &[StepDef] {
        &self.steps
    }

    /// The step whose output is the run's output.
    pub fn output_step(&self) -> Option<usize> {
        self.output
    }
}

/// A workflow definition taking `I` and producing `O`.
pub struct Definition<I, O> {
    erased: Arc<ErasedDefinition>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Definition<I, O> {
    fn clone(&self) -> Self {
        Self {
            erased: Arc::clone(&self.erased),
            _types: PhantomData,
        }
    }
}

impl<I, O> Definition<I, O> {
    /// The type-erased definition the engine runs.
    pub fn erased(&self) -> &Arc<ErasedDefinition> {
        &self.erased
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.erased.name
    }

    /// The graph as a mermaid flowchart (empty if the definition is invalid).
    pub fn mermaid(&self) -> String {
        self.erased
            .graph
            .as_ref()
            .map(Graph::mermaid)
            .unwrap_or_default()
    }

    /// The graph in Graphviz DOT (empty if the definition is invalid).
    pub fn dot(&self) -> String {
        self.erased
            .graph
            .as_ref()
            .map(Graph::dot)
            .unwrap_or_default()
    }
}

pub use crate::graph::MAX_INPUTS;

fn wrong_inputs(step: &str) -> StepError {
    StepError::permanent(format!(
        "internal: step `{step}` received inputs of the wrong type or number"
    ))
}

fn no_context(step: &str) -> StepError {
    StepError::permanent(format!(
        "internal: step `{step}` was called without its attempt's context"
    ))
}

static NEXT_BUILDER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Builds a [`Definition`] step by step; what `workflow!` expands to, and usable by hand.
///
/// ```
/// use sagaflow_core::runtime::{Builder, StepContext, StepError};
/// use sagaflow_core::StepOptions;
///
/// async fn double(_: &StepContext, x: &u32) -> Result<u32, StepError> { Ok(x * 2) }
///
/// let mut b = Builder::<u32>::new("Double");
/// let input = b.input();
/// let out = b.step("double", StepOptions::new(), (input,), |ctx, (x,)| async move {
///     double(&ctx, &x).await
/// });
/// let def = b.build_with_output(out);
/// assert!(def.erased().graph().is_ok());
/// ```
pub struct Builder<I> {
    id: u64,
    name: Name,
    spec: GraphSpec,
    steps: Vec<StepDef>,
    defaults: StepOptions,
    problems: Vec<DefinitionError>,
    _input: PhantomData<fn(I)>,
}

impl<I: StepValue> Builder<I> {
    /// A builder for the workflow called `name`: any text (`&str`, `String`), copied once into
    /// the definition, or [`Name::from_static`], kept as written (see [`Name`]). The steps'
    /// names are given the same way.
    pub fn new(name: impl Into<Name>) -> Self {
        Self {
            id: NEXT_BUILDER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name: name.into(),
            spec: GraphSpec::new(),
            steps: Vec::new(),
            defaults: StepOptions::new(),
            problems: Vec::new(),
            _input: PhantomData,
        }
    }

    /// The workflow's input, to pass to the steps that take it.
    pub fn input(&self) -> Handle<I> {
        Handle {
            slot: 0,
            builder: self.id,
            _type: PhantomData,
        }
    }

    /// Options for every step that does not set its own.
    pub fn defaults(&mut self, defaults: StepOptions) -> &mut Self {
        self.defaults = defaults;
        self
    }

    /// Adds a step that receives `deps` and runs `f` on each attempt.
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
        self.add(name, options, deps, None, f)
    }

    /// Adds a step that runs only when `guard`, given the same inputs, returns `true`;
    /// otherwise it is skipped and its dependents receive `None`.
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
        let step = name.clone();
        let guard: Arc<GuardFn> = Arc::new(move |values: &[Option<Value>]| {
            let values = D::take(values).ok_or_else(|| wrong_inputs(&step))?;
            Ok(guard(values))
        });
        self.add(name, options, deps, Some(guard), f)
    }

    fn add<D, F, Fut, O, E>(
        &mut self,
        name: impl Into<Name>,
        options: StepOptions,
        deps: D,
        guard: Option<Arc<GuardFn>>,
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
        let step = name.clone();
        let call = erase_call(move |ctx, values| {
            let values = D::take(values).ok_or_else(|| wrong_inputs(&step))?;
            let ctx = ctx.take().ok_or_else(|| no_context(&step))?;
            let fut = f(ctx, values);
            Ok(Box::pin(async move {
                match fut.await {
                    Ok(out) => Ok(Arc::new(out) as Value),
                    Err(e) => Err(e.into()),
                }
            }) as StepFuture<'_>)
        });
        self.add_erased(name, options, &deps.slots(), guard, call, Codec::of::<O>())
    }

    /// Adds a step whose call borrows its context and its inputs (`&T` for a [`Handle`],
    /// `Option<&T>` for an [`Optional`]) rather than owning them, run only when `guard` (if
    /// given) returns `true`: what `workflow!` and `saga!` expand to. The call's future is
    /// the step's one allocation per attempt, and no input's reference count is taken.
    ///
    /// The call and the guard are function pointers: closures that capture nothing coerce
    /// to them, and their argument types come from `deps`, so rustc checks every edge.
    ///
    /// ```
    /// # use sagaflow_core::runtime::{Builder, Call, StepContext, StepError};
    /// # use sagaflow_core::policy::StepOptions;
    /// async fn double(_: &StepContext, x: &u32) -> Result<u32, StepError> {
    ///     Ok(x * 2)
    /// }
    /// let mut b = Builder::<u32>::new("W");
    /// let input = b.input();
    /// let doubled = b.step_borrowing("double", StepOptions::new(), (input,), None, |ctx, (x,)| {
    ///     Call::new(double(ctx, x))
    /// });
    /// let def = b.build_with_output(doubled);
    /// # assert!(def.erased().graph().is_ok());
    /// ```
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
        self.step_borrowing_with(name, options, deps, guard, call, false)
    }

    /// [`step_borrowing`](Self::step_borrowing), and, with `retry_every_error`, a step whose
    /// every error is retried, a permanent one included (a saga's steps past its pivot): its
    /// errors are marked transient as they come, which costs the attempt a second allocation.
    #[doc(hidden)]
    pub fn step_borrowing_with<D, O>(
        &mut self,
        name: impl Into<Name>,
        options: StepOptions,
        deps: D,
        guard: Option<BorrowingGuard<D>>,
        call: BorrowingCall<D, O>,
        retry_every_error: bool,
    ) -> Handle<O>
    where
        D: Deps + 'static,
        O: StepValue,
    {
        let name = name.into();
        let guard = guard.map(|guard| {
            let step = name.clone();
            Arc::new(move |values: &[Option<Value>]| {
                let values = D::borrow(values).ok_or_else(|| wrong_inputs(&step))?;
                Ok(guard(values))
            }) as Arc<GuardFn>
        });
        let step = name.clone();
        let call = erase_call(move |ctx, values| {
            let values = D::borrow(values).ok_or_else(|| wrong_inputs(&step))?;
            let ctx: &Option<StepContext> = ctx;
            let ctx = ctx.as_ref().ok_or_else(|| no_context(&step))?;
            let future = call(ctx, values).future;
            if !retry_every_error {
                return Ok(future);
            }
            Ok(
                Box::pin(async move { future.await.map_err(StepError::into_transient) })
                    as StepFuture<'_>,
            )
        });
        self.add_erased(name, options, &deps.slots(), guard, call, Codec::of::<O>())
    }

    /// Adds a step, its call erased: its inputs' slots are checked and become the graph's
    /// edges.
    fn add_erased<O>(
        &mut self,
        name: Name,
        options: StepOptions,
        slots: &[(usize, u64, bool)],
        guard: Option<Arc<GuardFn>>,
        call: Arc<CallFn>,
        codec: Codec,
    ) -> Handle<O> {
        let index = self.steps.len();
        self.spec.node(name.as_str());
        let mut inputs = Vec::new();
        for &(slot, builder, optional) in slots {
            if builder != self.id || slot > index {
                self.problems.push(DefinitionError::ForeignHandle {
                    step: name.to_string(),
                });
                continue;
            }
            if slot > 0 {
                let upstream = &self.steps[slot - 1];
                self.spec.edge(upstream.name.as_str(), name.as_str());
                let merged = upstream.options.or(&self.defaults);
                let missing =
                    crate::policy::may_be_missing(upstream.guard.is_some(), merged.on_error);
                if missing.is_some() && !optional {
                    self.problems.push(DefinitionError::RequiredOptional {
                        step: name.to_string(),
                        input: upstream.name.to_string(),
                    });
                }
            }
            inputs.push(slot);
        }
        if let Some(policy) = options.retry
            && let Err(source) = policy.validate()
        {
            self.problems.push(DefinitionError::Policy {
                step: name.to_string(),
                source,
            });
        }
        self.steps.push(StepDef {
            name,
            inputs,
            options,
            guard,
            call,
            codec,
        });
        Handle {
            slot: index + 1,
            builder: self.id,
            _type: PhantomData,
        }
    }

    /// Finishes a workflow whose run produces no output (`()`).
    pub fn build(self) -> Definition<I, ()> {
        self.finish(None)
    }

    /// Finishes a workflow whose run produces the output of `output`.
    pub fn build_with_output<O>(self, output: Handle<O>) -> Definition<I, O> {
        let slot = if output.builder == self.id && output.slot > 0 {
            Some(output.slot - 1)
        } else {
            None
        };
        let mut this = self;
        if slot.is_none() {
            this.problems.push(DefinitionError::ForeignHandle {
                step: "(output)".to_owned(),
            });
        }
        this.finish(slot)
    }

    fn finish<O>(mut self, output: Option<usize>) -> Definition<I, O> {
        for step in &mut self.steps {
            step.options = step.options.or(&self.defaults);
        }
        let graph = match self.spec.validate() {
            Ok(graph) if self.problems.is_empty() => Ok(graph),
            Ok(_) => Err(self.problems),
            Err(errors) => {
                let mut problems: Vec<DefinitionError> =
                    errors.into_iter().map(Into::into).collect();
                problems.extend(self.problems);
                Err(problems)
            }
        };
        Definition {
            erased: Arc::new(ErasedDefinition {
                name: self.name,
                graph,
                steps: self.steps,
                output,
                plan: std::sync::OnceLock::new(),
            }),
            _types: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn add_one(_: &StepContext, x: &u32) -> Result<u32, StepError> {
        Ok(x + 1)
    }

    #[tokio::test]
    async fn a_built_step_downcasts_its_inputs_and_erases_its_output() {
        let mut b = Builder::<u32>::new("W");
        let input = b.input();
        let one = b.step(
            "one",
            StepOptions::new(),
            (input,),
            |ctx, (x,)| async move { add_one(&ctx, &x).await },
        );
        let def = b.build_with_output(one);
        let erased = def.erased();
        assert!(erased.graph().is_ok());
        let step = &erased.steps()[0];
        assert_eq!(step.inputs(), &[0]);
        let mut ctx = Some(StepContext::new("r".into(), "one", 1));
        let out = step
            .call(&mut ctx, &[Some(Arc::new(41_u32) as Value)])
            .expect("inputs fit")
            .await
            .expect("step succeeds");
        assert!(ctx.is_none(), "a step that owns its context takes it");
        assert_eq!(out.downcast_ref::<u32>(), Some(&42));
        assert_eq!((step.codec().encode)(&*out).as_deref(), Ok("42"));
        let back = (step.codec().decode)("7").expect("decodes");
        assert_eq!(back.downcast_ref::<u32>(), Some(&7));
    }

    async fn maybe_add(_: &StepContext, x: &u32, y: Option<&u32>) -> Result<u32, StepError> {
        Ok(x + y.copied().unwrap_or(100))
    }

    #[tokio::test]
    async fn a_borrowing_step_reads_its_inputs_in_place_and_leaves_its_context() {
        let mut b = Builder::<u32>::new("W");
        let input = b.input();
        let one = b.step_borrowing("one", StepOptions::new(), (input,), None, |ctx, (x,)| {
            Call::new(add_one(ctx, x))
        });
        let two = b.step_borrowing(
            "two",
            StepOptions::new(),
            (input, one.optional()),
            Some(|(x, _)| *x > 0),
            |ctx, (x, y)| Call::new(maybe_add(ctx, x, y)),
        );
        let def = b.build_with_output(two);
        let steps = def.erased().steps();
        assert_eq!(steps[1].inputs(), &[0, 1]);

        let input = Arc::new(41_u32) as Value;
        let mut ctx = Some(StepContext::new("r".into(), "one", 1));
        let inputs = [Some(Arc::clone(&input))];
        let future = steps[0].call(&mut ctx, &inputs).expect("inputs fit");
        // Borrowed, not cloned: the input's count is the two above, while the future runs.
        assert_eq!(Arc::strong_count(&input), 2);
        let out = future.await.expect("step succeeds");
        assert_eq!(out.downcast_ref::<u32>(), Some(&42));
        assert!(
            ctx.is_some(),
            "a borrowing step leaves the context to the attempt"
        );

        // An optional input that is missing arrives as `None`; the guard reads the same.
        let inputs = [Some(Arc::new(1_u32) as Value), None];
        assert_eq!(steps[1].guard(&inputs), Ok(true));
        let out = steps[1].call(&mut ctx, &inputs).expect("inputs fit").await;
        assert_eq!(
            out.expect("step succeeds").downcast_ref::<u32>(),
            Some(&101)
        );
        let inputs = [
            Some(Arc::new(0_u32) as Value),
            Some(Arc::new(5_u32) as Value),
        ];
        assert_eq!(steps[1].guard(&inputs), Ok(false));
        let out = steps[1].call(&mut ctx, &inputs).expect("inputs fit").await;
        assert_eq!(out.expect("step succeeds").downcast_ref::<u32>(), Some(&5));

        // Inputs of the wrong type, or no context, are refused, not a panic.
        let wrong = [Some(Arc::new("text") as Value)];
        let refused = steps[0].call(&mut ctx, &wrong).err().expect("refused");
        assert!(
            refused
                .to_string()
                .contains("step `one` received inputs of the wrong type")
        );
        let mut none = None;
        let refused = steps[0]
            .call(&mut none, &inputs[..1])
            .err()
            .expect("refused");
        assert!(
            refused
                .to_string()
                .contains("without its attempt's context"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_step_retried_past_every_error_has_its_errors_marked_transient() {
        async fn refuse(_: &StepContext, _: &u32) -> Result<u32, StepError> {
            Err(StepError::permanent("no"))
        }
        let mut b = Builder::<u32>::new("W");
        let input = b.input();
        let plain = b.step_borrowing("plain", StepOptions::new(), (input,), None, |ctx, (x,)| {
            Call::new(refuse(ctx, x))
        });
        b.step_borrowing_with(
            "retried",
            StepOptions::new(),
            (input,),
            None,
            |ctx, (x,)| Call::new(refuse(ctx, x)),
            true,
        );
        let def = b.build_with_output(plain);
        let inputs = [Some(Arc::new(1_u32) as Value)];
        let mut ctx = Some(StepContext::new("r".into(), "plain", 1));
        let mut errors = Vec::new();
        for step in def.erased().steps() {
            let future = step.call(&mut ctx, &inputs).expect("inputs fit");
            errors.push(future.await.expect_err("the step fails"));
        }
        assert!(errors[0].is_permanent());
        assert!(!errors[1].is_permanent());
        assert_eq!(errors[1].to_string(), "no");
    }

    #[test]
    fn a_required_input_from_a_guarded_step_is_refused() {
        let mut b = Builder::<()>::new("W");
        let a = b.step_when(
            "a",
            StepOptions::new(),
            (),
            |()| true,
            |_, ()| async { Ok::<_, StepError>(1_u8) },
        );
        b.step("b", StepOptions::new(), (a,), |_, (_,)| async {
            Ok::<_, StepError>(())
        });
        let def = b.build();
        let problems = def.erased().graph().expect_err("invalid");
        assert_eq!(
            problems,
            &[DefinitionError::RequiredOptional {
                step: "b".into(),
                input: "a".into()
            }]
        );
    }

    #[test]
    fn a_handle_from_another_builder_is_refused() {
        let other = Builder::<u8>::new("Other").input();
        let mut b = Builder::<u8>::new("W");
        b.step("a", StepOptions::new(), (other,), |_, (_,)| async {
            Ok::<_, StepError>(())
        });
        assert!(matches!(
            def_problems(b.build()).as_slice(),
            [DefinitionError::ForeignHandle { .. }]
        ));
    }

    fn def_problems<I, O>(def: Definition<I, O>) -> Vec<DefinitionError> {
        def.erased()
            .graph()
            .err()
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }
}
