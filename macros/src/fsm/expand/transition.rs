//! The transition function's body: a `match` on the state and, in each arm, one on the event
//! (as one writes it by hand, and what LLVM lowers best). Which transition an event takes is
//! decided here, by the table; what a transition does is not. A transition without hooks is
//! its target state, written in place (so a machine without hooks has a synchronous `next`);
//! one with hooks is a `Hooks` implementation, a struct of its own whose methods call the
//! context's, and a call of `sagaflow_fsm::transition::run` (or `try_run`, when another
//! transition on the same state and event follows it), which runs the hooks in order and
//! names the one that failed.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

use super::{Names, rt};
use crate::fsm::model::{Model, State, Transition};

/// The body, with `ctx`, `state` and `event` in scope (it `return`s the result), and the items
/// it names: the `Hooks` implementations, for `fsm!` to put beside the transition function.
pub(super) struct Body {
    pub(super) body: TokenStream,
    pub(super) hooks: Vec<TokenStream>,
}

pub(super) fn transition_body(model: &Model, n: &Names) -> Body {
    let rt = rt();
    let machine = n.machine.to_string();
    let (state_ty, event_ty) = (&n.state, &n.event);
    let mut hooks = Vec::new();
    let mut arms = Vec::new();
    for (si, s) in model.known_states() {
        let sname = &s.name;
        let state_pat = if s.data.is_some() {
            quote!(#state_ty::#sname(__state))
        } else {
            quote!(#state_ty::#sname)
        };
        let sname_str = sname.to_string();
        if s.is_final {
            arms.push(quote! {
                #state_pat => ::core::result::Result::Err(#rt::TransitionError::from(#rt::TransitionErrorKind::Final {
                    machine: #machine, state: #sname_str, event: event.name(),
                }))
            });
            continue;
        }
        // What the hooks are given of the state: its data, or `()`.
        let source = if s.data.is_some() {
            quote!(__state)
        } else {
            quote!(&())
        };
        let mut event_arms = Vec::new();
        for (ei, e) in model.events.iter().enumerate() {
            // The state's own transitions on the event first, then the wildcard's, in the
            // order written: the first whose guard says yes (or that has none) fires.
            let candidates: Vec<&Transition> = model
                .transitions
                .iter()
                .filter(|t| t.event == ei && t.source == Some(si))
                .chain(
                    model
                        .transitions
                        .iter()
                        .filter(|t| t.event == ei && t.source.is_none()),
                )
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let ename = &e.name;
            let event_pat = if e.data.is_some() {
                quote!(#event_ty::#ename(__event))
            } else {
                quote!(#event_ty::#ename)
            };
            let mut steps = Vec::new();
            let mut guards = Vec::new();
            let mut sequenced = false;
            let last = candidates.len() - 1;
            for (k, t) in candidates.into_iter().enumerate() {
                guards.extend(t.guard.as_ref().map(ToString::to_string));
                // One without a guard always fires: none after it is tried.
                let tried_last = k == last || t.guard.is_none();
                if !has_hooks(model, s, t) {
                    let data = inline_data(model, t).map(|data| quote!(let __data = #data;));
                    let next = target_state(model, n, t);
                    steps.push(quote! {
                        #data
                        return ::core::result::Result::Ok(#next);
                    });
                    break;
                }
                // Numbered across the machine, so no two names meet whatever the states and
                // events are called.
                let hooks_ty = format_ident!("__{}_{}_{}", sname, ename, hooks.len());
                let asked = if t.guard.is_some() {
                    guards.clone()
                } else {
                    Vec::new()
                };
                hooks.push(hooks_impl(model, n, &hooks_ty, si, ei, t, &asked));
                sequenced = true;
                steps.push(if tried_last {
                    quote! {
                        return #rt::transition::run::<__C, #hooks_ty>(ctx, #source, __event).await;
                    }
                } else {
                    quote! {
                        let __event = match #rt::transition::try_run::<__C, #hooks_ty>(ctx, #source, __event).await {
                            #rt::transition::Guarded::Ran(__result) => return __result,
                            #rt::transition::Guarded::Refused(__event) => __event,
                        };
                    }
                });
                if tried_last {
                    break;
                }
            }
            // The sequence takes the payload, `()` for an event without one.
            let bind_event = if e.data.is_some() {
                Some(quote!(let _ = &__event;))
            } else {
                sequenced.then(|| quote!(let __event = ();))
            };
            event_arms.push(quote! {
                #event_pat => {
                    #bind_event
                    #(#steps)*
                }
            });
        }
        let touch_state = s.data.is_some().then(|| quote!(let _ = &__state;));
        arms.push(quote! {
            #state_pat => {
                #touch_state
                match event {
                    #(#event_arms,)*
                    __event => ::core::result::Result::Err(#rt::TransitionError::from(#rt::TransitionErrorKind::NoTransition {
                        machine: #machine, state: #sname_str, event: __event.name(),
                    })),
                }
            }
        });
    }
    // `.await` only appears where a hook is called; a machine without hooks never awaits,
    // which is what lets `next` reuse this body.
    let body = quote! {
        let _ = &ctx;
        match state {
            #(#arms,)*
        }
    };
    Body { body, hooks }
}

/// Whether the transition `t` out of `source` runs any hook: a guard, an action, the exit
/// action of the state it leaves or the entry action of the one it enters.
fn has_hooks(model: &Model, source: &State, t: &Transition) -> bool {
    t.guard.is_some()
        || t.action.is_some()
        || source.exit.is_some()
        || model.states[t.target].entry.is_some()
}

