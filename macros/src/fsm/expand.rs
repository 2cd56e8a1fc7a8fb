//! The Rust `fsm!` writes for a machine that checked: the state and event enums, the context
//! trait, the transition function as one `match`, and thin inherent functions that hand over to
//! `sagaflow_fsm`. With `stub`, the same items with bodies that never run (see `fallback`).

mod transition;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

use super::ast::FsmInput;
use super::model::{Hook, HookKind, Model};
use transition::{Body, transition_body};

/// The path generated code names the runtime by.
fn rt() -> TokenStream {
    quote!(::sagaflow::__private::fsm)
}

pub(crate) struct Names {
    pub(crate) machine: Ident,
    pub(crate) state: Ident,
    pub(crate) event: Ident,
    pub(crate) context: Ident,
}

pub(crate) fn names(input: &FsmInput) -> Names {
    let name = &input.name;
    Names {
        machine: name.clone(),
        state: format_ident!("{}State", name),
        event: format_ident!("{}Event", name),
        context: format_ident!("{}Context", name),
    }
}

/// Every item; `stub` for the fallback, whose function bodies never run.
pub(crate) fn expand(input: &FsmInput, model: &Model, stub: bool) -> TokenStream {
    let rt = rt();
    let n = names(input);
    let (vis, attrs) = (&input.vis, &input.attrs);
    let (machine, state_ty, event_ty, ctx_ty) = (&n.machine, &n.state, &n.event, &n.context);
    let machine_str = machine.to_string();

    let states: Vec<_> = model.states.iter().filter(|s| s.known || stub).collect();
    let state_variants = states.iter().map(|s| {
        let name = &s.name;
        let doc = if s.is_final {
            format!("`{name}` (final).")
        } else {
            format!("`{name}`.")
        };
        match &s.data {
            Some(ty) => quote!(#[doc = #doc] #name(#ty)),
            None => quote!(#[doc = #doc] #name),
        }
    });
    let state_names = states.iter().map(|s| {
        let name = &s.name;
        let text = name.to_string();
        let pat = if s.data.is_some() {
            quote!(#name(..))
        } else {
            quote!(#name)
        };
        quote!(#state_ty::#pat => #text)
    });
    let event_variants = model.events.iter().map(|e| {
        let name = &e.name;
        let doc = format!("`{name}`.");
        match &e.data {
            Some(ty) => quote!(#[doc = #doc] #name(#ty)),
            None => quote!(#[doc = #doc] #name),
        }
    });
    let event_names = model.events.iter().map(|e| {
        let name = &e.name;
        let text = name.to_string();
        let pat = if e.data.is_some() {
            quote!(#name(..))
        } else {
            quote!(#name)
        };
        quote!(#event_ty::#pat => #text)
    });
    let hooks = model.hooks.iter().map(hook_decl);
    let unit_context = model
        .hooks
        .is_empty()
        .then(|| quote!(impl #ctx_ty for () {}));

    let initial = match model.initial.map(|i| &model.states[i]) {
        Some(s) if s.data.is_none() && !stub => {
            let name = &s.name;
            quote!(#state_ty::#name)
        }
        _ => quote!(::core::unreachable!("the machine did not compile")),
    };
    let spec = spec(model, &machine_str);
    let Body {
        body,
        hooks: transitions,
    } = if stub {
        Body {
            body: quote!(::core::unreachable!("the machine did not compile")),
            hooks: Vec::new(),
        }
    } else {
        transition_body(model, &n)
    };
    // The transition function and the small functions around it are `#[inline]`: they are not
    // generic, so without it a machine declared in one crate could not have its transition
    // inlined into a loop in another (without LTO).
    let pure = model.hooks.is_empty().then(|| {
        quote! {
            /// The next state from `state` on `event`: this machine has no guards or actions,
            /// so its transition function is synchronous. `state` is not changed.
            #[inline]
            #vis fn next(state: &#state_ty, event: #event_ty) -> ::core::result::Result<#state_ty, #rt::TransitionError> {
                <Self as #rt::Step>::step(state, event)
            }
        }
    });
    let step_impl = model.hooks.is_empty().then(|| {
        quote! {
            impl #rt::Step for #machine {
                #[allow(unreachable_patterns, unreachable_code, unused_variables)]
                #[inline]
                fn step(state: &#state_ty, event: #event_ty) -> ::core::result::Result<#state_ty, #rt::TransitionError> {
                    let ctx = &mut ();
                    #body
                }
            }
        }
    });
    let state_doc = format!("The states of [`{machine_str}`].");
    let event_doc = format!("The events of [`{machine_str}`].");
    let ctx_doc = format!(
        "The guards and actions of [`{machine_str}`]: implement it on the type that holds what they need. Every method returns a `Send` future, so `async fn` in the implementation works and the machine can be driven from `tokio::spawn`."
    );
    let serde_crate = format!("{}::serde", rt.to_string().replace(' ', ""));

    quote! {
        #(#attrs)*
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::default::Default)]
        #vis struct #machine;

        #[doc = #state_doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, #rt::serde::Serialize, #rt::serde::Deserialize)]
        #[serde(crate = #serde_crate)]
        #vis enum #state_ty {
            #(#state_variants,)*
        }

        #[doc = #event_doc]
        #[derive(::core::fmt::Debug)]
        #vis enum #event_ty {
            #(#event_variants,)*
        }

        #[doc = #ctx_doc]
        #vis trait #ctx_ty: ::core::marker::Send {
            #(#hooks)*
        }

        #unit_context

        impl #state_ty {
            /// The variant's name.
            #[inline]
            #vis fn name(&self) -> &'static str {
                match *self { #(#state_names,)* }
            }
        }

        impl #event_ty {
            /// The variant's name.
            #[inline]
            #vis fn name(&self) -> &'static str {
                match *self { #(#event_names,)* }
            }
        }

        impl #rt::Fsm for #machine {
            type State = #state_ty;
            type Event = #event_ty;

            fn spec() -> &'static #rt::Spec {
                #spec
            }

            #[inline]
            fn initial() -> #state_ty {
                #initial
            }

            #[inline]
            fn state_name(state: &#state_ty) -> &'static str {
                state.name()
            }

            #[inline]
            fn event_name(event: &#event_ty) -> &'static str {
                event.name()
            }
        }

        #step_impl

        // The transition function, and the hooks of each transition that has any (the
        // runtime's `transition::run` calls them in order), out of the user's namespace.
        const _: () = {
            #(#transitions)*

            impl<__C: #ctx_ty + ?::core::marker::Sized> #rt::Transition<__C> for #machine {
                #[allow(unreachable_patterns, unreachable_code, unused_variables)]
                fn transition<'a>(
                    ctx: &'a mut __C,
                    state: &'a #state_ty,
                    event: #event_ty,
                ) -> impl ::core::future::Future<Output = ::core::result::Result<#state_ty, #rt::TransitionError>> + ::core::marker::Send + 'a {
                    async move { #body }
                }
            }
        };

        impl #machine {
            /// The machine's name.
            #vis const NAME: &'static str = #machine_str;

            /// The initial state.
            #[inline]
            #vis fn initial() -> #state_ty {
                <Self as #rt::Fsm>::initial()
            }

            /// A machine in memory, in the initial state.
            #[inline]
            #vis fn machine() -> #rt::Machine<#machine> {
                #rt::Machine::new()
            }

            /// The next state from `state` on `event`, through the guards and actions of
            /// `ctx`; `state` is not changed, so on error the machine is where it was.
            #vis async fn transition<C: #ctx_ty + ?::core::marker::Sized>(
                ctx: &mut C,
                state: &#state_ty,
                event: #event_ty,
            ) -> ::core::result::Result<#state_ty, #rt::TransitionError> {
                <Self as #rt::Transition<C>>::transition(ctx, state, event).await
            }

            #pure

            /// The machine `id` in `store` (any store with machines: a `SqliteStore`, a
            /// `MemoryStore`), created in the initial state if missing.
            #vis async fn open<S: #rt::MachineStore + ::core::clone::Clone + 'static>(
                store: &S,
                id: impl ::core::convert::Into<::sagaflow::__private::String>,
            ) -> ::core::result::Result<#rt::PersistedMachine<#machine>, #rt::MachineError> {
                #rt::PersistedMachine::open(store, id).await
            }

            /// The machine `id` in `store`, if it exists; no entry action runs.
            #vis async fn load<S: #rt::MachineStore + ::core::clone::Clone + 'static>(
                store: &S,
                id: &str,
            ) -> ::core::result::Result<::core::option::Option<#rt::PersistedMachine<#machine>>, #rt::MachineError> {
                #rt::PersistedMachine::load(store, id).await
            }

            /// Creates the machine `id` in `store`; an error if it exists.
            #vis async fn create<S: #rt::MachineStore + ::core::clone::Clone + 'static>(
                store: &S,
                id: impl ::core::convert::Into<::sagaflow::__private::String>,
            ) -> ::core::result::Result<#rt::PersistedMachine<#machine>, #rt::MachineError> {
                #rt::PersistedMachine::create(store, id).await
            }

            /// The ids of every machine of this type in `store`, in id order.
            #vis async fn ids<S: #rt::MachineStore>(
                store: &S,
            ) -> ::core::result::Result<::sagaflow::__private::Vec<::sagaflow::__private::String>, #rt::StoreError> {
                #rt::PersistedMachine::<#machine>::ids(store).await
            }

            /// The machine's table.
            #vis fn spec() -> &'static #rt::Spec {
                <Self as #rt::Fsm>::spec()
            }

            /// The machine as a Mermaid state diagram.
            #vis fn mermaid() -> ::sagaflow::__private::String {
                Self::spec().mermaid(::core::option::Option::None)
            }

            /// The machine as a Graphviz digraph.
            #vis fn dot() -> ::sagaflow::__private::String {
                Self::spec().dot(::core::option::Option::None)
            }
        }
    }
}

