//! The macros of sagaflow. Use them through the `sagaflow` crate, which documents them and
//! provides the runtime the generated code calls.
//!
//! Each macro is split in stages, one file each: `ast` parses the tokens, `model` resolves
//! names and checks the graph with the same code the engine uses at run time, `expand` writes
//! the Rust, and `fallback` writes stand-in items when there are errors so that a mistake in
//! the DSL shows as one error, not a cascade of rustc errors.

mod ctxt;
mod fsm;
mod saga;
mod workflow;

use proc_macro::TokenStream;

/// Declares a workflow: a DAG of async functions. Documented in the `sagaflow` crate.
#[proc_macro]
pub fn workflow(input: TokenStream) -> TokenStream {
    workflow::workflow(input.into()).into()
}

/// Declares a saga: a workflow whose steps are undone, newest first, when a later one fails.
/// Documented in the `sagaflow` crate.
#[proc_macro]
pub fn saga(input: TokenStream) -> TokenStream {
    saga::saga(input.into()).into()
}

/// Declares a typed state machine. Documented in the `sagaflow` crate.
#[proc_macro]
pub fn fsm(input: TokenStream) -> TokenStream {
    fsm::fsm(input.into()).into()
}