/// The target's data of a transition without hooks: the payload, or a copy of the source's
/// data (a transition to the same state); `None` if the target holds none.
fn inline_data(model: &Model, t: &Transition) -> Option<TokenStream> {
    model.states[t.target].data.as_ref()?;
    Some(if model.events[t.event].data.is_some() {
        quote!(__event)
    } else {
        quote!(::core::clone::Clone::clone(__state))
    })
}

/// The target state, holding `__data` if it holds data: spanned at the target as written, so
/// that data of the wrong type is reported there.
fn target_state(model: &Model, n: &Names, t: &Transition) -> TokenStream {
    let span: Span = t.target_ident.span();
    let mut tident = model.states[t.target].name.clone();
    tident.set_span(span);
    let mut state_ty = n.state.clone();
    state_ty.set_span(span);
    if model.states[t.target].data.is_some() {
        quote_spanned!(span=> #state_ty::#tident(__data))
    } else {
        quote_spanned!(span=> #state_ty::#tident)
    }
}

fn opt_str(s: Option<&Ident>) -> TokenStream {
    match s {
        Some(s) => {
            let s = s.to_string();
            quote!(::core::option::Option::Some(#s))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// The `Hooks` implementation of the transition `t` out of state `si` on event `ei`: the
/// struct `name`, whose methods call the context's. `asked` is what a refusal of its guard
/// names: the guards of the same state and event up to its own.
fn hooks_impl(
    model: &Model,
    n: &Names,
    name: &Ident,
    si: usize,
    ei: usize,
    t: &Transition,
    asked: &[String],
) -> TokenStream {
    let rt = rt();
    let (machine, state_ty, ctx_ty) = (&n.machine, &n.state, &n.context);
    let (source, event, target) = (
        &model.states[si],
        &model.events[ei],
        &model.states[t.target],
    );
    let unit = quote!(());
    let source_data = source.data.as_ref().map_or(unit.clone(), |ty| quote!(#ty));
    let payload = event.data.as_ref().map_or(unit.clone(), |ty| quote!(#ty));
    // The source's data goes to the guard and the action unless the transition is `_`'s;
    // the payload, if the event carries one.
    let given_source = (t.source.is_some() && source.data.is_some()).then(|| quote!(__source,));
    let given_payload = event.data.is_some().then(|| quote!(__payload,));
    let given = |data: TokenStream| quote!(#rt::transition::given(#data));
    // What the target will hold: the action's result; without an action, the payload, a
    // copy of the source's data (a transition to the same state), or nothing.
    let (target_data, action_body) = match (&t.action, &target.data, &event.data) {
        (Some(a), data, _) => (
            data.as_ref().map_or(unit.clone(), |ty| quote!(#ty)),
            quote!(__ctx.#a(#given_source #given_payload)),
        ),
        (None, Some(_), Some(ty)) => (quote!(#ty), given(quote!(__payload))),
        (None, Some(_), None) => (
            source_data.clone(),
            given(quote!(::core::clone::Clone::clone(__source))),
        ),
        (None, None, _) => (unit.clone(), given(unit.clone())),
    };
    let future = |output: TokenStream| quote!(impl ::core::future::Future<Output = #output> + ::core::marker::Send);
    let outcome = |ty: &TokenStream| quote!(::core::result::Result<#ty, #rt::ActionError>);
    let guard = t.guard.as_ref().map(|g| {
        let output = future(quote!(bool));
        quote! {
            fn guard(__ctx: &mut __C, __source: &#source_data, __payload: &#payload) -> #output {
                __ctx.#g(#given_source #given_payload)
            }
        }
    });
    let action_output = future(outcome(&target_data));
    let done = future(outcome(&unit));
    let exit = source.exit.as_ref().map(|f| {
        let arg = source.data.is_some().then(|| quote!(__source));
        quote! {
            fn exit(__ctx: &mut __C, __source: &#source_data) -> #done {
                __ctx.#f(#arg)
            }
        }
    });
    let entry = target.entry.as_ref().map(|f| {
        let arg = target.data.is_some().then(|| quote!(__data));
        quote! {
            fn entry(__ctx: &mut __C, __data: &#target_data) -> #done {
                __ctx.#f(#arg)
            }
        }
    });
    let next = target_state(model, n, t);
    let (sname, ename, tname) = (
        source.name.to_string(),
        event.name.to_string(),
        target.name.to_string(),
    );
    let (action, exit_name, entry_name) = (
        opt_str(t.action.as_ref()),
        opt_str(source.exit.as_ref()),
        opt_str(target.entry.as_ref()),
    );
    quote! {
        #[allow(non_camel_case_types)]
        struct #name;

        impl<__C: #ctx_ty + ?::core::marker::Sized> #rt::transition::Hooks<__C> for #name {
            type Machine = #machine;
            type SourceData = #source_data;
            type Payload = #payload;
            type TargetData = #target_data;

            const NAMES: #rt::transition::Names = #rt::transition::Names {
                state: #sname,
                event: #ename,
                target: #tname,
                guards: &[#(#asked),*],
                action: #action,
                exit: #exit_name,
                entry: #entry_name,
            };

            #guard

            fn action(__ctx: &mut __C, __source: &#source_data, __payload: #payload) -> #action_output {
                #action_body
            }

            #exit

            #entry

            fn enter(__data: #target_data) -> #state_ty {
                #next
            }
        }
    }
}
