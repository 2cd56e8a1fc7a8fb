//! Step options: how one is written ([`RawOption`]), their names, their values, and the checks
//! on both.
//!
//! Values are checked with the same `RetryPolicy::validate` the engine relies on, so an option
//! the macro accepts is one the engine can run.

use std::collections::HashMap;
use std::time::Duration;

use proc_macro2::Span;
use syn::{Expr, ExprLit, Ident, Lit, Path};

use sagaflow_graph::{OnError, RetryPolicy};

use super::ctxt::{Errors, did_you_mean};
use super::duration::{assigned, duration, number, positive_duration, whole};
pub(crate) use super::raw::{RawOption, RawValue};

/// The options a step may set.
pub(crate) const STEP_OPTIONS: &[&str] = &[
    "retry",
    "timeout",
    "deadline",
    "on_error",
    "when",
    "at_most_once",
];
/// Temporal's names of step options, accepted for ours: `(Temporal's, ours)`.
///
/// Temporal bounds an activity with four timeouts; two of them are ours:
/// - start-to-close is the longest one attempt may run, from its start to its end: our
///   `timeout`, which is per attempt;
/// - schedule-to-close is the longest the activity may take over all its attempts, the delays
///   between them included: our `deadline`. Temporal counts it from when the activity is
///   scheduled and we from the first attempt's start, which is the same moment but for a
///   wait in a queue: Temporal's task queue, or here the engine's bound on steps running at
///   once.
///
/// The other two have no equivalent (see [`STEP_OPTIONS_ELSEWHERE`]).
const STEP_ALIASES: &[(&str, &str)] = &[
    ("start_to_close_timeout", "timeout"),
    ("schedule_to_close_timeout", "deadline"),
];
/// Temporal's step options that mean nothing here, each with why and what to use instead.
const STEP_OPTIONS_ELSEWHERE: &[(&str, &str)] = &[
    (
        "schedule_to_start_timeout",
        "it bounds the wait in Temporal's task queue, and a step has no task queue; `timeout` (Temporal's `start_to_close_timeout`) bounds one attempt, and `deadline` (`schedule_to_close_timeout`) all of them",
    ),
    (
        "heartbeat_timeout",
        "a step sends no heartbeats; `timeout` (Temporal's `start_to_close_timeout`) bounds one attempt, and `deadline` (`schedule_to_close_timeout`) all of them",
    ),
];
/// The keys of `retry(...)`, in Temporal's vocabulary.
const RETRY_KEYS: &[&str] = &["max_attempts", "initial", "coefficient", "max", "jitter"];
/// Temporal's own names of the keys of `retry(...)`, accepted for ours: `(Temporal's, ours)`.
const RETRY_ALIASES: &[(&str, &str)] = &[
    ("maximum_attempts", "max_attempts"),
    ("initial_interval", "initial"),
    ("backoff_coefficient", "coefficient"),
    ("maximum_interval", "max"),
];
/// Temporal's retry settings that mean nothing here, each with why and what to use instead.
const RETRY_KEYS_ELSEWHERE: &[(&str, &str)] = &[(
    "non_retryable_error_types",
    "an error is made permanent where it is returned, with `StepError::permanent`, and a permanent error is never retried",
)];
/// The options of one step, or the workflow's defaults, as understood.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) on_error: Option<OnError>,
    pub(crate) when: Option<Path>,
    pub(crate) at_most_once: Option<bool>,
    /// Options already set, by their own name (not Temporal's): where, and as written, to
    /// refuse a second setting wherever it is.
    seen: HashMap<String, (Span, String)>,
}

impl Options {
    /// Where the option `name` (by its own name, not Temporal's) was set, if it was.
    pub(crate) fn span_of(&self, name: &str) -> Option<Span> {
        self.seen.get(name).map(|(span, _)| *span)
    }

