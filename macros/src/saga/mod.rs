//! `saga!`: parse, check, expand (see the crate docs for the stages). The forward graph is a
//! workflow's, checked by `workflow!`'s model; the saga's own rules (compensations, pivots)
//! are checked on top.

mod ast;
mod expand;
mod model;
mod valid;

use proc_macro2::TokenStream;

use crate::dsl::ctxt::Errors;
use crate::workflow::fallback::fallback;

pub(crate) fn saga(tokens: TokenStream) -> TokenStream {
    let input: ast::SagaInput = match syn::parse2(tokens) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let (model, mentioned) = model::resolve(&input, &mut errors);
    if let Some(model) = &model {
        valid::validate(model, &mut errors);
    }
    let model = model.filter(|_| errors.is_empty());
    match (model, errors.finish()) {
        (Some(model), Ok(())) => expand::expand(&input.forward, &model),
        (_, Err(e)) => fallback(&input.forward, &expand::SAGA, &mentioned, e),
        (None, Ok(())) => fallback(
            &input.forward,
            &expand::SAGA,
            &mentioned,
            syn::Error::new(
                input.forward.header.name.span(),
                "this saga could not be checked",
            ),
        ),
    }
}
