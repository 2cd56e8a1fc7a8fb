//! `workflow!`: parse, check, expand (see the crate docs for the stages).

pub(crate) mod ast;
pub(crate) mod expand;
pub(crate) mod fallback;
pub(crate) mod model;

use proc_macro2::TokenStream;

use crate::dsl::ctxt::Errors;

pub(crate) fn workflow(tokens: TokenStream) -> TokenStream {
    let input: ast::WorkflowInput = match syn::parse2(tokens) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    for e in &input.errors {
        errors.push(e.clone());
    }
    let (model, mentioned) = model::build(&input, &mut errors);
    match (model, errors.finish()) {
        (Some(model), Ok(())) => expand::expand(&input, &model),
        (_, Err(e)) => fallback::fallback(&input, &expand::WORKFLOW, &mentioned, e),
        (None, Ok(())) => fallback::fallback(
            &input,
            &expand::WORKFLOW,
            &mentioned,
            syn::Error::new(
                input.header.name.span(),
                "this workflow could not be checked",
            ),
        ),
    }
}
