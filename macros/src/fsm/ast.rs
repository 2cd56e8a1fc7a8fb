//! The syntax of `fsm!`, parsed but not yet understood.
//!
//! Items are split on top-level `,` before they are parsed, so a mistake in one item is
//! reported and the others are still read: the user sees every syntax error at once.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Token, Type, Visibility, bracketed, parenthesized, token};

use crate::dsl::chain::split_on;

/// `#[attrs] vis Name { items }`
pub(crate) struct FsmInput {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) items: Vec<Item>,
    /// Syntax errors inside items; the items that parsed are still in `items`.
    pub(crate) errors: Vec<syn::Error>,
}

/// One `,`-separated item, with its tokens (for errors that point at the whole item).
pub(crate) struct Item {
    pub(crate) tokens: TokenStream,
    pub(crate) kind: ItemKind,
}

// Parsed once per item at build time: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ItemKind {
    /// `*Source + Event [guard] / action = Target`
    Transition(TransitionAst),
    /// `*state Name(Data) { entry = f, exit = g, final }`
    State(StateDecl),
    /// `event Name(Payload)`
    Event(Named),
}

/// `Name` or `Name(Type)`.
#[derive(Clone)]
pub(crate) struct Named {
    pub(crate) name: Ident,
    pub(crate) data: Option<Type>,
}

#[allow(clippy::large_enum_variant)]
pub(crate) enum Source {
    /// `_`: every state that is not final.
    Any(Token![_]),
    State(Named),
}

pub(crate) struct TransitionAst {
    pub(crate) star: Option<Token![*]>,
    pub(crate) source: Source,
    pub(crate) event: Named,
    pub(crate) guard: Option<Ident>,
    pub(crate) action: Option<Ident>,
    pub(crate) target: Named,
}

pub(crate) struct StateDecl {
    pub(crate) star: Option<Token![*]>,
    pub(crate) state: Named,
    pub(crate) options: Vec<StateOption>,
}

/// `entry = f`, `exit = f` or a bare flag (`final`), not yet checked.
pub(crate) struct StateOption {
    pub(crate) name: Ident,
    pub(crate) value: Option<Ident>,
}

impl Parse for FsmInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the machine's name, as in `fsm! { pub Door { *Closed + Open = Opened } }`",
            )
        })?;
        if !input.peek(token::Brace) {
            return Err(input.error(
                "expected `{` and the machine's transitions, as in `Door { *Closed + Open = Opened }`",
            ));
        }
        let body;
        syn::braced!(body in input);
        let tokens: TokenStream = body.parse()?;
        if !input.is_empty() {
            return Err(
                input.error("unexpected tokens after the machine's body: one machine per `fsm!`")
            );
        }
        let mut items = Vec::new();
        let mut errors = Vec::new();
        for chunk in split_on(tokens, ',') {
            match ItemKind::parse.parse2(chunk.clone()) {
                Ok(kind) => items.push(Item {
                    tokens: chunk,
                    kind,
                }),
                Err(e) => errors.push(at_item(e, &chunk)),
            }
        }
        Ok(FsmInput {
            attrs,
            vis,
            name,
            items,
            errors,
        })
    }
}

/// An error at the end of an item's tokens has no token to point at (syn puts it on the whole
/// macro): it is moved to the item.
fn at_item(error: syn::Error, item: &TokenStream) -> syn::Error {
    let message = error.to_string();
    match message.strip_prefix("unexpected end of input, ") {
        Some(rest) => syn::Error::new_spanned(item, format!("this item ends too early: {rest}")),
        None => error,
    }
}

fn keyword(input: ParseStream<'_>, word: &str) -> bool {
    let fork = input.fork();
    match fork.call(Ident::parse_any) {
        Ok(ident) => ident == word && fork.peek(Ident),
        Err(_) => false,
    }
}

