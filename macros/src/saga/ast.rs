//! The syntax of `saga!`, parsed but not yet understood.
//!
//! A saga's body is a workflow's body whose chain elements carry two marks: `step / undo`
//! names the step's compensation, and `step!` marks the pivot. The parser strips the marks
//! into [`Element`]s and keeps the plain chains as a [`WorkflowInput`], so the forward graph
//! is checked by `workflow!`'s own model. Statements are split on `;` first, so a mistake in
//! one is reported and the others are still read.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Path, Token, bracketed, token};

use crate::workflow::ast::{
    Dsl, Header, Link, OptionStatement, Statement, WorkflowInput, option_statement,
    split_statements, step_path,
};
use crate::workflow::options::RawOption;

/// The option a saga's step takes on top of a workflow step's.
pub(crate) const UNDO_ON_UNKNOWN: &str = "undo_on_unknown";

/// The options a saga's step takes: a workflow step's ([`STEP_OPTIONS`], kept in step by a
/// test), and one more.
///
/// [`STEP_OPTIONS`]: crate::workflow::options::STEP_OPTIONS
const SAGA_STEP_OPTIONS: &[&str] = &[
    "retry",
    "timeout",
    "deadline",
    "on_error",
    "when",
    "at_most_once",
    UNDO_ON_UNKNOWN,
];

/// The words of `saga!`.
pub(crate) const SAGA: Dsl = Dsl {
    kind: "saga",
    invocation: "saga! { pub Order(Cart) { charge / refund -> ship } }",
    body: "Order(Cart) { charge / refund -> ship }",
    chain: "charge / refund -> ship;",
    step_options: SAGA_STEP_OPTIONS,
};

/// A parsed `saga!`.
pub(crate) struct SagaInput {
    /// The header, the chains without their marks, and (once [`partition`](Self::partition)
    /// has run) the options statements whose target is a step or `defaults`.
    pub(crate) forward: WorkflowInput,
    /// Every chain element, marks included, in the order written.
    pub(crate) elements: Vec<Element>,
    /// Options statements whose target is not a step: compensations, and unknown names.
    pub(crate) other_options: Vec<OptionStatement>,
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
    Chain(Vec<Vec<Element>>),
    Options(OptionStatement),
    Settings(Vec<RawOption>),
}

/// The name of a step or compensation: its path's last segment, without `r#`.
pub(crate) fn name_of(path: &Path) -> String {
    path.segments
        .last()
        .map(|s| s.ident.to_string().trim_start_matches("r#").to_owned())
        .unwrap_or_default()
}

impl Parse for SagaInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let header = Header::parse(input, &SAGA)?;
        let mut statements = Vec::new();
        let mut elements = Vec::new();
        let mut other_options = Vec::new();
        let mut settings = Vec::new();
        let mut errors = Vec::new();
        for chunk in split_statements(header.body) {
            match SagaStatement::parse.parse2(chunk) {
                Ok(SagaStatement::Chain(links)) => {
                    let plain = links
                        .iter()
                        .map(|link| Link {
                            members: link.iter().map(|e| e.path.clone()).collect(),
                        })
                        .collect();
                    statements.push(Statement::Chain(plain));
                    elements.extend(links.into_iter().flatten());
                }
                Ok(SagaStatement::Options(o)) => other_options.push(o),
                Ok(SagaStatement::Settings(s)) => settings.extend(s),
                Err(e) => errors.push(e),
            }
        }
        Ok(SagaInput {
            forward: WorkflowInput {
                attrs: header.attrs,
                vis: header.vis,
                name: header.name,
                input: header.input,
                output: header.output,
                brace: header.brace,
                statements,
                errors,
            },
            elements,
            other_options,
            settings,
        })
    }
}

impl SagaInput {
    /// Moves the options statements that name a step (or `defaults`) to the forward input,
    /// where `workflow!`'s model reads them; the others stay for the saga's model.
    pub(crate) fn partition(&mut self) {
        let steps: Vec<String> = self.elements.iter().map(|e| name_of(&e.path)).collect();
        let (forward, other): (Vec<_>, Vec<_>) = std::mem::take(&mut self.other_options)
            .into_iter()
            .partition(|o| {
                let target = o.target.to_string();
                let target = target.trim_start_matches("r#");
                target == "defaults" || steps.iter().any(|s| s == target)
            });
        self.forward
            .statements
            .extend(forward.into_iter().map(Statement::Options));
        self.other_options = other;
    }
}

impl Parse for SagaStatement {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if is_setting(input) {
            let settings: Punctuated<RawOption, Token![,]> = Punctuated::parse_terminated(input)?;
            return Ok(SagaStatement::Settings(settings.into_iter().collect()));
        }
        let first = if input.peek(token::Bracket) {
            group(input)?
        } else {
            let path = step_path(input)?;
            if input.peek(Token![:]) && !input.peek(Token![::]) {
                return option_statement(path, input).map(SagaStatement::Options);
            }
            vec![marks(path, input)?]
        };
        let mut links = vec![first];
        while !input.is_empty() {
            if !input.peek(Token![->]) {
                return Err(input.error(
                    "expected `->` to chain the next step, `/` and its compensation, `!` to mark the pivot, or `;` to end the statement",
                ));
            }
            input.parse::<Token![->]>()?;
            if input.is_empty() {
                return Err(input.error("expected a step after `->`"));
            }
            links.push(if input.peek(token::Bracket) {
                group(input)?
            } else {
                vec![element(input)?]
            });
        }
        Ok(SagaStatement::Chain(links))
    }
}

/// `name = value`: a saga-wide setting.
fn is_setting(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    fork.call(Ident::parse_any).is_ok()
        && fork.peek(Token![=])
        && !fork.peek(Token![==])
        && !fork.peek(Token![=>])
}

fn group(input: ParseStream<'_>) -> syn::Result<Vec<Element>> {
    let content;
    let brackets = bracketed!(content in input);
    let members: Punctuated<Element, Token![,]> = content.parse_terminated(element, Token![,])?;
    if members.is_empty() {
        return Err(syn::Error::new(
            brackets.span.join(),
            "an empty group: list the parallel steps, as in `[reserve / release, notify]`",
        ));
    }
    Ok(members.into_iter().collect())
}

fn element(input: ParseStream<'_>) -> syn::Result<Element> {
    let path = step_path(input)?;
    marks(path, input)
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
    use crate::workflow::options::STEP_OPTIONS;

    #[test]
    fn saga_options_extend_the_workflow_options() {
        assert_eq!(&SAGA_STEP_OPTIONS[..STEP_OPTIONS.len()], STEP_OPTIONS);
    }

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
        assert_eq!(input.other_options.len(), 1);
    }
}
