//! What `saga!` emits when the DSL has errors: the errors, plus the same public items with
//! bodies that never run, so the user's other uses of the saga still type-check and the DSL
//! errors are the only ones reported. Every step and compensation named is referenced, so
//! none is reported as unused either.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Path;

use crate::workflow::ast::WorkflowInput;
use crate::workflow::expand::types;

use super::expand::items;

pub(crate) fn fallback(input: &WorkflowInput, paths: &[Path], errors: syn::Error) -> TokenStream {
    let p = quote!(::sagaflow::__private);
    let errors = errors.to_compile_error();
    let name = &input.name;
    let vis = &input.vis;
    let attrs = &input.attrs;
    let (input_ty, output_ty) = types(input);
    let items = items(input, &input_ty, &output_ty, input.input.is_some());
    quote! {
        #errors

        #(#attrs)*
        #vis struct #name;

        impl #name {
            /// Stand-in: this saga did not compile.
            #vis fn definition() -> #p::SagaDefinition<#input_ty, #output_ty> {
                ::core::unreachable!("the saga did not compile")
            }

            #items
        }

        const _: () = {
            #( let _ = &#paths; )*
        };
    }
}
