//! What `fsm!` emits when the DSL has errors: the errors, plus the machine's items (the
//! struct, the state and event enums with every variant mentioned, the context trait and the
//! inherent functions) with bodies that never run, so the user's other uses of the machine
//! still type-check and the DSL's errors are the only ones reported.

use proc_macro2::TokenStream;
use quote::quote;

use super::ast::FsmInput;
use super::expand::expand;
use super::model::Model;

pub(crate) fn fallback(input: &FsmInput, model: &Model, errors: syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let items = expand(input, model, true);
    quote! {
        #errors
        #items
    }
}
