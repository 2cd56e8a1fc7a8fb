//! What an `fsm!` means: its states, events, transitions and the context's methods, with the
//! names resolved and the data types of every mention reconciled. Built even when there are
//! errors (as far as it can be), so the fallback can still declare the machine's items.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use proc_macro2::Span;
use quote::ToTokens;
use syn::{Ident, Type};

use super::ast::{FsmInput, ItemKind, Named, Source, StateOption, TransitionAst};
use crate::dsl::ctxt::{Errors, did_you_mean};

mod graph;

pub(crate) struct State {
    pub(crate) name: Ident,
    pub(crate) data: Option<Type>,
    /// A transition leaves it, or it is declared with `state`: it exists. A name seen only as
    /// a target is not a state, but a typo or a missing declaration.
    pub(crate) known: bool,
    /// Its first mention as a source or in a declaration, where errors about it point.
    pub(crate) at: Option<Ident>,
    pub(crate) is_final: bool,
    pub(crate) entry: Option<Ident>,
    pub(crate) exit: Option<Ident>,
}

pub(crate) struct Event {
    pub(crate) name: Ident,
    pub(crate) data: Option<Type>,
    /// Where it was declared with `event`, if it was.
    pub(crate) declared: Option<Ident>,
    pub(crate) used: bool,
}

pub(crate) struct Transition {
    /// `None` for `_`.
    pub(crate) source: Option<usize>,
    pub(crate) event: usize,
    pub(crate) guard: Option<Ident>,
    pub(crate) action: Option<Ident>,
    pub(crate) target: usize,
    /// The target's name as written here, for spans.
    pub(crate) target_ident: Ident,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    Guard,
    Action,
    Entry,
    Exit,
}

impl HookKind {
    fn label(self) -> &'static str {
        match self {
            HookKind::Guard => "guard",
            HookKind::Action => "action",
            HookKind::Entry => "entry action",
            HookKind::Exit => "exit action",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            HookKind::Guard => "a guard",
            HookKind::Action => "an action",
            HookKind::Entry => "an entry action",
            HookKind::Exit => "an exit action",
        }
    }
}

/// A method of the generated context trait.
pub(crate) struct Hook {
    pub(crate) name: Ident,
    pub(crate) kind: HookKind,
    /// The data of the state it is given (by reference), if any.
    pub(crate) state: Option<Type>,
    /// The event payload it is given (by reference for a guard, by value for an action).
    pub(crate) event: Option<Type>,
    /// What an action returns (the target's data), `None` for `()`.
    pub(crate) output: Option<Type>,
}

pub(crate) struct Model {
    pub(crate) states: Vec<State>,
    pub(crate) events: Vec<Event>,
    pub(crate) transitions: Vec<Transition>,
    pub(crate) initial: Option<usize>,
    pub(crate) hooks: Vec<Hook>,
}

impl Model {
    pub(crate) fn known_states(&self) -> impl Iterator<Item = (usize, &State)> {
        self.states.iter().enumerate().filter(|(_, s)| s.known)
    }
}

fn type_key(ty: &Option<Type>) -> String {
    ty.as_ref()
        .map(|t| t.to_token_stream().to_string())
        .unwrap_or_default()
}

fn show(ty: &Option<Type>) -> String {
    match ty {
        Some(t) => format!("`{}`", t.to_token_stream().to_string().replace(' ', "")),
        None => "no data".to_owned(),
    }
}

struct Builder<'e> {
    model: Model,
    state_index: HashMap<String, usize>,
    event_index: HashMap<String, usize>,
    errors: &'e mut Errors,
}