    /// Reads `raw` into these options. `defaults` is true for the macro-wide defaults. The
    /// target takes the options `known` (those of `known` that are not [`STEP_OPTIONS`] are
    /// checked for repetition only, and left to the caller); `kind` is the macro's (`workflow`,
    /// `saga`), for messages.
    pub(crate) fn read_with(
        &mut self,
        raw: &[RawOption],
        target: &Ident,
        defaults: bool,
        known: &[&str],
        kind: &str,
        errors: &mut Errors,
    ) {
        for option in raw {
            let written = option.name.to_string();
            let name = own_name(&written, STEP_ALIASES);
            if !known.contains(&name) {
                let names = Names {
                    what: "option",
                    all: "the options are",
                    known,
                    aliases: STEP_ALIASES,
                    elsewhere: STEP_OPTIONS_ELSEWHERE,
                };
                errors.at(&option.name, names.unknown(&written));
                continue;
            }
            if let Some((_, first)) = self.seen.get(name) {
                errors.at(
                    &option.name,
                    format!(
                        "{} for `{target}`",
                        set_twice(&written, first, STEP_ALIASES, "option")
                    ),
                );
                continue;
            }
            self.seen
                .insert(name.to_owned(), (option.name.span(), written.clone()));
            match name {
                "retry" => self.retry = retry(option, errors),
                "timeout" => self.timeout = positive_duration(option, errors),
                "deadline" => self.deadline = positive_duration(option, errors),
                "on_error" => self.on_error = on_error(option, errors),
                "when" if defaults => errors.at(
                    &option.name,
                    format!("`when` guards a single step and cannot be a {kind} default"),
                ),
                "when" => self.when = guard(option, errors),
                "at_most_once" => self.at_most_once = flag(option, errors),
                _ => {}
            }
        }
        if let (Some(timeout), Some(deadline)) = (self.timeout, self.deadline)
            && deadline < timeout
            && let Some(span) = self.span_of("deadline")
        {
            errors.at_span(
                span,
                format!(
                    "the deadline ({deadline:?}) is shorter than one attempt's timeout ({timeout:?})"
                ),
            );
        }
    }
}

/// Our name of the option or key written `written`: itself, unless it is one of Temporal's
/// names in `aliases`.
fn own_name<'a>(written: &'a str, aliases: &[(&'a str, &'a str)]) -> &'a str {
    aliases
        .iter()
        .find(|(alias, _)| *alias == written)
        .map_or(written, |(_, own)| own)
}

/// Why the Temporal name `written` has no equivalent, if it is one of `elsewhere`.
/// The names one list of settings accepts, for the message about one it does not.
struct Names<'a> {
    /// What one of them is called (`option`, `retry setting`).
    what: &'a str,
    /// How the list of them is introduced (`the options are`).
    all: &'a str,
    known: &'a [&'a str],
    aliases: &'a [(&'a str, &'a str)],
    /// Names from elsewhere (Temporal's) that have no equivalent, and why.
    elsewhere: &'a [(&'a str, &'a str)],
}

impl Names<'_> {
    /// The error for `written`, which is none of these names: why it has no equivalent, or
    /// the list with the closest name.
    fn unknown(&self, written: &str) -> String {
        match elsewhere(written, self.elsewhere) {
            Some(why) => format!("`{written}` has no equivalent here: {why}"),
            None => format!(
                "unknown {} `{written}`; {} {}{}",
                self.what,
                self.all,
                list(self.known),
                suggestion(written, self.known, self.aliases)
            ),
        }
    }
}

fn elsewhere<'a>(written: &str, elsewhere: &[(&str, &'a str)]) -> Option<&'a str> {
    elsewhere
        .iter()
        .find(|(name, _)| *name == written)
        .map(|(_, why)| *why)
}

/// The message for `written`, set again after `first`: the same name twice, or one name and
/// its alias. `what` is `option` or `setting`.
fn set_twice(written: &str, first: &str, aliases: &[(&str, &str)], what: &str) -> String {
    if written == first {
        return format!("`{written}` is set twice");
    }
    let (alias, own) = if own_name(written, aliases) == written {
        (first, written)
    } else {
        (written, own_name(written, aliases))
    };
    format!(
        "`{written}` and `{first}` are one {what} (`{alias}` is Temporal's name for `{own}`), set twice"
    )
}

/// ` did you mean ...?` for the unknown name `written` among the names `known` and their
/// Temporal names in `aliases`: the closest to a typo of one of them, else the one whose name
/// has every word of `written` (`attempts`, `start_to_close`), if only one does.
fn suggestion(written: &str, known: &[&str], aliases: &[(&str, &str)]) -> String {
    let aliases: Vec<(&str, &str)> = aliases
        .iter()
        .copied()
        .filter(|(_, own)| known.contains(own))
        .collect();
    let names: Vec<&str> = known
        .iter()
        .copied()
        .chain(aliases.iter().map(|(alias, _)| *alias))
        .collect();
    let found = sagaflow_graph::graph::closest(written, names.iter().copied())
        .or_else(|| by_words(written, &names, &aliases));
    match found {
        Some(name) if own_name(name, &aliases) != name => format!(
            "; did you mean `{name}` (Temporal's name for `{}`)?",
            own_name(name, &aliases)
        ),
        Some(name) => format!("; did you mean `{name}`?"),
        None => String::new(),
    }
}

