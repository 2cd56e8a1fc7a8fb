//! `fsm!`: in progress.

use proc_macro2::TokenStream;

pub(crate) fn fsm(input: TokenStream) -> TokenStream {
    syn::Error::new_spanned(input, "fsm! is not implemented yet").to_compile_error()
}