impl Builder<'_> {
    /// The state `named`, added if new; its data reconciled with earlier mentions.
    fn state(&mut self, named: &Named, known: bool) -> usize {
        let key = named.name.to_string();
        let index = match self.state_index.get(&key) {
            Some(&i) => i,
            None => {
                self.model.states.push(State {
                    name: named.name.clone(),
                    data: None,
                    known: false,
                    at: None,
                    is_final: false,
                    entry: None,
                    exit: None,
                });
                self.state_index.insert(key, self.model.states.len() - 1);
                self.model.states.len() - 1
            }
        };
        let state = &mut self.model.states[index];
        if known && !state.known {
            state.known = true;
            state.at = Some(named.name.clone());
        }
        if let Some(ty) = &named.data {
            match &state.data {
                None => state.data = Some(ty.clone()),
                Some(first) if type_key(&state.data) != type_key(&named.data) => {
                    let message = format!(
                        "state `{}` holds {} where it was first given data, not {}",
                        named.name,
                        show(&Some(first.clone())),
                        show(&named.data)
                    );
                    self.errors.at(ty, message);
                }
                Some(_) => {}
            }
        }
        index
    }

    fn event(&mut self, named: &Named) -> usize {
        let key = named.name.to_string();
        let index = match self.event_index.get(&key) {
            Some(&i) => i,
            None => {
                self.model.events.push(Event {
                    name: named.name.clone(),
                    data: None,
                    declared: None,
                    used: false,
                });
                self.event_index.insert(key, self.model.events.len() - 1);
                self.model.events.len() - 1
            }
        };
        let event = &mut self.model.events[index];
        if let Some(ty) = &named.data {
            match &event.data {
                None => event.data = Some(ty.clone()),
                Some(first) if type_key(&event.data) != type_key(&named.data) => {
                    let message = format!(
                        "event `{}` carries {} where it was first given a payload, not {}",
                        named.name,
                        show(&Some(first.clone())),
                        show(&named.data)
                    );
                    self.errors.at(ty, message);
                }
                Some(_) => {}
            }
        }
        index
    }

    fn initial(&mut self, star: Span, state: usize) {
        match self.model.initial {
            None => self.model.initial = Some(state),
            Some(first) => {
                let message = format!(
                    "a second initial state: `{}` is marked `*` already; a machine has one",
                    self.model.states[first].name
                );
                self.errors.at_span(star, message);
            }
        }
    }

    /// Records a use of the context method `name`; a second use must agree with the first.
    fn hook(
        &mut self,
        name: &Ident,
        kind: HookKind,
        state: Option<Type>,
        event: Option<Type>,
        output: Option<Type>,
    ) {
        let hook = Hook {
            name: name.clone(),
            kind,
            state,
            event,
            output,
        };
        let Some(first) = self.model.hooks.iter().find(|h| h.name == *name) else {
            self.model.hooks.push(hook);
            return;
        };
        if first.kind != kind {
            let message = format!(
                "`{name}` is used as {} here but as {} before: one method cannot be both",
                kind.noun(),
                first.kind.noun()
            );
            self.errors.at(name, message);
            return;
        }
        let same = type_key(&first.state) == type_key(&hook.state)
            && type_key(&first.event) == type_key(&hook.event)
            && type_key(&first.output) == type_key(&hook.output);
        if !same {
            let message = format!(
                "{} `{name}` needs `{}` here but `{}` where it is first used; one method has one signature: use two methods",
                kind.label(),
                signature(&hook),
                signature(first)
            );
            self.errors.at(name, message);
        }
    }
}

fn rust(ty: &Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}

/// The context method as the user writes it, for messages.
fn signature(h: &Hook) -> String {
    let mut args = vec!["&mut self".to_owned()];
    if let Some(t) = &h.state {
        args.push(format!("state: &{}", rust(t)));
    }
    if let Some(t) = &h.event {
        let by_ref = if h.kind == HookKind::Guard { "&" } else { "" };
        args.push(format!("event: {by_ref}{}", rust(t)));
    }
    let output = match (h.kind, &h.output) {
        (HookKind::Guard, _) => "bool".to_owned(),
        (_, Some(t)) => format!("Result<{}, ActionError>", rust(t)),
        (_, None) => "Result<(), ActionError>".to_owned(),
    };
    format!("async fn {}({}) -> {output}", h.name, args.join(", "))
}