/// The first of `names` that has every `_`-separated word of `written`, when all those that
/// do are names of one option (`attempts` is in `max_attempts` and `maximum_attempts`, both
/// ours `max_attempts`: the first is taken; `interval` is in two options: neither is).
fn by_words<'a>(written: &str, names: &[&'a str], aliases: &[(&str, &str)]) -> Option<&'a str> {
    let words: Vec<&str> = written.split('_').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return None;
    }
    let mut fitting = names
        .iter()
        .copied()
        .filter(|name| words.iter().all(|w| name.split('_').any(|n| n == *w)));
    let first = fitting.next()?;
    let own = own_name(first, aliases);
    fitting
        .all(|other| own_name(other, aliases) == own)
        .then_some(first)
}

pub(crate) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn retry(option: &RawOption, errors: &mut Errors) -> Option<RetryPolicy> {
    let keys = match &option.value {
        RawValue::Call(keys) => keys.as_slice(),
        RawValue::Flag => &[],
        RawValue::Assign(expr) => {
            errors.at(
                expr,
                "`retry` takes its settings in parentheses, as in `retry(max_attempts = 3, initial = 1s)`",
            );
            return None;
        }
    };
    let mut policy = RetryPolicy::default();
    // Keys already set, by our name, with the name as written.
    let mut seen: HashMap<String, String> = HashMap::new();
    let before = errors.len();
    for key in keys {
        let written = key.name.to_string();
        let name = own_name(&written, RETRY_ALIASES);
        if !RETRY_KEYS.contains(&name) {
            let names = Names {
                what: "retry setting",
                all: "the settings are",
                known: RETRY_KEYS,
                aliases: RETRY_ALIASES,
                elsewhere: RETRY_KEYS_ELSEWHERE,
            };
            errors.at(&key.name, names.unknown(&written));
            continue;
        }
        if let Some(first) = seen.get(name) {
            errors.at(
                &key.name,
                format!(
                    "{} in `retry(...)`",
                    set_twice(&written, first, RETRY_ALIASES, "setting")
                ),
            );
            continue;
        }
        seen.insert(name.to_owned(), written.clone());
        let example = |value: &str| format!("{written} = {value}");
        match name {
            "max_attempts" => {
                if let Some(n) = assigned(key, &example("5"), errors).and_then(|e| whole(e, errors))
                {
                    policy.maximum_attempts = n;
                }
            }
            "initial" => {
                if let Some(d) =
                    assigned(key, &example("1s"), errors).and_then(|e| duration(e, errors))
                {
                    policy.initial_interval = d;
                }
            }
            "max" => {
                if let Some(d) =
                    assigned(key, &example("1m"), errors).and_then(|e| duration(e, errors))
                {
                    policy.maximum_interval = Some(d);
                }
            }
            "coefficient" => {
                if let Some(x) =
                    assigned(key, &example("2.0"), errors).and_then(|e| number(e, errors))
                {
                    policy.backoff_coefficient = x;
                }
            }
            _ => {
                if let Some(x) =
                    assigned(key, &example("0.2"), errors).and_then(|e| number(e, errors))
                {
                    policy.jitter = x;
                }
            }
        }
    }
    if errors.len() > before {
        return None;
    }
    if let Err(problem) = policy.validate() {
        errors.at(
            &option.name,
            format!("this retry policy cannot work: {problem}"),
        );
        return None;
    }
    Some(policy)
}

fn on_error(option: &RawOption, errors: &mut Errors) -> Option<OnError> {
    let expr = assigned(option, "on_error = continue", errors)?;
    match expr {
        Expr::Continue(c) if c.label.is_none() => Some(OnError::Continue),
        Expr::Path(p) if p.path.is_ident("fail") => Some(OnError::Fail),
        Expr::Path(p) if p.path.get_ident().is_some() => {
            let name = p
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            errors.at(
                expr,
                format!(
                    "`on_error` is `fail` or `continue`, not `{name}`{}",
                    did_you_mean(&name, ["fail", "continue"])
                ),
            );
            None
        }
        _ => {
            errors.at(expr, "`on_error` is `fail` or `continue`");
            None
        }
    }
}

fn guard(option: &RawOption, errors: &mut Errors) -> Option<Path> {
    let expr = assigned(option, "when = has_rows", errors)?;
    match expr {
        Expr::Path(p) if p.qself.is_none() => Some(p.path.clone()),
        _ => {
            errors.at(
                expr,
                "`when` takes the name of a guard function, as in `when = has_rows`",
            );
            None
        }
    }
}

