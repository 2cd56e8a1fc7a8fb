//! `saga!`: in progress.

use proc_macro2::TokenStream;

pub(crate) fn saga(input: TokenStream) -> TokenStream {
    syn::Error::new_spanned(input, "saga! is not implemented yet").to_compile_error()
}