impl Parse for ItemKind {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let star: Option<Token![*]> = input.parse()?;
        if keyword(input, "state") {
            input.call(Ident::parse_any)?;
            return state_decl(star, input).map(ItemKind::State);
        }
        if star.is_none() && keyword(input, "event") {
            input.call(Ident::parse_any)?;
            let event = named(input, "an event")?;
            expect_end(input, "after an event's declaration")?;
            return Ok(ItemKind::Event(event));
        }
        transition(star, input).map(ItemKind::Transition)
    }
}

fn named(input: ParseStream<'_>, what: &str) -> syn::Result<Named> {
    let name: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected {what}'s name, such as `Closed`"),
        )
    })?;
    let data = if input.peek(token::Paren) {
        let content;
        let parens = parenthesized!(content in input);
        if content.is_empty() {
            return Err(syn::Error::new(
                parens.span.join(),
                format!(
                    "empty parentheses after `{name}`: write its data's type, as in `{name}(u32)`, or no parentheses"
                ),
            ));
        }
        let ty: Type = content.parse()?;
        if !content.is_empty() {
            return Err(
                content.error("one type only: for several values use a tuple `(A, B)` or a struct")
            );
        }
        Some(ty)
    } else {
        None
    };
    Ok(Named { name, data })
}

fn expect_end(input: ParseStream<'_>, context: &str) -> syn::Result<()> {
    if input.is_empty() {
        Ok(())
    } else {
        Err(input.error(format!(
            "unexpected tokens {context}; items are separated by `,`"
        )))
    }
}

fn transition(star: Option<Token![*]>, input: ParseStream<'_>) -> syn::Result<TransitionAst> {
    let source = if input.peek(Token![_]) {
        Source::Any(input.parse()?)
    } else {
        Source::State(named(input, "a state").map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a transition `State + Event [guard] / action = Target`, `state Name { .. }` or `event Name`",
            )
        })?)
    };
    if !input.peek(Token![+]) {
        return Err(input.error("expected `+` and the event, as in `Closed + Open = Opened`"));
    }
    input.parse::<Token![+]>()?;
    let event = named(input, "an event")?;
    let guard = if input.peek(token::Bracket) {
        let content;
        let brackets = bracketed!(content in input);
        if content.is_empty() {
            return Err(syn::Error::new(
                brackets.span.join(),
                "an empty guard: name a guard method, as in `[is_unlocked]`",
            ));
        }
        let guard: Ident = content.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "a guard is the name of a method of the context, as in `[is_unlocked]`",
            )
        })?;
        if !content.is_empty() {
            return Err(
                content.error("a guard is one method name; combine conditions inside that method")
            );
        }
        Some(guard)
    } else {
        None
    };
    let action = if input.peek(Token![/]) {
        input.parse::<Token![/]>()?;
        Some(input.parse::<Ident>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected an action after `/`: the name of a method of the context",
            )
        })?)
    } else {
        None
    };
    if !input.peek(Token![=]) {
        return Err(input.error("expected `= Target`, the state the transition enters"));
    }
    input.parse::<Token![=]>()?;
    let target = named(input, "the target state")?;
    expect_end(input, "after the target state")?;
    Ok(TransitionAst {
        star,
        source,
        event,
        guard,
        action,
        target,
    })
}

fn state_decl(star: Option<Token![*]>, input: ParseStream<'_>) -> syn::Result<StateDecl> {
    let state = named(input, "a state")?;
    let mut options = Vec::new();
    if input.peek(token::Brace) {
        let content;
        syn::braced!(content in input);
        let parsed: Punctuated<StateOption, Token![,]> = Punctuated::parse_terminated(&content)?;
        options.extend(parsed);
    }
    expect_end(input, "after a state's declaration")?;
    Ok(StateDecl {
        star,
        state,
        options,
    })
}

impl Parse for StateOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name = Ident::parse_any(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `entry = method`, `exit = method` or `final`",
            )
        })?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse::<Ident>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected a method of the context after `{name} =`"),
                )
            })?)
        } else {
            None
        };
        Ok(StateOption { name, value })
    }
}
