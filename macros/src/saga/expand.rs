//! Writes the Rust for a checked saga: a unit struct whose `definition()` wires the user's
//! functions into typed `SagaBuilder` calls, steps in topological order, each compensation
//! right after its step.
//!
//! The forward steps are wired exactly as `workflow!` wires them (same closures, same spans).
//! A compensation receives the same values as its step plus the step's output, and every one
//! of its arguments is spanned on the compensation as written, so that a signature that does
//! not fit is reported there, with rustc's note pointing at the compensation's function.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::workflow::ast::WorkflowInput;
use crate::workflow::expand::{Items, Target, duration, expand_as, handle, options, wiring};

use super::model::{SagaModel, Undo};

/// What `saga!` writes around its forward steps.
pub(crate) const SAGA: Target = Target {
    kind: "saga",
    definition: "SagaDefinition",
    builder: "SagaBuilder",
    step: "saga_step",
    step_when: "saga_step_when",
    pivot: "saga_pivot",
    items,
};

pub(crate) fn expand(input: &WorkflowInput, model: &SagaModel) -> TokenStream {
    let p = quote!(::sagaflow::__private);
    let has_input = input.header.input.is_some();
    let deadline = model.deadline.map(|d| {
        let d = duration(&p, d);
        quote!(__builder.deadline(#d);)
    });
    expand_as(
        input,
        &model.forward,
        &SAGA,
        deadline.unwrap_or_default(),
        &|index| model.pivots[index].is_some(),
        &mut |index| {
            let undo = model.undos[index].as_ref()?;
            Some(compensation(model, index, undo, has_input))
        },
    )
}

/// `__private::saga_undo(...)` for the compensation of step `index`: the step's own
/// dependencies, and a closure (a `__private::UndoCall`) that calls the compensation with the
/// step's inputs and its output.
fn compensation(model: &SagaModel, index: usize, undo: &Undo, has_input: bool) -> TokenStream {
    let p = quote!(::sagaflow::__private);
    let span = undo.path.span();
    let var = handle(index);
    let undo_name = &undo.name;
    let path = &undo.path;
    let wiring = wiring(&model.forward, index, has_input, Some(span));
    let deps = &wiring.deps;
    let values = &wiring.values;
    let args = &wiring.args;
    let options = options(&p, &undo.options);
    let (method, out) = if undo.on_unknown {
        (
            quote!(saga_undo_on_unknown),
            quote_spanned!(span=> __out.as_deref()),
        )
    } else {
        (quote!(saga_undo), quote_spanned!(span=> &**__out))
    };
    let call =
        quote_spanned!(span=> ::sagaflow::__private::Box::pin(#path(__ctx, #(#args,)* #out)));
    let closure = quote_spanned!(span=> |__ctx, #values, __out| #call);
    quote! {
        #p::#method(&mut __builder, #var, #undo_name, #options, #deps, #closure);
    }
}

/// The items shared with the fallback: everything but `definition()`.
fn items(items: &Items<'_>) -> TokenStream {
    let p = quote!(::sagaflow::__private);
    let (vis, name_str, output_ty) = (items.vis, &items.name, &items.output_ty);
    let (param, arg) = (&items.param, &items.arg);
    let result = |t: TokenStream| quote!(::core::result::Result<#t, #p::SagaError>);
    let handle = result(quote!(#p::SagaHandle<#output_ty>));
    let run_id = quote!(run_id: impl ::core::convert::Into<#p::RunId>);
    let recovered = result(quote!(#p::RecoveredSagas<#output_ty>));
    let status = result(quote!(#p::SagaStatus));
    quote! {
        /// The saga's name, as recorded with each run.
        #vis const NAME: &'static str = #name_str;

        /// Starts a saga run with id `run_id` on `engine`, or takes up the run that already
        /// has this id: the id is the run's idempotency key. The engine must keep step
        /// outputs (`Engine::open`, `Engine::in_memory`): a failure is compensated
        /// from them.
        #vis async fn start(engine: &#p::Engine, #run_id #param) -> #handle {
            Self::definition().start(engine, run_id, #arg).await
        }

        /// Puts a saga run with id `run_id` on a queue instead of running it here: an engine
        /// that serves the queue and registered this saga runs it, and compensates it if it
        /// fails (see `SagaDefinition::enqueue`).
        #vis async fn enqueue(
            engine: &#p::Engine,
            #run_id #param,
            on: &#p::Enqueue,
        ) -> ::core::result::Result<#p::RunId, #p::SagaError> {
            Self::definition().enqueue(engine, run_id, #arg, on).await
        }

        /// Waits until the saga run `run_id` has ended, wherever it runs, and gives its
        /// handle, whose `wait` is its outcome (see `SagaDefinition::wait_for`).
        #vis async fn wait_for(engine: &#p::Engine, #run_id) -> #handle {
            Self::definition().wait_for(engine, run_id).await
        }

        /// Takes up the saga run `run_id` wherever it stands: its forward steps, its
        /// compensation, or its outcome if it has ended.
        #vis async fn resume(engine: &#p::Engine, #run_id) -> #handle {
            Self::definition().resume(engine, run_id).await
        }

        /// Takes up every saga run of this saga that has not ended, as a service does at
        /// start-up after a crash. Stuck sagas are left for an operator.
        #vis async fn recover(engine: &#p::Engine) -> #recovered {
            Self::definition().recover(engine).await
        }

        /// Tells `engine` it can run this saga: it then takes up by itself, for its life,
        /// the saga runs another replica left (see `SagaDefinition::register`).
        #vis fn register(engine: &#p::Engine) -> ::core::result::Result<(), #p::SagaError> {
            Self::definition().register(engine)
        }

        /// Where the saga run `run_id` stands, as the store has it.
        #vis async fn status(engine: &#p::Engine, #run_id) -> #status {
            Self::definition().status(engine, run_id).await
        }

        /// Runs again the compensations a stuck saga run has left, from the one that got
        /// stuck.
        #vis async fn retry(engine: &#p::Engine, #run_id) -> #handle {
            Self::definition().retry(engine, run_id).await
        }

        /// Skips the compensation a stuck saga run is stuck on (its effect is left for a
        /// person to undo) and runs the ones left.
        #vis async fn skip(engine: &#p::Engine, #run_id) -> #handle {
            Self::definition().skip(engine, run_id).await
        }

        /// Gives up on a stuck saga run: no further compensation runs, and it ends
        /// `Abandoned`.
        #vis async fn abandon(engine: &#p::Engine, #run_id) -> #handle {
            Self::definition().abandon(engine, run_id).await
        }

        /// The forward graph as a mermaid flowchart.
        #vis fn mermaid() -> #p::String {
            Self::definition().mermaid()
        }

        /// The forward graph in Graphviz DOT.
        #vis fn dot() -> #p::String {
            Self::definition().dot()
        }
    }
}
