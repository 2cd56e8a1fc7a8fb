//! The statements of a body: split on `;`, each a chain `a -> [b, c] -> d` of steps and groups,
//! or an options statement `step: option, option`. Generic over what a chain's member is: a
//! step's path for `workflow!`, a path with its marks (`/ undo`, `!`) for `saga!`.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Path, Token, bracketed, token};

use super::header::Dsl;
use super::options::RawOption;

/// `target: option, option`; the target is a step or `defaults` (or, in a saga, a
/// compensation).
pub(crate) struct OptionStatement {
    pub(crate) target: Ident,
    pub(crate) options: Vec<RawOption>,
}

/// One statement: a chain of links, each a member or a bracketed group of members, or options.
pub(crate) enum Statement<M> {
    Chain(Vec<Vec<M>>),
    Options(OptionStatement),
}

/// How one macro reads a chain's member: `after_path` reads what may follow a member's path
/// (a saga's marks), given the path.
pub(crate) struct Members<M> {
    pub(crate) after_path: fn(Path, ParseStream<'_>) -> syn::Result<M>,
}

impl<M> Members<M> {
    fn member(&self, input: ParseStream<'_>) -> syn::Result<M> {
        let path = step_path(input)?;
        (self.after_path)(path, input)
    }
}

/// Parses each `;`-separated statement of `body` with `parse`: the statements that parse, and
/// the errors of those that do not, so that a mistake in one statement is reported and the
/// others are still read.
pub(crate) fn statements<S>(
    body: TokenStream,
    parse: impl Fn(ParseStream<'_>) -> syn::Result<S>,
) -> (Vec<S>, Vec<syn::Error>) {
    let mut statements = Vec::new();
    let mut errors = Vec::new();
    for chunk in split_on(body, ';') {
        match (|input: ParseStream<'_>| parse(input)).parse2(chunk) {
            Ok(s) => statements.push(s),
            Err(e) => errors.push(e),
        }
    }
    (statements, errors)
}

/// Splits on top-level `separator` (`;` between a workflow's statements, `,` between a
/// machine's items). Groups (`[..]`, `(..)`, `{..}`) are single token trees, so a separator
/// inside one is never an end.
pub(crate) fn split_on(tokens: TokenStream, separator: char) -> Vec<TokenStream> {
    let mut out = Vec::new();
    let mut current = TokenStream::new();
    for tt in tokens {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == separator => {
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

/// A chain or an options statement, the members read by `members`.
pub(crate) fn statement<M>(
    input: ParseStream<'_>,
    dsl: &Dsl,
    members: &Members<M>,
) -> syn::Result<Statement<M>> {
    let first = if input.peek(token::Bracket) {
        group(input, dsl, members)?
    } else {
        let path = step_path(input)?;
        if input.peek(Token![:]) && !input.peek(Token![::]) {
            return option_statement(path, input).map(Statement::Options);
        }
        vec![(members.after_path)(path, input)?]
    };
    let mut links = vec![first];
    while !input.is_empty() {
        if !input.peek(Token![->]) {
            return Err(input.error(dsl.after_step));
        }
        input.parse::<Token![->]>()?;
        if input.is_empty() {
            return Err(input.error("expected a step after `->`"));
        }
        links.push(if input.peek(token::Bracket) {
            group(input, dsl, members)?
        } else {
            vec![members.member(input)?]
        });
    }
    Ok(Statement::Chain(links))
}

fn group<M>(input: ParseStream<'_>, dsl: &Dsl, members: &Members<M>) -> syn::Result<Vec<M>> {
    let content;
    let brackets = bracketed!(content in input);
    // `parse_terminated`'s loop, which takes a function pointer and `members` is not one.
    let mut parsed = Vec::new();
    while !content.is_empty() {
        parsed.push(members.member(&content)?);
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    if parsed.is_empty() {
        return Err(syn::Error::new(
            brackets.span.join(),
            format!(
                "an empty group: list the parallel steps, as in `{}`",
                dsl.group
            ),
        ));
    }
    Ok(parsed)
}

/// A step's path.
pub(crate) fn step_path(input: ParseStream<'_>) -> syn::Result<Path> {
    Path::parse_mod_style(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a step (the path of an async fn), a group `[a, b]`, or `step: options`",
        )
    })
}

fn option_statement(target: Path, input: ParseStream<'_>) -> syn::Result<OptionStatement> {
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

/// The name of a step or compensation: its path's last segment, without `r#`.
pub(crate) fn name_of(path: &Path) -> String {
    path.segments
        .last()
        .map(|s| s.ident.to_string().trim_start_matches("r#").to_owned())
        .unwrap_or_default()
}

/// A path as the messages show it: `a::b`.
pub(crate) fn pretty(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}
