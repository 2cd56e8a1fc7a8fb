//! An option as written, before it is understood: `name = value`, `name(inner, ...)` or a
//! bare `name`. Read by the options and durations alike.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Token, parenthesized, token};

/// `name = value`, `name(inner, inner)` or a bare `name`.
pub(crate) struct RawOption {
    pub(crate) name: Ident,
    pub(crate) value: RawValue,
}

pub(crate) enum RawValue {
    Assign(Expr),
    Call(Vec<RawOption>),
    Flag,
}

impl Parse for RawOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name = Ident::parse_any(input)
            .map_err(|e| syn::Error::new(e.span(), "expected an option name, such as `timeout`"))?;
        let value = if input.peek(token::Paren) {
            let content;
            parenthesized!(content in input);
            let inner: Punctuated<RawOption, Token![,]> = Punctuated::parse_terminated(&content)?;
            RawValue::Call(inner.into_iter().collect())
        } else if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            if input.is_empty() || input.peek(Token![,]) {
                return Err(input.error(format!("expected a value for `{name}` after `=`")));
            }
            RawValue::Assign(input.parse()?)
        } else {
            RawValue::Flag
        };
        Ok(RawOption { name, value })
    }
}
