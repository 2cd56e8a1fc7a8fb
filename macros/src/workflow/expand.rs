//! Writes the Rust for a checked workflow: a unit struct whose `definition()` wires the user's
//! functions into typed `Builder` calls.
//!
//! The generated code names only `::sagaflow::__private::…` and `::core::…`, uses
//! `__`-prefixed locals, and spans each call on the user's tokens: a type mismatch on an edge
//! is reported at the upstream step as written in the chain, with rustc's note pointing at the
//! user's function.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use sagaflow_graph::{OnError, RetryPolicy};

use super::ast::WorkflowInput;
use super::model::Model;
use crate::dsl::options::Options;

/// What `workflow!` and `saga!` write differently around the same steps: their definition and
/// builder types, the `__private` adapters their steps go through, and their associated items.
pub(crate) struct Target {
    /// `workflow` or `saga`, for the documentation written.
    pub(crate) kind: &'static str,
    /// The definition type in `__private`.
    pub(crate) definition: &'static str,
    /// The builder type in `__private`.
    pub(crate) builder: &'static str,
    /// The adapters in `__private` of a step, a guarded step and a pivot.
    pub(crate) step: &'static str,
    pub(crate) step_when: &'static str,
    pub(crate) pivot: &'static str,
    /// The associated items beside `definition()`, the same in the expansion and the fallback.
    pub(crate) items: fn(&Items<'_>) -> TokenStream,
}

/// What the associated items of a workflow or saga are written from.
pub(crate) struct Items<'a> {
    pub(crate) vis: &'a syn::Visibility,
    /// The workflow's name, as a string.
    pub(crate) name: String,
    pub(crate) output_ty: TokenStream,
    /// `, input: Input` after `start`'s run id, or nothing.
    pub(crate) param: TokenStream,
    /// What `start` passes on: `input`, or `()`.
    pub(crate) arg: TokenStream,
}

/// What `workflow!` writes.
pub(crate) const WORKFLOW: Target = Target {
    kind: "workflow",
    definition: "Definition",
    builder: "Builder",
    step: "step",
    step_when: "step_when",
    pivot: "step",
    items,
};

pub(crate) fn expand(input: &WorkflowInput, model: &Model) -> TokenStream {
    expand_as(
        input,
        model,
        &WORKFLOW,
        TokenStream::new(),
        &|_| false,
        &mut |_| None,
    )
}

