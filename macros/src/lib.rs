//! The macros of sagaflow. Use them through the `sagaflow` crate, which documents them and
//! provides the runtime the generated code calls.
//!
//! `workflow!` and `saga!` share one front end, `dsl` (the header, chains and groups, options,
//! durations, the error collection), and each is split in stages, one file each: `ast` parses
//! the tokens, `model` resolves names, `valid` checks the graph with the same code the engine
//! uses at run time, `expand` writes the Rust, and `fallback` writes stand-in items when there
//! are errors so that a mistake in the DSL shows as one error, not a cascade of rustc errors.
//! `saga!` is `workflow!`'s stages with its own rules on top (compensations, pivots), and
//! writes its Rust through `workflow!`'s expansion. `fsm!` has the same stages of its own.

mod dsl;
mod fsm;
mod saga;
mod workflow;

use proc_macro::TokenStream;

/// Declares a workflow: a DAG of async functions. Documented in the `sagaflow` crate.
#[proc_macro]
pub fn workflow(input: TokenStream) -> TokenStream {
    workflow::workflow(input.into()).into()
}

/// Declares a saga: a workflow whose steps are undone, newest first, when a later one fails.
/// Documented in the `sagaflow` crate.
#[proc_macro]
pub fn saga(input: TokenStream) -> TokenStream {
    saga::saga(input.into()).into()
}

/// Declares a typed state machine. Documented in the `sagaflow` crate.
#[proc_macro]
pub fn fsm(input: TokenStream) -> TokenStream {
    fsm::fsm(input.into()).into()
}

#[cfg(test)]
mod tests {
    use proc_macro2::{Spacing, TokenStream, TokenTree};

    /// The first segment of every path the tokens root at `::`, e.g. `core` for
    /// `::core::option::Option`.
    fn roots(tokens: TokenStream, out: &mut Vec<String>) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tt) in tokens.iter().enumerate() {
            match tt {
                TokenTree::Group(g) => roots(g.stream(), out),
                TokenTree::Punct(p) if p.as_char() == ':' && p.spacing() == Spacing::Joint => {
                    let before = |k: usize| i.checked_sub(k).map(|j| &tokens[j]);
                    let after_path = match (before(1), before(2)) {
                        (Some(TokenTree::Ident(_)), _) => true,
                        (Some(TokenTree::Punct(q)), _) if q.as_char() == ':' => true,
                        // `<T as Trait>::`, but not `->` nor `=>`.
                        (Some(TokenTree::Punct(q)), Some(TokenTree::Punct(r)))
                            if q.as_char() == '>' =>
                        {
                            !(r.spacing() == Spacing::Joint && matches!(r.as_char(), '-' | '='))
                        }
                        (Some(TokenTree::Punct(q)), _) => q.as_char() == '>',
                        _ => false,
                    };
                    if let (false, Some(TokenTree::Ident(root))) = (after_path, tokens.get(i + 2)) {
                        out.push(root.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    /// Every `::`-rooted path of `tokens` is `::sagaflow::__private::…` or `::core::…`.
    fn assert_paths(tokens: TokenStream) {
        let text = tokens.to_string();
        assert!(
            !text.contains("compile_error"),
            "the macro reported: {text}"
        );
        let mut found = Vec::new();
        roots(tokens, &mut found);
        assert!(
            found.iter().any(|r| r == "sagaflow"),
            "no runtime path in {text}"
        );
        for root in &found {
            assert!(root == "sagaflow" || root == "core", "`::{root}` in {text}");
        }
        for (at, _) in text.match_indices(":: sagaflow ::") {
            assert!(
                text[at..].starts_with(":: sagaflow :: __private ::"),
                "a path outside `__private`: {}",
                &text[at..(at + 60).min(text.len())]
            );
        }
    }

    #[test]
    fn workflow_paths_are_private_or_core() {
        assert_paths(crate::workflow::workflow(quote::quote! {
            pub W(u32) -> u32 { a -> [b, c] -> d; b: when = ready, retry(max_attempts = 3); c: on_error = continue; }
        }));
    }

    #[test]
    fn saga_paths_are_private_or_core() {
        assert_paths(crate::saga::saga(quote::quote! {
            pub S(u32) -> u32 { a / undo_a -> b! -> c; deadline = 10m; a: undo_on_unknown; }
        }));
    }

    #[test]
    fn fsm_paths_are_private_or_core() {
        assert_paths(crate::fsm::fsm(quote::quote! {
            pub Door { *Closed + Open [allowed] / log = Opened(u8), Opened(u8) + Close = Closed, _ + Break = Broken, state Broken { final }, }
        }));
    }

    #[test]
    fn a_path_outside_private_is_found() {
        let result = std::panic::catch_unwind(|| {
            assert_paths(quote::quote!(
                fn f() -> ::std::string::String {
                    ::sagaflow::__private::String::new()
                }
            ))
        });
        assert!(result.is_err());
    }
}