/// Builds the model and runs every check; errors go to `errors`.
pub(crate) fn build(input: &FsmInput, errors: &mut Errors) -> Model {
    let mut b = Builder {
        model: Model {
            states: Vec::new(),
            events: Vec::new(),
            transitions: Vec::new(),
            initial: None,
            hooks: Vec::new(),
        },
        state_index: HashMap::new(),
        event_index: HashMap::new(),
        errors,
    };
    // With a syntax error, some items are missing: the checks of the whole machine (unknown
    // states, the initial state, reachability, unused events) would report what is missing
    // rather than what is wrong, so they wait until the syntax is right.
    let complete = input.errors.is_empty();
    let mut star_on_wildcard = false;
    // Pass 1: the states and events, in the order they appear, and the declarations.
    let mut declared_states: HashMap<String, Ident> = HashMap::new();
    for item in &input.items {
        match &item.kind {
            ItemKind::Transition(t) => {
                if let Source::State(s) = &t.source {
                    let i = b.state(s, true);
                    if let Some(star) = &t.star {
                        b.initial(star.span, i);
                    }
                } else if let (Some(_), Source::Any(any)) = (&t.star, &t.source) {
                    star_on_wildcard = true;
                    b.errors.at(
                        any,
                        "`_` cannot be the initial state: mark a state with `*`",
                    );
                }
                b.event(&t.event);
                b.state(&t.target, false);
            }
            ItemKind::State(decl) => {
                let i = b.state(&decl.state, true);
                if let Some(star) = &decl.star {
                    b.initial(star.span, i);
                }
                let key = decl.state.name.to_string();
                match declared_states.entry(key) {
                    Entry::Occupied(e) => {
                        let key = e.key();
                        b.errors.at(
                            &decl.state.name,
                            format!("state `{key}` is declared twice; merge its options into one `state {key} {{ .. }}`"),
                        );
                    }
                    Entry::Vacant(e) => {
                        e.insert(decl.state.name.clone());
                    }
                }
                state_options(&mut b, i, &decl.options);
            }
            ItemKind::Event(named) => {
                let i = b.event(named);
                if b.model.events[i].declared.is_some() {
                    b.errors.at(
                        &named.name,
                        format!("event `{}` is declared twice", named.name),
                    );
                } else {
                    b.model.events[i].declared = Some(named.name.clone());
                }
            }
        }
    }
    // Targets, once every source and declaration is known.
    let known: Vec<String> = b
        .model
        .known_states()
        .map(|(_, s)| s.name.to_string())
        .collect();
    let mut reported: Vec<String> = Vec::new();
    for item in &input.items {
        if let ItemKind::Transition(t) = &item.kind {
            let name = t.target.name.to_string();
            let is_known = b
                .state_index
                .get(&name)
                .is_some_and(|&i| b.model.states[i].known);
            if !is_known && complete && !reported.contains(&name) {
                let message = format!(
                    "unknown state `{name}`: no transition leaves it and it is not declared (`state {name} {{ final }}` declares a state that ends the machine){}",
                    did_you_mean(&name, known.iter().map(String::as_str))
                );
                b.errors.at(&t.target.name, message);
                reported.push(name);
            }
        }
    }
    let has_transitions = input
        .items
        .iter()
        .any(|i| matches!(i.kind, ItemKind::Transition(_)));
    if b.model.initial.is_none() && complete && !star_on_wildcard && has_transitions {
        let message = format!(
            "machine `{}` has no initial state: mark one with `*`, as in `*Closed + Open = Opened`",
            input.name
        );
        b.errors.at(&input.name, message);
    }
    if let Some(i) = b.model.initial
        && let Some(data) = &b.model.states[i].data
    {
        let message = format!(
            "the initial state `{}` cannot hold data: a machine is created in it with nothing to fill it; start in a state without data and move on with an event",
            b.model.states[i].name
        );
        b.errors.at(data, message);
    }
    // Pass 2: the transitions and the context's methods they use.
    let mut first_on: HashMap<(Option<usize>, usize), Vec<usize>> = HashMap::new();
    for item in &input.items {
        let ItemKind::Transition(t) = &item.kind else {
            continue;
        };
        transition(&mut b, t, &item.tokens, &mut first_on);
    }
    for i in 0..b.model.states.len() {
        let s = &b.model.states[i];
        let (data, entry, exit) = (s.data.clone(), s.entry.clone(), s.exit.clone());
        if let Some(entry) = entry {
            b.hook(&entry, HookKind::Entry, data.clone(), None, None);
        }
        if let Some(exit) = exit {
            b.hook(&exit, HookKind::Exit, data, None, None);
        }
    }
    let used: Vec<String> = b
        .model
        .events
        .iter()
        .filter(|e| e.used)
        .map(|e| e.name.to_string())
        .collect();
    for e in &b.model.events {
        if let (Some(declared), false, true) = (&e.declared, e.used, complete) {
            let name = e.name.to_string();
            b.errors.at(
                declared,
                format!(
                    "event `{name}` is declared but no transition uses it{}",
                    did_you_mean(&name, used.iter().map(String::as_str))
                ),
            );
        }
    }
    if !has_transitions && complete {
        b.errors.at(
            &input.name,
            format!("machine `{}` has no transitions: write at least one, as in `*Closed + Open = Opened`", input.name),
        );
    }
    if complete {
        graph::check(&b.model, b.errors);
    }
    b.model
}

