//! What `workflow!` and `saga!` emit when the DSL has errors: the errors, plus the same public
//! items with bodies that never run, so the user's other uses of the workflow still type-check
//! and the DSL errors are the only ones reported. Every function named (steps, compensations)
//! is referenced, so none is reported as unused either.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Path;

use super::ast::WorkflowInput;
use super::expand::{Target, definition};

pub(crate) fn fallback(
    input: &WorkflowInput,
    target: &Target,
    paths: &[Path],
    errors: syn::Error,
) -> TokenStream {
    let errors = errors.to_compile_error();
    let kind = target.kind;
    let doc = format!(" Stand-in: this {kind} did not compile.");
    let message = format!("the {kind} did not compile");
    let definition = definition(
        input,
        target,
        None,
        &doc,
        quote!(::core::unreachable!(#message)),
    );
    quote! {
        #errors

        #definition

        const _: () = {
            #( let _ = &#paths; )*
        };
    }
}
