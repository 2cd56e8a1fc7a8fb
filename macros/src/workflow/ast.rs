//! The syntax of `workflow!`, parsed but not yet understood.
//!
//! Statements are split on `;` before they are parsed, so a mistake in one statement is
//! reported and the others are still read: the user sees every syntax error at once.

use proc_macro2::{TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Path, Token, Type, Visibility, bracketed, parenthesized, token};

use super::options::RawOption;

/// `#[attrs] vis Name(Input) -> Output { statements }`
pub(crate) struct WorkflowInput {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) input: Option<Type>,
    pub(crate) output: Option<Type>,
    pub(crate) brace: token::Brace,
    pub(crate) statements: Vec<Statement>,
    /// Syntax errors inside statements; the statements that parsed are still in `statements`.
    pub(crate) errors: Vec<syn::Error>,
}

/// One `;`-terminated statement.
pub(crate) enum Statement {
    /// `a -> [b, c] -> d`
    Chain(Vec<Link>),
    /// `target: option, option`
    Options(OptionStatement),
}

/// One element of a chain: a step, or a bracketed group of steps.
pub(crate) struct Link {
    pub(crate) members: Vec<Path>,
}

/// `target: option, option`; the target is a step or `defaults`.
pub(crate) struct OptionStatement {
    pub(crate) target: Ident,
    pub(crate) options: Vec<RawOption>,
}

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
    /// The options a step takes.
    pub(crate) step_options: &'static [&'static str],
}

/// The words of `workflow!`.
pub(crate) const WORKFLOW: Dsl = Dsl {
    kind: "workflow",
    invocation: "workflow! { pub Etl { extract -> load } }",
    body: "Etl { extract -> load }",
    chain: "extract -> load;",
    step_options: super::options::STEP_OPTIONS,
};

/// `#[attrs] vis Name(Input) -> Output { .. }`, the body's tokens not yet parsed.
pub(crate) struct Header {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) input: Option<Type>,
    pub(crate) output: Option<Type>,
    pub(crate) brace: token::Brace,
    pub(crate) body: TokenStream,
}

impl Header {
    /// Parses everything up to and including the body's braces.
    pub(crate) fn parse(input: ParseStream<'_>, dsl: &Dsl) -> syn::Result<Self> {
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
        Ok(Header {
            attrs,
            vis,
            name,
            input: input_type,
            output,
            brace,
            body: tokens,
        })
    }
}

impl Parse for WorkflowInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let header = Header::parse(input, &WORKFLOW)?;
        let mut statements = Vec::new();
        let mut errors = Vec::new();
        for chunk in split_statements(header.body) {
            match Statement::parse.parse2(chunk) {
                Ok(s) => statements.push(s),
                Err(e) => errors.push(e),
            }
        }
        Ok(WorkflowInput {
            attrs: header.attrs,
            vis: header.vis,
            name: header.name,
            input: header.input,
            output: header.output,
            brace: header.brace,
            statements,
            errors,
        })
    }
}

/// Splits on top-level `;`. Groups (`[..]`, `(..)`) are single token trees, so a `;` inside
/// one is never a statement end.
pub(crate) fn split_statements(tokens: TokenStream) -> Vec<TokenStream> {
    let mut out = Vec::new();
    let mut current = TokenStream::new();
    for tt in tokens {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ';' => {
                out.push(std::mem::take(&mut current));
            }
            _ => current.extend([tt]),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out.retain(|s| !s.is_empty());
    out
}

impl Parse for Statement {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let first = if input.peek(token::Bracket) {
            input.parse::<Link>()?
        } else {
            let path = step_path(input)?;
            if input.peek(Token![:]) && !input.peek(Token![::]) {
                return option_statement(path, input).map(Statement::Options);
            }
            Link {
                members: vec![path],
            }
        };
        let mut links = vec![first];
        while !input.is_empty() {
            if !input.peek(Token![->]) {
                return Err(input
                    .error("expected `->` to chain the next step, or `;` to end the statement"));
            }
            input.parse::<Token![->]>()?;
            if input.is_empty() {
                return Err(input.error("expected a step after `->`"));
            }
            links.push(input.parse()?);
        }
        Ok(Statement::Chain(links))
    }
}

pub(crate) fn step_path(input: ParseStream<'_>) -> syn::Result<Path> {
    Path::parse_mod_style(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a step (the path of an async fn), a group `[a, b]`, or `step: options`",
        )
    })
}

impl Parse for Link {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(token::Bracket) {
            let content;
            let brackets = bracketed!(content in input);
            let members: Punctuated<Path, Token![,]> =
                content.parse_terminated(|i| step_path(i), Token![,])?;
            if members.is_empty() {
                return Err(syn::Error::new(
                    brackets.span.join(),
                    "an empty group: list the parallel steps, as in `[clean, audit]`",
                ));
            }
            Ok(Link {
                members: members.into_iter().collect(),
            })
        } else {
            Ok(Link {
                members: vec![step_path(input)?],
            })
        }
    }
}

pub(crate) fn option_statement(
    target: Path,
    input: ParseStream<'_>,
) -> syn::Result<OptionStatement> {
    let target = match target.get_ident() {
        Some(ident) => ident.clone(),
        None => {
            return Err(syn::Error::new_spanned(
                target,
                "options name a step by its name alone, not by its path",
            ));
        }
    };
    input.parse::<Token![:]>()?;
    let options: Punctuated<RawOption, Token![,]> = Punctuated::parse_terminated(input)?;
    if options.is_empty() {
        return Err(syn::Error::new_spanned(
            &target,
            format!("no options after `{target}:`; for example `{target}: timeout = 30s`"),
        ));
    }
    Ok(OptionStatement {
        target,
        options: options.into_iter().collect(),
    })
}
