//! The checks of a resolved workflow, a stage of their own as thiserror's `valid.rs`: the number
//! of inputs of each step, the graph (validated by `sagaflow_graph::graph`, the code the engine
//! runs at run time), and where the run's output comes from.

use sagaflow_graph::graph::{GraphError, GraphSpec, MAX_INPUTS};

use super::ast::WorkflowInput;
use super::model::{Model, Resolved};
use crate::dsl::chain::name_of;
use crate::dsl::ctxt::Errors;
use crate::dsl::header::Dsl;
use sagaflow_graph::Missing;

/// Checks `resolved`: the model when its graph is valid, even if other errors were found (the
/// caller may go on checking it); `None` otherwise. Every problem is in `errors`.
pub(crate) fn validate(
    input: &WorkflowInput,
    dsl: &Dsl,
    resolved: Resolved,
    errors: &mut Errors,
) -> Option<Model> {
    let kind = dsl.kind;
    let Resolved {
        steps,
        defaults,
        edges,
    } = resolved;
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
                if let Some(missing) = s.may_be_missing(&defaults) {
                    errors.at(
                        output,
                        format!(
                            "the run's output comes from `{}`, which may finish without one ({}); make the output come from a step that always has one",
                            s.name,
                            match missing {
                                Missing::ContinuesOnError => "`on_error = continue`",
                                Missing::Guarded => "it has a `when` guard",
                            }
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

    graph.map(|graph| Model {
        steps,
        defaults,
        output_step,
        graph,
    })
}
