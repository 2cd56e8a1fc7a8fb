//! From syntax to a checked workflow: steps named once, edges in the order they were written,
//! options attached, and the graph validated by `sagaflow_graph::graph`, the code the engine
//! runs at run time.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Ident, Path};

use sagaflow_graph::graph::{GraphError, GraphSpec, MAX_INPUTS};
use sagaflow_graph::{Graph, OnError};

use super::ast::{WORKFLOW, WorkflowInput};
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

impl Model {
    /// Whether the output of `step` may be missing, so its dependents receive an `Option`.
    pub(crate) fn may_be_missing(&self, step: usize) -> bool {
        let s = &self.steps[step];
        s.options.when.is_some()
            || s.options.on_error.or(self.defaults.on_error) == Some(OnError::Continue)
    }
}

struct Edge {
    from: Path,
    to: Path,
}

impl ToTokens for Edge {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let (from, to) = (&self.from, &self.to);
        tokens.extend(quote!(#from -> #to));
    }
}

/// Resolves and checks `input`. Returns `None` if anything is wrong; every problem is in
/// `errors`. Partial models are never expanded, so no half-built code reaches rustc.
pub(crate) fn build(input: &WorkflowInput, errors: &mut Errors) -> (Option<Model>, Vec<Path>) {
    let (model, mentioned) = build_as(input, &WORKFLOW, None, errors);
    let model = model.filter(|_| errors.is_empty() && input.errors.is_empty());
    (model, mentioned)
}

/// Like [`build`], with the messages and step options of the macro `dsl` (`saga!` checks its
/// forward graph here). The model is returned whenever the graph itself is valid, even when
/// other errors were found, so that the caller can go on checking it and report everything
/// at once; it must not be expanded unless `errors` is empty.
///
/// With `others`, an options statement whose target is neither a step nor `defaults` is
/// handed back there (a saga's compensation may be its target) instead of being an error.
pub(crate) fn build_as<'i>(
    input: &'i WorkflowInput,
    dsl: &Dsl,
    mut others: Option<&mut Vec<&'i OptionStatement>>,
    errors: &mut Errors,
) -> (Option<Model>, Vec<Path>) {
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

    for step in &steps {
        if step.inputs.len() > MAX_INPUTS {
            errors.at(
                &step.path,
                format!(
                    "step `{}` has {} inputs; a step takes at most {MAX_INPUTS}",
                    step.name,
                    step.inputs.len()
                ),
            );
        }
    }

    let mut spec = GraphSpec::new();
    for step in &steps {
        spec.node(step.name.clone());
    }
    for edge in &edges {
        spec.edge(name_of(&edge.from), name_of(&edge.to));
    }
    let graph = match spec.validate() {
        Ok(graph) => Some(graph),
        Err(problems) => {
            for problem in problems {
                match &problem {
                    GraphError::Empty if input.statements.is_empty() && input.errors.is_empty() => {
                        errors.at_span(
                            input.header.brace.span.join(),
                            format!(
                                "{kind} `{}` has no steps; declare them as in `{}`",
                                input.header.name, dsl.chain
                            ),
                        )
                    }
                    GraphError::Empty => {}
                    GraphError::Cycle { closing_edge, .. }
                    | GraphError::DuplicateInput {
                        second_edge: closing_edge,
                        ..
                    } => match edges.get(*closing_edge) {
                        Some(edge) => errors.at(edge, &problem),
                        None => errors.at(&input.header.name, &problem),
                    },
                    GraphError::UnknownNode { .. } | GraphError::DuplicateNode { .. } => {
                        errors.at(&input.header.name, &problem)
                    }
                }
            }
            None
        }
    };

    let mut output_step = None;
    if let (Some(output), Some(graph)) = (&input.header.output, &graph) {
        let sinks: Vec<usize> = graph.sinks().collect();
        match sinks.as_slice() {
            [one] => {
                let s = &steps[*one];
                let continues = s.options.on_error.or(defaults.on_error) == Some(OnError::Continue);
                if s.options.when.is_some() || continues {
                    errors.at(
                        output,
                        format!(
                            "the run's output comes from `{}`, which may finish without one ({}); make the output come from a step that always has one",
                            s.name,
                            if continues { "`on_error = continue`" } else { "it has a `when` guard" }
                        ),
                    );
                }
                output_step = Some(*one);
            }
            _ => errors.at(
                output,
                format!(
                    "the run's output is the output of its final step, but this {kind} has {} final steps ({}); end it with one step",
                    sinks.len(),
                    sinks
                        .iter()
                        .map(|&s| format!("`{}`", steps[s].name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }

    let model = graph.map(|graph| Model {
        steps,
        defaults,
        output_step,
        graph,
    });
    (model, mentioned)
}