fn state_options(b: &mut Builder<'_>, i: usize, options: &[StateOption]) {
    const OPTIONS: [&str; 3] = ["entry", "exit", "final"];
    let mut seen: Vec<String> = Vec::new();
    for option in options {
        let name = option.name.to_string();
        if seen.contains(&name) {
            b.errors
                .at(&option.name, format!("`{name}` is given twice"));
            continue;
        }
        seen.push(name.clone());
        match (name.as_str(), &option.value) {
            ("entry", Some(f)) => b.model.states[i].entry = Some(f.clone()),
            ("exit", Some(f)) => b.model.states[i].exit = Some(f.clone()),
            ("final", None) => b.model.states[i].is_final = true,
            ("entry" | "exit", None) => b.errors.at(
                &option.name,
                format!("`{name}` needs a method of the context: `{name} = method`"),
            ),
            ("final", Some(v)) => b
                .errors
                .at(v, "`final` takes no value: write `final` alone"),
            _ => b.errors.at(
                &option.name,
                format!(
                    "unknown state option `{name}`; the options are `entry = method`, `exit = method` and `final`{}",
                    did_you_mean(&name, OPTIONS)
                ),
            ),
        }
    }
}

fn transition(
    b: &mut Builder<'_>,
    t: &TransitionAst,
    tokens: &proc_macro2::TokenStream,
    first_on: &mut HashMap<(Option<usize>, usize), Vec<usize>>,
) {
    let source = match &t.source {
        Source::Any(_) => None,
        Source::State(s) => b.state_index.get(&s.name.to_string()).copied(),
    };
    let event = b.state_event(&t.event);
    let target = b.state_index.get(&t.target.name.to_string()).copied();
    let (Some(event), Some(target)) = (event, target) else {
        return;
    };
    b.model.events[event].used = true;
    let source_name = match source {
        Some(s) => format!("`{}`", b.model.states[s].name),
        None => "`_`".to_owned(),
    };
    let event_name = &b.model.events[event].name;
    if let (Some(s), Source::State(named)) = (source, &t.source)
        && b.model.states[s].is_final
    {
        b.errors.at(
            &named.name,
            format!("`{}` is final: no transition can leave it", named.name),
        );
    }
    // Two transitions on one pair must be told apart by their guards, tried in order.
    let same_pair = first_on.entry((source, event)).or_default();
    for &earlier in same_pair.iter() {
        let e = &b.model.transitions[earlier];
        let message = match (&e.guard, &t.guard) {
            (None, None) => Some(format!(
                "a second transition from {source_name} on `{event_name}` with no guard: nothing tells it apart from the one to `{}`",
                b.model.states[e.target].name
            )),
            (None, Some(g)) => Some(format!(
                "guard `{g}` is never asked: the transition from {source_name} on `{event_name}` without a guard (to `{}`) comes first and always fires; put guarded transitions first",
                b.model.states[e.target].name
            )),
            (Some(g1), Some(g2)) if g1 == g2 => Some(format!(
                "a second transition from {source_name} on `{event_name}` with guard `{g2}`: the same guard cannot tell the two apart"
            )),
            _ => None,
        };
        if let Some(message) = message {
            b.errors.at(tokens, message);
            break;
        }
    }
    same_pair.push(b.model.transitions.len());
    // The data the target needs, when no action makes it.
    let source_data = source.and_then(|s| b.model.states[s].data.clone());
    let event_data = b.model.events[event].data.clone();
    let target_data = b.model.states[target].data.clone();
    if t.action.is_none() && target_data.is_some() && event_data.is_none() && source != Some(target)
    {
        let name = &b.model.states[target].name;
        b.errors.at(
            &t.target.name,
            format!(
                "state `{name}` holds {} but nothing here makes it: give the event that payload, or an action (`/ make_{}`) that returns it",
                show(&target_data),
                name.to_string().to_lowercase()
            ),
        );
    }
    if let Some(guard) = &t.guard {
        b.hook(
            guard,
            HookKind::Guard,
            source_data.clone(),
            event_data.clone(),
            None,
        );
    }
    if let Some(action) = &t.action {
        b.hook(
            action,
            HookKind::Action,
            source_data,
            event_data,
            target_data,
        );
    }
    b.model.transitions.push(Transition {
        source,
        event,
        guard: t.guard.clone(),
        action: t.action.clone(),
        target,
        target_ident: t.target.name.clone(),
    });
}

impl Builder<'_> {
    fn state_event(&self, named: &Named) -> Option<usize> {
        self.event_index.get(&named.name.to_string()).copied()
    }
}
