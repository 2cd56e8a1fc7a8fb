//! From syntax to a saga: the forward graph checked by `workflow!`'s stages, then what the saga
//! adds on top: one compensation per step (the same each time it is written), no compensation
//! on a pivot, and options for compensations. The rules that need the whole graph (one pivot
//! per path, nothing bounded or compensated past a pivot) are `valid`'s.

use std::time::Duration;

use quote::quote;
use syn::{Ident, Path, Token};

use crate::dsl::chain::{OptionStatement, Statement, name_of, pretty};
use crate::dsl::ctxt::{Errors, did_you_mean};
use crate::dsl::duration::positive_duration;
use crate::dsl::options::{Options, RawOption, RawValue, STEP_OPTIONS, flag, list};
use crate::workflow::{self, model::Model};

use super::ast::{Element, SAGA, SagaInput, UNDO_ON_UNKNOWN, UndoMark};

/// The options a compensation takes: it is retried, timed and bounded like a step, but is
/// never skipped, never left failed, and always runs again after a crash.
const UNDO_OPTIONS: &[&str] = &["retry", "timeout", "deadline"];
/// The saga-wide settings.
const SETTINGS: &[&str] = &["deadline"];

/// A checked saga.
pub(crate) struct SagaModel {
    pub(crate) forward: Model,
    /// Each step's compensation, by step index.
    pub(crate) undos: Vec<Option<Undo>>,
    /// Each step's pivot mark (`step!`), by step index: whether it is a pivot, and where.
    pub(crate) pivots: Vec<Option<Token![!]>>,
    pub(crate) deadline: Option<Duration>,
}

pub(crate) struct Undo {
    pub(crate) name: String,
    /// The path as first written; the compensation's call is spanned on it.
    pub(crate) path: Path,
    pub(crate) options: Options,
    /// `step: undo_on_unknown`.
    pub(crate) on_unknown: bool,
}

/// What the chains say of one step: its compensation and its pivot mark, as first written.
#[derive(Default)]
struct Marks<'a> {
    undo: Option<&'a UndoMark>,
    pivot: Option<&'a Token![!]>,
}

/// Resolves `input`: its forward graph checked by `workflow!`'s stages, then each step's marks
/// and compensation, their options and the saga's settings. Returns `None` when the forward
/// graph is not valid; the saga's own checks on the model are `valid`'s. Every problem is in
/// `errors`. Also returns every path named, steps and compensations, for the fallback.
pub(crate) fn resolve(input: &SagaInput, errors: &mut Errors) -> (Option<SagaModel>, Vec<Path>) {
    for e in &input.forward.errors {
        errors.push(e.clone());
    }
    // The options statements whose target is not a step: a compensation's, or unknown.
    let mut other_options = Vec::new();
    let (forward, mut mentioned) =
        workflow::check(&input.forward, &SAGA, Some(&mut other_options), errors);
    mentioned.extend(
        input
            .elements
            .iter()
            .filter_map(|e| e.undo.as_ref().map(|u| u.path.clone())),
    );

    let marks = marks(&input.elements, errors);
    // Each step's compensation, in the order the steps were first written.
    let mut undos: Vec<(String, Undo)> = Vec::new();
    for (step, m) in &marks {
        let Some(u) = m.undo else {
            continue;
        };
        let name = name_of(&u.path);
        if let Some((_, other)) = undos.iter().find(|(_, o)| o.name == name)
            && pretty(&other.path) != pretty(&u.path)
        {
            errors.at(
                &u.path,
                format!(
                    "two compensations are named `{name}`: `{}` and `{}`; a compensation is named by its last path segment",
                    pretty(&other.path),
                    pretty(&u.path)
                ),
            );
        }
        undos.push((
            step.clone(),
            Undo {
                name,
                path: u.path.clone(),
                options: Options::default(),
                on_unknown: false,
            },
        ));
    }
    let steps: Vec<String> = marks.iter().map(|(s, _)| s.clone()).collect();
    for (_, undo) in &undos {
        if steps.contains(&undo.name) {
            errors.at(
                &undo.path,
                format!(
                    "`{}` is a step of this saga, so it cannot also be a compensation",
                    undo.name
                ),
            );
        } else if undo.name == "defaults" {
            errors.at(
                &undo.path,
                "`defaults` names the saga-wide options and cannot be a compensation",
            );
        }
    }

    undo_options(&other_options, &steps, &mut undos, errors);
    on_unknown(input, &other_options, &mut undos, errors);
    let deadline = settings(&input.settings, errors);

    let Some(forward) = forward else {
        return (None, mentioned);
    };
    let n = forward.steps.len();
    let mut by_index: Vec<Option<Undo>> = (0..n).map(|_| None).collect();
    let mut pivots: Vec<Option<Token![!]>> = vec![None; n];
    for (step, undo) in undos {
        if let Some(i) = forward.steps.iter().position(|s| s.name == step) {
            by_index[i] = Some(undo);
        }
    }
    for (i, step) in forward.steps.iter().enumerate() {
        pivots[i] = find(&marks, &step.name).and_then(|m| m.pivot.cloned());
    }
    let model = SagaModel {
        forward,
        undos: by_index,
        pivots,
        deadline,
    };
    (Some(model), mentioned)
}

