//! The syntax of `saga!`, parsed but not yet understood.
//!
//! A saga's body is a workflow's body whose chain elements carry two marks: `step / undo`
//! names the step's compensation, and `step!` marks the pivot. The parser strips the marks
//! into [`Element`]s and keeps the plain chains as a [`WorkflowInput`], so the forward graph
//! is checked by `workflow!`'s own model. Statements are split on `;` first, so a mistake in
//! one is reported and the others are still read.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Path, Token};

use crate::dsl::chain::{self, Members, Statement};
use crate::dsl::header::{Dsl, Header};
use crate::dsl::options::RawOption;
use crate::workflow::ast::WorkflowInput;

/// The option a saga's step takes on top of a workflow step's.
pub(crate) const UNDO_ON_UNKNOWN: &str = "undo_on_unknown";

/// The words of `saga!`.
pub(crate) const SAGA: Dsl = Dsl {
    kind: "saga",
    invocation: "saga! { pub Order(Cart) { charge / refund -> ship } }",
    body: "Order(Cart) { charge / refund -> ship }",
    chain: "charge / refund -> ship;",
    group: "[reserve / release, notify]",
    after_step: "expected `->` to chain the next step, `/` and its compensation, `!` to mark the pivot, or `;` to end the statement",
    extra_step_options: &[UNDO_ON_UNKNOWN],
};

/// A saga's chain members are steps with their marks.
const ELEMENTS: Members<Element> = Members { after_path: marks };

/// A parsed `saga!`.
pub(crate) struct SagaInput {
    /// The header, the chains without their marks and every options statement: the forward
    /// graph, which `workflow!`'s model checks. The options statements whose target is not a
    /// step (a compensation's) are handed back by that model, not sorted here.
    pub(crate) forward: WorkflowInput,
    /// Every chain element, marks included, in the order written.
    pub(crate) elements: Vec<Element>,
    /// Saga-wide settings: `deadline = 10m`.
    pub(crate) settings: Vec<RawOption>,
}

/// One step as written in a chain, with its marks.
pub(crate) struct Element {
    pub(crate) path: Path,
    /// `step!`: the pivot.
    pub(crate) pivot: Option<Token![!]>,
    pub(crate) undo: Option<UndoMark>,
}

/// `/ undo`, and a misplaced `!` after it.
pub(crate) struct UndoMark {
    pub(crate) slash: Token![/],
    pub(crate) path: Path,
    pub(crate) bang: Option<Token![!]>,
}

/// One statement of a saga.
enum SagaStatement {
    Statement(Statement<Element>),
    Settings(Vec<RawOption>),
}

impl Parse for SagaInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let (header, body) = Header::parse(input, &SAGA)?;
        let (parsed, errors) = chain::statements(body, saga_statement);
        let mut statements = Vec::new();
        let mut elements = Vec::new();
        let mut settings = Vec::new();
        for statement in parsed {
            match statement {
                SagaStatement::Statement(Statement::Chain(links)) => {
                    let plain = links
                        .iter()
                        .map(|link| link.iter().map(|e| e.path.clone()).collect())
                        .collect();
                    statements.push(Statement::Chain(plain));
                    elements.extend(links.into_iter().flatten());
                }
                SagaStatement::Statement(Statement::Options(o)) => {
                    statements.push(Statement::Options(o));
                }
                SagaStatement::Settings(s) => settings.extend(s),
            }
        }
        Ok(SagaInput {
            forward: WorkflowInput {
                header,
                statements,
                errors,
            },
            elements,
            settings,
        })
    }
}

fn saga_statement(input: ParseStream<'_>) -> syn::Result<SagaStatement> {
    if is_setting(input) {
        let settings: Punctuated<RawOption, Token![,]> = Punctuated::parse_terminated(input)?;
        return Ok(SagaStatement::Settings(settings.into_iter().collect()));
    }
    chain::statement(input, &SAGA, &ELEMENTS).map(SagaStatement::Statement)
}

/// `name = value`: a saga-wide setting.
fn is_setting(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    fork.call(Ident::parse_any).is_ok()
        && fork.peek(Token![=])
        && !fork.peek(Token![==])
        && !fork.peek(Token![=>])
}

/// The marks after a step's path: `!`, then `/ undo`, then a (misplaced) `!`.
fn marks(path: Path, input: ParseStream<'_>) -> syn::Result<Element> {
    let pivot = if input.peek(Token![!]) && !input.peek(Token![!=]) {
        Some(input.parse()?)
    } else {
        None
    };
    let undo = if input.peek(Token![/]) {
        let slash = input.parse()?;
        let path = Path::parse_mod_style(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the step's compensation after `/` (the path of an async fn), as in `charge / refund`",
            )
        })?;
        let bang = if input.peek(Token![!]) && !input.peek(Token![!=]) {
            Some(input.parse()?)
        } else {
            None
        };
        Some(UndoMark { slash, path, bang })
    } else {
        None
    };
    Ok(Element { path, pivot, undo })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::chain::name_of;

    #[test]
    fn marks_are_parsed() {
        let input: SagaInput = syn::parse_quote! {
            pub Deploy(u32) { a / undo_a -> [b, c / undo_c] -> d! -> e; deadline = 10m; a: retry; }
        };
        let marks: Vec<(String, bool, Option<String>)> = input
            .elements
            .iter()
            .map(|e| {
                (
                    name_of(&e.path),
                    e.pivot.is_some(),
                    e.undo.as_ref().map(|u| name_of(&u.path)),
                )
            })
            .collect();
        assert_eq!(marks.len(), 5);
        assert_eq!(marks[0], ("a".to_owned(), false, Some("undo_a".to_owned())));
        assert_eq!(marks[3], ("d".to_owned(), true, None));
        assert_eq!(input.settings.len(), 1);
        let options = input
            .forward
            .statements
            .iter()
            .filter(|s| matches!(s, Statement::Options(_)))
            .count();
        assert_eq!(options, 1);
    }
}
