//! `workflow!`: parse, check, expand (see the crate docs for the stages).

pub(crate) mod ast;
pub(crate) mod expand;
pub(crate) mod fallback;
pub(crate) mod model;
mod valid;

use proc_macro2::TokenStream;

use syn::Path;

use crate::dsl::chain::OptionStatement;
use crate::dsl::ctxt::Errors;
use crate::dsl::header::Dsl;

/// Resolves `input` (see [`model::resolve`]), then checks it ([`valid::validate`]) with the
/// messages and step options of the macro `dsl` (`saga!` checks its forward graph here). The
/// model is returned whenever the graph itself is valid, even when other errors were found,
/// so that the caller can go on checking it and report everything at once; it must not be
/// expanded unless `errors` is empty. Also returns every path named, for the fallback.
pub(crate) fn check<'i>(
    input: &'i ast::WorkflowInput,
    dsl: &Dsl,
    others: Option<&mut Vec<&'i OptionStatement>>,
    errors: &mut Errors,
) -> (Option<model::Model>, Vec<Path>) {
    let (resolved, mentioned) = model::resolve(input, dsl, others, errors);
    (valid::validate(input, dsl, resolved, errors), mentioned)
}

pub(crate) fn workflow(tokens: TokenStream) -> TokenStream {
    let input: ast::WorkflowInput = match syn::parse2(tokens) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    for e in &input.errors {
        errors.push(e.clone());
    }
    let (model, mentioned) = check(&input, &ast::WORKFLOW, None, &mut errors);
    let model = model.filter(|_| errors.is_empty());
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