fn hook_decl(h: &Hook) -> TokenStream {
    let rt = rt();
    let name = &h.name;
    let state = h.state.as_ref().map(|t| quote!(state: &#t,));
    let event = h.event.as_ref().map(|t| match h.kind {
        HookKind::Guard => quote!(event: &#t,),
        _ => quote!(event: #t,),
    });
    let output = match (&h.kind, &h.output) {
        (HookKind::Guard, _) => quote!(bool),
        (_, Some(t)) => quote!(::core::result::Result<#t, #rt::ActionError>),
        (_, None) => quote!(::core::result::Result<(), #rt::ActionError>),
    };
    let doc = match h.kind {
        HookKind::Guard => "A guard: `true` lets the transition fire.",
        HookKind::Action => "A transition's action; what it returns is the target state's data.",
        HookKind::Entry => "An entry action, run when a transition enters its state.",
        HookKind::Exit => "An exit action, run when a transition leaves its state.",
    };
    quote! {
        #[doc = #doc]
        fn #name(&mut self, #state #event) -> impl ::core::future::Future<Output = #output> + ::core::marker::Send;
    }
}

fn opt_str(s: Option<String>) -> TokenStream {
    match s {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    }
}

fn spec(model: &Model, machine: &str) -> TokenStream {
    let rt = rt();
    let initial = model
        .initial
        .map(|i| model.states[i].name.to_string())
        .unwrap_or_default();
    let states = model.known_states().map(|(_, s)| {
        let name = s.name.to_string();
        let is_final = s.is_final;
        let entry = opt_str(s.entry.as_ref().map(ToString::to_string));
        let exit = opt_str(s.exit.as_ref().map(ToString::to_string));
        quote!(#rt::StateSpec { name: #name, is_final: #is_final, entry: #entry, exit: #exit })
    });
    let events = model.events.iter().map(|e| e.name.to_string());
    let transitions = model.transitions.iter().map(|t| {
        let from = opt_str(t.source.map(|s| model.states[s].name.to_string()));
        let event = model.events[t.event].name.to_string();
        let guard = opt_str(t.guard.as_ref().map(ToString::to_string));
        let action = opt_str(t.action.as_ref().map(ToString::to_string));
        let to = model.states[t.target].name.to_string();
        quote!(#rt::TransitionSpec { from: #from, event: #event, guard: #guard, action: #action, to: #to })
    });
    quote! {
        static SPEC: #rt::Spec = #rt::Spec {
            name: #machine,
            initial: #initial,
            states: &[#(#states),*],
            events: &[#(#events),*],
            transitions: &[#(#transitions),*],
        };
        &SPEC
    }
}
