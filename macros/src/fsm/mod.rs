//! `fsm!`: parse (`ast`), resolve and check (`model`, and its `graph`), expand (`expand`), and on
//! errors a `fallback` that declares the same items so that only the DSL's errors show.

mod ast;
mod expand;
mod fallback;
mod model;

use proc_macro2::TokenStream;

use crate::dsl::ctxt::Errors;

pub(crate) fn fsm(tokens: TokenStream) -> TokenStream {
    let input: ast::FsmInput = match syn::parse2(tokens) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    for e in &input.errors {
        errors.push(e.clone());
    }
    let model = model::build(&input, &mut errors);
    match errors.finish() {
        Ok(()) => expand::expand(&input, &model, false),
        Err(e) => fallback::fallback(&input, &model, e),
    }
}