/// The expansion of a checked workflow as `target`: `setup` runs on the builder before the
/// steps, a step `is_pivot` goes through the pivot adapter, and `after` writes what follows a
/// step's own statement (a saga's compensation).
pub(crate) fn expand_as(
    input: &WorkflowInput,
    model: &Model,
    target: &Target,
    setup: TokenStream,
    is_pivot: &dyn Fn(usize) -> bool,
    after: &mut dyn FnMut(usize) -> Option<TokenStream>,
) -> TokenStream {
    let p = quote!(::sagaflow::__private);
    let name_str = input.header.name.to_string();
    let has_input = input.header.input.is_some();
    let (input_ty, _) = types(input);
    let defaults = options(&p, &model.defaults);
    let ident = |name: &str| format_ident!("{}", name);
    let (builder, step_when) = (ident(target.builder), ident(target.step_when));

    let mut statements = Vec::new();
    for &index in model.graph.topological_order() {
        let step = &model.steps[index];
        let var = handle(index);
        let step_name = &step.name;
        let wiring = wiring(model, index, has_input, None);
        let closure = closure(input, model, index, &wiring);
        let options = options(&p, &step.options);
        let deps = &wiring.deps;
        let statement = match guard(model, index, &wiring) {
            Some(guard) => quote! {
                let #var = #p::#step_when(&mut __builder, #step_name, #options, #deps, #guard, #closure);
            },
            None => {
                let adapter = ident(if is_pivot(index) {
                    target.pivot
                } else {
                    target.step
                });
                quote! {
                    let #var = #p::#adapter(&mut __builder, #step_name, #options, #deps, #closure);
                }
            }
        };
        statements.push(statement);
        statements.extend(after(index));
    }

    let finish = finish(model.output_step, input.header.output.is_some());
    let definition_ty = definition_type(input, target);
    let doc = format!(
        " The {}'s definition, built on first use and shared after.",
        target.kind
    );
    let body = quote! {
        static __DEFINITION: #p::OnceLock<#definition_ty> = #p::OnceLock::new();
        ::core::clone::Clone::clone(__DEFINITION.get_or_init(|| {
            let mut __builder = #p::#builder::<#input_ty>::new(#p::Name::from_static(#name_str));
            __builder.defaults(#defaults);
            #setup
            let __input = __builder.input();
            let _ = __input;
            #(#statements)*
            #finish
        }))
    };
    definition(input, target, Some(&doc_graph(model)), &doc, body)
}

/// `__private::Definition<Input, Output>`, or the saga's.
fn definition_type(input: &WorkflowInput, target: &Target) -> TokenStream {
    let (input_ty, output_ty) = types(input);
    let definition = format_ident!("{}", target.definition);
    quote!(::sagaflow::__private::#definition<#input_ty, #output_ty>)
}

/// The struct `input` names and its items: `definition()`, documented `doc`, with `body`, and
/// `graph` (mermaid) in the struct's documentation.
pub(crate) fn definition(
    input: &WorkflowInput,
    target: &Target,
    graph: Option<&str>,
    doc: &str,
    body: TokenStream,
) -> TokenStream {
    let (name, vis, attrs) = (&input.header.name, &input.header.vis, &input.header.attrs);
    let (input_ty, output_ty) = types(input);
    let definition_ty = definition_type(input, target);
    let (param, arg) = if input.header.input.is_some() {
        (quote!(, input: #input_ty), quote!(input))
    } else {
        (quote!(), quote!(()))
    };
    let items = (target.items)(&Items {
        vis,
        name: name.to_string(),
        output_ty: output_ty.clone(),
        param,
        arg,
    });
    let graph = graph.map(|g| quote!(#[doc = ""] #[doc = #g]));
    quote! {
        #(#attrs)*
        #graph
        #vis struct #name;

        impl #name {
            #[doc = #doc]
            #vis fn definition() -> #definition_ty {
                #body
            }

            #items
        }
    }
}

/// The input and output types, `()` where none is declared.
pub(crate) fn types(input: &WorkflowInput) -> (TokenStream, TokenStream) {
    let input_ty = match &input.header.input {
        Some(t) => quote!(#t),
        None => quote!(()),
    };
    let output_ty = match &input.header.output {
        Some(t) => quote!(#t),
        None => quote!(()),
    };
    (input_ty, output_ty)
}

/// The graph as a mermaid block, for the generated type's documentation.
pub(crate) fn doc_graph(model: &Model) -> String {
    format!(
        " The graph, as mermaid:\n\n ```text\n{}```",
        model
            .graph
            .mermaid()
            .lines()
            .map(|l| format!(" {l}\n"))
            .collect::<String>()
    )
}

/// How one step is wired to its upstream values.
///
/// The step's closure is coerced to `__private::StepCall`: it captures nothing and receives
/// the context and the tuple of its inputs, borrowed, so that the expansion's body holds
/// no coroutine and no closure whose auto traits stay undecided until the body is checked
/// (that made type-checking quadratic in the steps; see `src/private.rs` in the facade).
pub(crate) struct Wiring {
    /// The handles it depends on, as a tuple: `(__step_0, __step_1.optional(),)`.
    pub(crate) deps: TokenStream,
    /// The closure's parameter for the tuple of their values: `__v`, or `_` when there is none.
    pub(crate) values: TokenStream,
    /// The arguments passed after the context, from the borrowed inputs a step's call and its
    /// guard receive: `__v.0, __v.1` (a `&T`, an `Option<&T>`).
    pub(crate) refs: Vec<TokenStream>,
    /// The same arguments from the values a compensation's call receives (a reference to the
    /// tuple of `Arc<T>` and `Option<Arc<T>>`): `&*__v.0, __v.1.as_deref()`.
    pub(crate) args: Vec<TokenStream>,
}

/// The wiring of step `index`. Each argument is spanned on `at` when given, else on the edge
/// as written (the step itself for the input), so that rustc's mismatch points there.
pub(crate) fn wiring(model: &Model, index: usize, has_input: bool, at: Option<Span>) -> Wiring {
    let step = &model.steps[index];
    let span = at.unwrap_or_else(|| step.path.span());
    if step.inputs.is_empty() {
        return if has_input {
            Wiring {
                deps: quote!((__input,)),
                values: quote!(__v),
                refs: vec![borrowed(span, 0)],
                args: vec![value(span, 0, false)],
            }
        } else {
            Wiring {
                deps: quote!(()),
                values: quote!(_),
                refs: Vec::new(),
                args: Vec::new(),
            }
        };
    }
    let mut deps = Vec::new();
    let mut refs = Vec::new();
    let mut args = Vec::new();
    for (k, input) in step.inputs.iter().enumerate() {
        let upstream = handle(input.step);
        let at = at.unwrap_or_else(|| input.written.span());
        let optional = model.may_be_missing(input.step);
        if optional {
            deps.push(quote!(#upstream.optional()));
        } else {
            deps.push(quote!(#upstream));
        }
        refs.push(borrowed(at, k));
        args.push(value(at, k, optional));
    }
    Wiring {
        deps: quote!((#(#deps,)*)),
        values: quote!(__v),
        refs,
        args,
    }
}

/// Input `k` of the borrowed inputs `__v` as the step's function takes it, spanned on `at`
/// (the edge as written), so that rustc's mismatch points at the upstream step in the chain
/// rather than at the whole macro: `__v.k`, a `&T`, or an `Option<&T>` for an input that may
/// be missing.
fn borrowed(at: Span, k: usize) -> TokenStream {
    let values = format_ident!("__v", span = at);
    let k = syn::Index {
        index: k as u32,
        span: at,
    };
    quote_spanned!(at=> #values.#k)
}

/// Input `k` of the values tuple `__v` as the step's function takes it, spanned on `at` (the
/// edge as written), so that rustc's mismatch points at the upstream step in the chain rather
/// than at the whole macro: `&*__v.k`, or `__v.k.as_deref()` for an input that may be missing.
fn value(at: Span, k: usize, optional: bool) -> TokenStream {
    let values = format_ident!("__v", span = at);
    let k = syn::Index {
        index: k as u32,
        span: at,
    };
    if optional {
        quote_spanned!(at=> #values.#k.as_deref())
    } else {
        quote_spanned!(at=> &*#values.#k)
    }
}

/// The closure that calls step `index`'s function on each attempt, a `__private::StepCall`.
pub(crate) fn closure(
    input: &WorkflowInput,
    model: &Model,
    index: usize,
    wiring: &Wiring,
) -> TokenStream {
    let step = &model.steps[index];
    let span = step.path.span();
    let path = &step.path;
    let args = &wiring.refs;
    let values = &wiring.values;
    // Written out rather than through `p`, so that every token of the call is spanned on the
    // step and a mismatch of its future (the run's output) is reported there.
    // The run's output step names the output type, so that a mismatch is reported on the
    // step as the future's output against the type declared.
    let body = match (&input.header.output, model.output_step) {
        (Some(out), Some(o)) if o == index => {
            quote_spanned!(span=> ::sagaflow::__private::call::<#out, _>(#path(__ctx, #(#args),*)))
        }
        _ => quote_spanned!(span=> ::sagaflow::__private::call(#path(__ctx, #(#args),*))),
    };
    quote_spanned!(span=> |__ctx, #values| #body)
}

/// The guard closure of step `index`, when it has a `when` guard: a `__private::GuardCall`.
pub(crate) fn guard(model: &Model, index: usize, wiring: &Wiring) -> Option<TokenStream> {
    let guard = model.steps[index].options.when.as_ref()?;
    let at = guard.span();
    let args = &wiring.refs;
    let values = &wiring.values;
    let guard_call = quote_spanned!(at=> #guard(#(#args),*));
    Some(quote!(|#values| #guard_call))
}

/// The items shared with the fallback: everything but `definition()`.
fn items(items: &Items<'_>) -> TokenStream {
    let p = quote!(::sagaflow::__private);
    let (vis, name_str, output_ty) = (items.vis, &items.name, &items.output_ty);
    let (param, arg) = (&items.param, &items.arg);
    quote! {
        /// The workflow's name, as recorded with each run.
        #vis const NAME: &'static str = #name_str;

        /// Starts a run with id `run_id` on `engine`, or returns the run that already has this
        /// id: the id is the run's idempotency key.
        #vis async fn start(
            engine: &#p::Engine,
            run_id: impl ::core::convert::Into<#p::RunId>
            #param
        ) -> ::core::result::Result<#p::RunHandle<#output_ty>, #p::EngineError> {
            engine.start(&Self::definition(), run_id, #arg).await
        }

        /// Puts a run with id `run_id` on a queue instead of running it here: an engine
        /// that serves the queue runs it (see `Engine::enqueue`). The id is the run's
        /// idempotency key.
        #vis async fn enqueue(
            engine: &#p::Engine,
            run_id: impl ::core::convert::Into<#p::RunId>
            #param,
            on: &#p::Enqueue,
        ) -> ::core::result::Result<#p::RunId, #p::EngineError> {
            engine.enqueue(&Self::definition(), run_id, #arg, on).await
        }

        /// Waits until the run `run_id` has finished, wherever it runs, and gives its handle,
        /// whose `wait` is its stored outcome (see `Engine::wait_for`).
        #vis async fn wait_for(
            engine: &#p::Engine,
            run_id: impl ::core::convert::Into<#p::RunId>,
        ) -> ::core::result::Result<#p::RunHandle<#output_ty>, #p::EngineError> {
            engine.wait_for(&Self::definition(), run_id).await
        }

        /// Takes up the run `run_id` that an earlier process started: its ended steps are
        /// not run again (see `Engine::resume`).
        #vis async fn resume(
            engine: &#p::Engine,
            run_id: impl ::core::convert::Into<#p::RunId>,
        ) -> ::core::result::Result<#p::RunHandle<#output_ty>, #p::EngineError> {
            engine.resume(&Self::definition(), run_id).await
        }

        /// Takes up every unfinished run of this workflow in the engine's store, as a service
        /// does at start-up after a crash (see `Engine::recover`).
        #vis async fn recover(
            engine: &#p::Engine,
        ) -> ::core::result::Result<#p::Recovered<#output_ty>, #p::EngineError> {
            engine.recover(&Self::definition()).await
        }

        /// Tells `engine` it can run this workflow: it then takes up by itself, for its
        /// life, the runs of this workflow's graph that another replica left (see
        /// `Engine::register`).
        #vis fn register(engine: &#p::Engine) -> ::core::result::Result<(), #p::EngineError> {
            engine.register(&Self::definition())
        }

        /// The graph as a mermaid flowchart.
        #vis fn mermaid() -> #p::String {
            Self::definition().mermaid()
        }

        /// The graph in Graphviz DOT.
        #vis fn dot() -> #p::String {
            Self::definition().dot()
        }
    }
}

pub(crate) fn handle(index: usize) -> syn::Ident {
    format_ident!("__step_{}", index, span = Span::call_site())
}

/// `d` as an expression: seconds and nanoseconds, as `Duration` holds them, so that no
/// duration is cut to fit a single count (the parser bounds them anyway, at its token).
pub(crate) fn duration(p: &TokenStream, d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(#p::Duration::new(#secs, #nanos))
}

fn some_duration(p: &TokenStream, d: Option<std::time::Duration>) -> TokenStream {
    match d {
        Some(d) => {
            let d = duration(p, d);
            quote!(::core::option::Option::Some(#d))
        }
        None => quote!(::core::option::Option::None),
    }
}

pub(crate) fn options(p: &TokenStream, o: &Options) -> TokenStream {
    let retry = match o.retry {
        Some(RetryPolicy {
            initial_interval,
            backoff_coefficient,
            maximum_interval,
            maximum_attempts,
            jitter,
        }) => {
            let initial = duration(p, initial_interval);
            let max = some_duration(p, maximum_interval);
            quote!(::core::option::Option::Some(#p::RetryPolicy {
                initial_interval: #initial,
                backoff_coefficient: #backoff_coefficient,
                maximum_interval: #max,
                maximum_attempts: #maximum_attempts,
                jitter: #jitter,
            }))
        }
        None => quote!(::core::option::Option::None),
    };
    let timeout = some_duration(p, o.timeout);
    let deadline = some_duration(p, o.deadline);
    let on_error = match o.on_error {
        Some(OnError::Continue) => quote!(::core::option::Option::Some(#p::OnError::Continue)),
        Some(OnError::Fail) => quote!(::core::option::Option::Some(#p::OnError::Fail)),
        None => quote!(::core::option::Option::None),
    };
    let at_most_once = match o.at_most_once {
        Some(b) => quote!(::core::option::Option::Some(#b)),
        None => quote!(::core::option::Option::None),
    };
    quote!(#p::StepOptions {
        retry: #retry,
        timeout: #timeout,
        deadline: #deadline,
        on_error: #on_error,
        at_most_once: #at_most_once,
    })
}

/// The builder's last call: with the output step's handle when the macro declares an output.
pub(crate) fn finish(output_step: Option<usize>, has_output: bool) -> TokenStream {
    match output_step {
        Some(o) if has_output => {
            let var = handle(o);
            quote!(__builder.build_with_output(#var))
        }
        _ => quote!(__builder.build()),
    }
}
