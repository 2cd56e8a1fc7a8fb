//! From syntax to a workflow: steps named once, edges in the order they were written, options
//! attached ([`Resolved`]); `valid` then checks it into a [`Model`].

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Ident, Path};

use sagaflow_graph::{Graph, Missing, may_be_missing};

use super::ast::WorkflowInput;
use crate::dsl::chain::{OptionStatement, Statement, name_of, pretty};
use crate::dsl::ctxt::{Errors, did_you_mean};
use crate::dsl::header::Dsl;
use crate::dsl::options::Options;

/// Reserved for the workflow-wide options statement.
const DEFAULTS: &str = "defaults";

/// A checked workflow.
pub(crate) struct Model {
    pub(crate) steps: Vec<Step>,
    pub(crate) defaults: Options,
    /// The step whose output is the run's output, when an output type is declared.
    pub(crate) output_step: Option<usize>,
    pub(crate) graph: Graph,
}

pub(crate) struct Step {
    pub(crate) name: String,
    /// The path as first written; the step's calls are spanned on it.
    pub(crate) path: Path,
    /// Direct upstream steps, in the order their edges were written.
    pub(crate) inputs: Vec<Input>,
    pub(crate) options: Options,
}

pub(crate) struct Input {
    pub(crate) step: usize,
    /// The upstream step as written in the edge: a type mismatch on this edge points here.
    pub(crate) written: Path,
}

impl Step {
    /// Whether this step's output may be missing, and why, with `defaults` the workflow's.
    ///
    /// The rule is `sagaflow_graph::may_be_missing`, the engine's `Builder` applies at run
    /// time too.
    pub(crate) fn may_be_missing(&self, defaults: &Options) -> Option<Missing> {
        may_be_missing(
            self.options.when.is_some(),
            self.options.on_error.or(defaults.on_error),
        )
    }
}

impl Model {
    /// Whether the output of `step` may be missing, so its dependents receive an `Option`.
    pub(crate) fn may_be_missing(&self, step: usize) -> bool {
        self.steps[step].may_be_missing(&self.defaults).is_some()
    }
}

/// An edge as written: a graph error points at the edge that closes it.
pub(crate) struct Edge {
    pub(crate) from: Path,
    pub(crate) to: Path,
}

/// A workflow's steps, options and edges as resolved from its syntax, not yet checked.
pub(crate) struct Resolved {
    pub(crate) steps: Vec<Step>,
    pub(crate) defaults: Options,
    pub(crate) edges: Vec<Edge>,
}

impl ToTokens for Edge {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let (from, to) = (&self.from, &self.to);
        tokens.extend(quote!(#from -> #to));
    }
}

/// Resolves `input` with the messages and step options of the macro `dsl`: its steps, edges
/// and options, and every path it names (for the fallback). Every problem is in `errors`.
///
/// With `others`, an options statement whose target is neither a step nor `defaults` is
/// handed back there (a saga's compensation may be its target) instead of being an error.
pub(crate) fn resolve<'i>(
    input: &'i WorkflowInput,
    dsl: &Dsl,
    mut others: Option<&mut Vec<&'i OptionStatement>>,
    errors: &mut Errors,
) -> (Resolved, Vec<Path>) {
    let kind = dsl.kind;
    let mut steps: Vec<Step> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut edges: Vec<Edge> = Vec::new();
    let mut mentioned: Vec<Path> = Vec::new();

    let mut resolve = |path: &Path, steps: &mut Vec<Step>, errors: &mut Errors| -> Option<usize> {
        let name = name_of(path);
        mentioned.push(path.clone());
        if name == DEFAULTS {
            errors.at(
                path,
                format!("`defaults` names the {kind}-wide options and cannot be a step"),
            );
            return None;
        }
        if let Some(&i) = index.get(&name) {
            let first = &steps[i].path;
            if first.to_token_stream().to_string() != path.to_token_stream().to_string() {
                errors.at(
                    path,
                    format!(
                        "two steps are named `{name}`: `{}` and `{}`; a step is named by its last path segment",
                        pretty(first),
                        pretty(path)
                    ),
                );
                return None;
            }
            return Some(i);
        }
        index.insert(name.clone(), steps.len());
        steps.push(Step {
            name,
            path: path.clone(),
            inputs: Vec::new(),
            options: Options::default(),
        });
        Some(steps.len() - 1)
    };

    for statement in &input.statements {
        let Statement::Chain(links) = statement else {
            continue;
        };
        let mut previous: Vec<(usize, Path)> = Vec::new();
        for link in links {
            let mut current = Vec::new();
            for member in link {
                if let Some(i) = resolve(member, &mut steps, errors) {
                    current.push((i, member.clone()));
                }
            }
            for (from, from_path) in &previous {
                for (to, to_path) in &current {
                    edges.push(Edge {
                        from: from_path.clone(),
                        to: to_path.clone(),
                    });
                    steps[*to].inputs.push(Input {
                        step: *from,
                        written: from_path.clone(),
                    });
                }
            }
            previous = current;
        }
    }

    let step_options = dsl.step_options();
    let mut defaults = Options::default();
    let defaults_ident = Ident::new(DEFAULTS, proc_macro2::Span::call_site());
    for statement in &input.statements {
        let Statement::Options(o) = statement else {
            continue;
        };
        let target = o.target.to_string();
        if target == DEFAULTS {
            defaults.read_with(
                &o.options,
                &defaults_ident,
                true,
                &step_options,
                kind,
                errors,
            );
        } else if let Some(&i) = index.get(target.trim_start_matches("r#")) {
            steps[i]
                .options
                .read_with(&o.options, &o.target, false, &step_options, kind, errors);
        } else if let Some(others) = others.as_deref_mut() {
            others.push(o);
        } else {
            let names = steps.iter().map(|s| s.name.as_str());
            let hint = did_you_mean(&target, names);
            let hint = if hint.is_empty() {
                format!("; options name a step of this {kind}, or `defaults`")
            } else {
                hint
            };
            errors.at(&o.target, format!("unknown step `{target}`{hint}"));
        }
    }

    let resolved = Resolved {
        steps,
        defaults,
        edges,
    };
    (resolved, mentioned)
}
