//! What every macro's input starts with, `#[attrs] vis Name(Input) -> Output { .. }`, and the
//! words each macro's messages use ([`Dsl`]).

use proc_macro2::TokenStream;
use syn::parse::ParseStream;
use syn::{Attribute, Ident, Token, Type, Visibility, parenthesized, token};

/// The words a macro's messages use, so that `workflow!` and `saga!` share their parser and
/// checks but each speaks of itself.
pub(crate) struct Dsl {
    /// `workflow` or `saga`.
    pub(crate) kind: &'static str,
    /// A whole invocation, for the message on a missing name.
    pub(crate) invocation: &'static str,
    /// A name and body, for the message on a missing body.
    pub(crate) body: &'static str,
    /// A chain statement, for the message on an empty body.
    pub(crate) chain: &'static str,
    /// A group, for the message on an empty one.
    pub(crate) group: &'static str,
    /// What may follow a step in a chain, for the message on anything else.
    pub(crate) after_step: &'static str,
    /// The options a step takes beyond a workflow step's ([`STEP_OPTIONS`]).
    ///
    /// [`STEP_OPTIONS`]: super::options::STEP_OPTIONS
    pub(crate) extra_step_options: &'static [&'static str],
}

/// `#[attrs] vis Name(Input) -> Output { .. }`.
pub(crate) struct Header {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) input: Option<Type>,
    pub(crate) output: Option<Type>,
    pub(crate) brace: token::Brace,
}

impl Dsl {
    /// Every option a step takes: a workflow step's, then the macro's own.
    pub(crate) fn step_options(&self) -> Vec<&'static str> {
        let own = super::options::STEP_OPTIONS.iter();
        own.chain(self.extra_step_options).copied().collect()
    }
}

impl Header {
    /// Parses everything up to and including the body's braces; the body's tokens are returned
    /// beside, not yet parsed.
    pub(crate) fn parse(input: ParseStream<'_>, dsl: &Dsl) -> syn::Result<(Self, TokenStream)> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let kind = dsl.kind;
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected the {kind}'s name, as in `{}`", dsl.invocation),
            )
        })?;
        let input_type = if input.peek(token::Paren) {
            let content;
            parenthesized!(content in input);
            Some(content.parse::<Type>()?)
        } else {
            None
        };
        let output = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            Some(input.parse::<Type>()?)
        } else {
            None
        };
        if !input.peek(token::Brace) {
            return Err(input.error(format!(
                "expected `{{` and the {kind}'s steps, as in `{}`",
                dsl.body
            )));
        }
        let body;
        let brace = syn::braced!(body in input);
        let tokens: TokenStream = body.parse()?;
        if !input.is_empty() {
            return Err(input.error(format!(
                "unexpected tokens after the {kind}'s body: one {kind} per `{kind}!`"
            )));
        }
        let header = Header {
            attrs,
            vis,
            name,
            input: input_type,
            output,
            brace,
        };
        Ok((header, tokens))
    }
}