/// Each step's marks, reconciled over every place it is written: a compensation declared
/// again must be the same, and a pivot has none.
fn marks<'a>(elements: &'a [Element], errors: &mut Errors) -> Vec<(String, Marks<'a>)> {
    let mut marks: Vec<(String, Marks<'a>)> = Vec::new();
    for e in elements {
        let step = name_of(&e.path);
        let at = match marks.iter().position(|(s, _)| *s == step) {
            Some(at) => at,
            None => {
                marks.push((step.clone(), Marks::default()));
                marks.len() - 1
            }
        };
        let m = &mut marks[at].1;
        if let Some(bang) = e.undo.as_ref().and_then(|u| u.bang.as_ref()) {
            errors.at(
                bang,
                format!(
                    "`!` marks the pivot and goes on the step, as in `{step}!`; a compensation is never a pivot"
                ),
            );
        }
        if m.pivot.is_none() {
            m.pivot = e.pivot.as_ref();
        }
        if let Some(u) = &e.undo {
            match m.undo {
                Some(first) if pretty(&first.path) != pretty(&u.path) => errors.at(
                    &u.path,
                    format!(
                        "step `{step}` already has the compensation `{}`; a step has one compensation (write it the same each time, or only once)",
                        pretty(&first.path)
                    ),
                ),
                Some(_) => {}
                None => m.undo = Some(u),
            }
        }
    }
    for (step, m) in &marks {
        if let (Some(_), Some(u)) = (m.pivot, m.undo) {
            let (slash, path) = (&u.slash, &u.path);
            errors.at(
                quote!(#slash #path),
                format!(
                    "`{step}` is the pivot, so it cannot have a compensation: once it completes there is no going back; remove `/ {}`",
                    pretty(&u.path)
                ),
            );
        }
    }
    marks
}

fn find<'m, 'a>(marks: &'m [(String, Marks<'a>)], step: &str) -> Option<&'m Marks<'a>> {
    marks.iter().find(|(s, _)| s == step).map(|(_, m)| m)
}