/// A flag: `at_most_once`, or `at_most_once = true | false`.
pub(crate) fn flag(option: &RawOption, errors: &mut Errors) -> Option<bool> {
    match &option.value {
        RawValue::Flag => Some(true),
        RawValue::Assign(Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        })) => Some(b.value),
        RawValue::Assign(expr) => {
            errors.at(expr, format!("`{}` is `true` or `false`", option.name));
            None
        }
        RawValue::Call(_) => {
            errors.at(
                &option.name,
                format!(
                    "`{}` takes no arguments; write `{}` alone",
                    option.name, option.name
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options `text` sets on step `s`, or every message.
    fn read(text: &str, known: &[&str]) -> Result<Options, Vec<String>> {
        let parser = syn::punctuated::Punctuated::<RawOption, syn::Token![,]>::parse_terminated;
        let raw: Vec<RawOption> = syn::parse::Parser::parse_str(parser, text)
            .map_err(|e| vec![e.to_string()])?
            .into_iter()
            .collect();
        let target = Ident::new("s", Span::call_site());
        let mut errors = Errors::default();
        let mut options = Options::default();
        options.read_with(&raw, &target, false, known, "workflow", &mut errors);
        match errors.finish() {
            Ok(()) => Ok(options),
            Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn temporals_names_set_the_same_options() {
        let ours = read(
            "retry(max_attempts = 4, initial = 100ms, coefficient = 2.0, max = 250ms), timeout = 1s, deadline = 1m",
            STEP_OPTIONS,
        )
        .map_err(|e| e.join("\n"))
        .expect("ours");
        let temporals = read(
            "retry(maximum_attempts = 4, initial_interval = 100ms, backoff_coefficient = 2.0, maximum_interval = 250ms), start_to_close_timeout = 1s, schedule_to_close_timeout = 1m",
            STEP_OPTIONS,
        )
        .map_err(|e| e.join("\n"))
        .expect("Temporal's");
        assert_eq!(ours.retry, temporals.retry);
        assert_eq!(ours.timeout, temporals.timeout);
        assert_eq!(ours.deadline, temporals.deadline);
        assert!(temporals.span_of("timeout").is_some());
        assert!(temporals.span_of("deadline").is_some());
    }

    #[test]
    fn a_name_and_its_alias_are_set_twice() {
        let errors = read(
            "retry(max = 1s, maximum_interval = 2s, maximum_attempts = 2, maximum_attempts = 3), timeout = 1s, start_to_close_timeout = 2s",
            STEP_OPTIONS,
        )
        .err()
        .expect("refused");
        assert_eq!(
            errors,
            [
                "`maximum_interval` and `max` are one setting (`maximum_interval` is Temporal's name for `max`), set twice in `retry(...)`",
                "`maximum_attempts` is set twice in `retry(...)`",
                "`start_to_close_timeout` and `timeout` are one option (`start_to_close_timeout` is Temporal's name for `timeout`), set twice for `s`",
            ]
        );
        let errors = read(
            "deadline = 1m, schedule_to_close_timeout = 2m, deadline = 3m",
            STEP_OPTIONS,
        )
        .err()
        .expect("refused");
        assert_eq!(
            errors,
            [
                "`schedule_to_close_timeout` and `deadline` are one option (`schedule_to_close_timeout` is Temporal's name for `deadline`), set twice for `s`",
                "`deadline` is set twice for `s`",
            ]
        );
    }

    #[test]
    fn each_unknown_name_gets_its_suggestion() {
        let retry = |name: &str| suggestion(name, RETRY_KEYS, RETRY_ALIASES);
        assert_eq!(retry("max_atempts"), "; did you mean `max_attempts`?");
        assert_eq!(
            retry("maximum_attempt"),
            "; did you mean `maximum_attempts` (Temporal's name for `max_attempts`)?"
        );
        assert_eq!(
            retry("backof_coefficient"),
            "; did you mean `backoff_coefficient` (Temporal's name for `coefficient`)?"
        );
        assert_eq!(retry("attempts"), "; did you mean `max_attempts`?");
        assert_eq!(
            retry("backoff"),
            "; did you mean `backoff_coefficient` (Temporal's name for `coefficient`)?"
        );
        assert_eq!(retry("jiter"), "; did you mean `jitter`?");
        // Two settings have an interval: no guess.
        assert_eq!(retry("interval"), "");
        assert_eq!(retry("banana"), "");
        let step = |name: &str| suggestion(name, STEP_OPTIONS, STEP_ALIASES);
        assert_eq!(step("retyr"), "; did you mean `retry`?");
        assert_eq!(
            step("start_to_close"),
            "; did you mean `start_to_close_timeout` (Temporal's name for `timeout`)?"
        );
        // An alias is offered only where its option is taken.
        assert_eq!(suggestion("start_to_close", &["retry"], STEP_ALIASES), "");
    }

    #[test]
    fn temporals_names_without_equivalent_say_why() {
        let errors = read(
            "heartbeat_timeout = 1s, retry(non_retryable_error_types = 1)",
            STEP_OPTIONS,
        )
        .err()
        .expect("refused");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("`heartbeat_timeout` has no equivalent here"));
        assert!(errors[1].starts_with("`non_retryable_error_types` has no equivalent here"));
    }
}
