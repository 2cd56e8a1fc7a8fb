//! Step options: their names, their values, and the checks on both.
//!
//! Values are checked with the same `RetryPolicy::validate` the engine relies on, so an option
//! the macro accepts is one the engine can run.

use std::collections::HashMap;
use std::time::Duration;

use proc_macro2::Span;
use syn::{Expr, ExprLit, Ident, Lit, Path};

use sagaflow_core::{OnError, RetryPolicy};

use super::ast::{RawOption, RawValue};
use crate::ctxt::{Errors, did_you_mean};

/// The options a step may set.
pub(crate) const STEP_OPTIONS: &[&str] = &[
    "retry",
    "timeout",
    "deadline",
    "on_error",
    "when",
    "at_most_once",
];
/// The keys of `retry(...)`, in Temporal's vocabulary.
const RETRY_KEYS: &[&str] = &["max_attempts", "initial", "coefficient", "max", "jitter"];
const UNITS: &str = "`ms`, `s`, `m` or `h`";

/// The options of one step, or the workflow's defaults, as understood.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) on_error: Option<OnError>,
    pub(crate) when: Option<Path>,
    pub(crate) at_most_once: Option<bool>,
    /// Options already set, to refuse a second setting wherever it is.
    seen: HashMap<String, Span>,
}

impl Options {
    /// Where the option `name` was set, if it was.
    pub(crate) fn span_of(&self, name: &str) -> Option<Span> {
        self.seen.get(name).copied()
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
            let name = option.name.to_string();
            if !known.contains(&name.as_str()) {
                errors.at(
                    &option.name,
                    format!(
                        "unknown option `{name}`; the options are {}{}",
                        list(known),
                        did_you_mean(&name, known.iter().copied())
                    ),
                );
                continue;
            }
            if self.seen.contains_key(&name) {
                errors.at(
                    &option.name,
                    format!("`{name}` is set twice for `{target}`"),
                );
                continue;
            }
            self.seen.insert(name.clone(), option.name.span());
            match name.as_str() {
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
            && let Some(span) = self.seen.get("deadline")
        {
            errors.at_span(
                *span,
                format!(
                    "the deadline ({deadline:?}) is shorter than one attempt's timeout ({timeout:?})"
                ),
            );
        }
    }
}

pub(crate) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn assigned<'a>(option: &'a RawOption, example: &str, errors: &mut Errors) -> Option<&'a Expr> {
    match &option.value {
        RawValue::Assign(expr) => Some(expr),
        RawValue::Call(_) | RawValue::Flag => {
            errors.at(
                &option.name,
                format!("`{}` needs a value, as in `{example}`", option.name),
            );
            None
        }
    }
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
    let mut seen: HashMap<String, ()> = HashMap::new();
    let before = errors.len();
    for key in keys {
        let name = key.name.to_string();
        if seen.insert(name.clone(), ()).is_some() {
            errors.at(&key.name, format!("`{name}` is set twice in `retry(...)`"));
            continue;
        }
        match name.as_str() {
            "max_attempts" => {
                if let Some(n) =
                    assigned(key, "max_attempts = 5", errors).and_then(|e| whole(e, errors))
                {
                    policy.maximum_attempts = n;
                }
            }
            "initial" => {
                if let Some(d) =
                    assigned(key, "initial = 1s", errors).and_then(|e| duration(e, errors))
                {
                    policy.initial_interval = d;
                }
            }
            "max" => {
                if let Some(d) = assigned(key, "max = 1m", errors).and_then(|e| duration(e, errors))
                {
                    policy.maximum_interval = Some(d);
                }
            }
            "coefficient" => {
                if let Some(x) =
                    assigned(key, "coefficient = 2.0", errors).and_then(|e| number(e, errors))
                {
                    policy.backoff_coefficient = x;
                }
            }
            "jitter" => {
                if let Some(x) =
                    assigned(key, "jitter = 0.2", errors).and_then(|e| number(e, errors))
                {
                    policy.jitter = x;
                }
            }
            _ => errors.at(
                &key.name,
                format!(
                    "unknown retry setting `{name}`; the settings are {}{}",
                    list(RETRY_KEYS),
                    did_you_mean(&name, RETRY_KEYS.iter().copied())
                ),
            ),
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

pub(crate) fn positive_duration(option: &RawOption, errors: &mut Errors) -> Option<Duration> {
    let example = format!("{} = 30s", option.name);
    let expr = assigned(option, &example, errors)?;
    let d = duration(expr, errors)?;
    if d.is_zero() {
        errors.at(expr, format!("`{}` must be longer than zero", option.name));
        return None;
    }
    Some(d)
}

fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

/// `100ms`, `30s`, `1.5m`, `2h`.
pub(crate) fn duration(expr: &Expr, errors: &mut Errors) -> Option<Duration> {
    let (digits, suffix) = match literal(expr) {
        Some(Lit::Int(i)) => (i.base10_digits().to_owned(), i.suffix().to_owned()),
        Some(Lit::Float(f)) => (f.base10_digits().to_owned(), f.suffix().to_owned()),
        _ => {
            errors.at(
                expr,
                format!("expected a duration such as `30s`: a number and a unit, {UNITS}"),
            );
            return None;
        }
    };
    let scale = match suffix.as_str() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3_600.0,
        "" => {
            errors.at(
                expr,
                format!("`{digits}` has no unit; write it with one of {UNITS}, as in `{digits}s`"),
            );
            return None;
        }
        other => {
            errors.at(
                expr,
                format!("unknown unit `{other}` in `{digits}{other}`; use {UNITS}"),
            );
            return None;
        }
    };
    let value: f64 = digits.parse().ok()?;
    let secs = value * scale;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if secs < 1e12 => Some(d),
        _ => {
            errors.at(expr, format!("`{digits}{suffix}` is too long a duration"));
            None
        }
    }
}

fn whole(expr: &Expr, errors: &mut Errors) -> Option<u32> {
    match literal(expr) {
        Some(Lit::Int(i)) if i.suffix().is_empty() => match i.base10_parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.at(
                    expr,
                    "too large: at most 4294967295 attempts (0 means unlimited)",
                );
                None
            }
        },
        _ => {
            errors.at(
                expr,
                "expected a whole number of attempts, such as `5` (0 means unlimited)",
            );
            None
        }
    }
}

fn number(expr: &Expr, errors: &mut Errors) -> Option<f64> {
    match literal(expr) {
        Some(Lit::Float(f)) if f.suffix().is_empty() => f.base10_parse().ok(),
        Some(Lit::Int(i)) if i.suffix().is_empty() => i.base10_parse::<u32>().ok().map(f64::from),
        _ => {
            errors.at(expr, "expected a number, such as `2.0`");
            None
        }
    }
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