/// Options statements whose target is not a step: a compensation's, or an unknown name's.
fn undo_options(
    other_options: &[&OptionStatement],
    steps: &[String],
    undos: &mut [(String, Undo)],
    errors: &mut Errors,
) {
    for o in other_options {
        let target = o.target.to_string();
        let target = target.trim_start_matches("r#");
        let owners: Vec<usize> = (0..undos.len())
            .filter(|&k| undos[k].1.name == target)
            .collect();
        let Some(&owner_at) = owners.first() else {
            let candidates = steps
                .iter()
                .map(String::as_str)
                .chain(undos.iter().map(|(_, u)| u.name.as_str()));
            let hint = did_you_mean(target, candidates);
            let hint = if hint.is_empty() {
                "; options name a step or a compensation of this saga, or `defaults`".to_owned()
            } else {
                hint
            };
            errors.at(
                &o.target,
                format!("unknown step or compensation `{target}`{hint}"),
            );
            continue;
        };
        let owner = undos[owner_at].0.clone();
        let mut kept: Vec<&RawOption> = Vec::new();
        for option in &o.options {
            let name = option.name.to_string();
            if name == UNDO_ON_UNKNOWN {
                errors.at(
                    &option.name,
                    format!(
                        "`undo_on_unknown` goes on the step, not on its compensation: `{owner}: undo_on_unknown`"
                    ),
                );
            } else if STEP_OPTIONS.contains(&name.as_str())
                && !UNDO_OPTIONS.contains(&name.as_str())
            {
                errors.at(
                    &option.name,
                    format!(
                        "`{name}` is not an option of a compensation; a compensation takes {}",
                        list(UNDO_OPTIONS)
                    ),
                );
            } else {
                kept.push(option);
            }
        }
        let kept: Vec<RawOption> = kept.into_iter().map(clone_option).collect();
        // One reading, into the first owner's options, then copied: a compensation shared by
        // several steps has one set of options, and its errors are reported once.
        let options = &mut undos[owner_at].1.options;
        options.read_with(&kept, &o.target, false, UNDO_OPTIONS, SAGA.kind, errors);
        let options = copy_options(options);
        for &k in &owners[1..] {
            undos[k].1.options = copy_options(&options);
        }
    }
}

/// `step: undo_on_unknown`, read from the options statements of steps and `defaults`: those
/// the forward model took, not the `others` it handed back.
fn on_unknown(
    input: &SagaInput,
    others: &[&OptionStatement],
    undos: &mut [(String, Undo)],
    errors: &mut Errors,
) {
    for statement in &input.forward.statements {
        let Statement::Options(o) = statement else {
            continue;
        };
        if others.iter().any(|other| std::ptr::eq(*other, o)) {
            continue;
        }
        let target = o.target.to_string();
        let target = target.trim_start_matches("r#");
        for option in o.options.iter().filter(|o| o.name == UNDO_ON_UNKNOWN) {
            let Some(value) = flag(option, errors) else {
                continue;
            };
            if target == "defaults" {
                errors.at(
                    &option.name,
                    "`undo_on_unknown` is declared step by step, for the compensations that are safe to run when a step's outcome is unknown; it cannot be a default",
                );
            } else if let Some((_, undo)) = undos.iter_mut().find(|(s, _)| s == target) {
                undo.on_unknown = value;
            } else {
                errors.at(
                    &option.name,
                    format!(
                        "`undo_on_unknown` is about a step's compensation, and `{target}` has none; declare one as in `{target} / undo_{target}`"
                    ),
                );
            }
        }
    }
}

/// `deadline = 10m`.
fn settings(settings: &[RawOption], errors: &mut Errors) -> Option<Duration> {
    let mut deadline = None;
    let mut seen: Option<&Ident> = None;
    for setting in settings {
        let name = setting.name.to_string();
        if !SETTINGS.contains(&name.as_str()) {
            errors.at(
                &setting.name,
                format!(
                    "unknown saga setting `{name}`; the saga-wide setting is `deadline = 10m`, and step options go in `step: option`{}",
                    did_you_mean(&name, SETTINGS.iter().copied())
                ),
            );
            continue;
        }
        if seen.is_some() {
            errors.at(&setting.name, "the saga's `deadline` is set twice");
            continue;
        }
        seen = Some(&setting.name);
        deadline = positive_duration(setting, errors);
    }
    deadline
}

fn clone_option(o: &RawOption) -> RawOption {
    RawOption {
        name: o.name.clone(),
        value: match &o.value {
            RawValue::Assign(e) => RawValue::Assign(e.clone()),
            RawValue::Call(inner) => RawValue::Call(inner.iter().map(clone_option).collect()),
            RawValue::Flag => RawValue::Flag,
        },
    }
}

fn copy_options(o: &Options) -> Options {
    let mut copy = Options::default();
    copy.retry = o.retry;
    copy.timeout = o.timeout;
    copy.deadline = o.deadline;
    copy
}
