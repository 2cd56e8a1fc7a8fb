//! What the engine derives from a definition before running it: its problems, its graph's
//! fingerprint and JSON, and the roots every run shares. The definition keeps it
//! (worked out on first use), so it lives with the definition.

use std::sync::Arc;

use crate::runtime::definition::ErasedDefinition;
use crate::runtime::error::DefinitionError;

/// What the engine derives from a definition before running it, kept in the definition so
/// that it is worked out once, not on every run.
pub(crate) struct Plan {
    /// The definition's problems, the builder's and the engine's; empty if it can run.
    pub(crate) problems: Vec<DefinitionError>,
    pub(crate) fingerprint: u64,
    /// The graph as JSON, as [`NewRun::graph`](crate::runtime::store::NewRun::graph) holds
    /// it; `None` if the graph is invalid.
    pub(crate) graph: Option<String>,
    /// Steps with no upstream step.
    pub(crate) roots: Arc<[usize]>,
}

/// The definition's plan, worked out on first use.
pub(crate) fn plan(def: &ErasedDefinition) -> &Plan {
    def.plan.get_or_init(|| {
        let (problems, fingerprint, roots) = match def.graph() {
            Ok(graph) => (
                extra_problems(def),
                graph.fingerprint(),
                graph.roots().collect(),
            ),
            Err(problems) => (problems.to_vec(), 0, Arc::from(Vec::new())),
        };
        Plan {
            problems,
            fingerprint,
            graph: def.graph().ok().map(graph_json),
            roots,
        }
    })
}

/// Checks what the builder cannot: the defaults' retry policies (merged into each step) and
/// an output that may be missing.
fn extra_problems(def: &ErasedDefinition) -> Vec<DefinitionError> {
    let mut problems = Vec::new();
    for step in def.steps() {
        if let Some(policy) = step.options().retry
            && let Err(source) = policy.validate()
        {
            problems.push(DefinitionError::Policy {
                step: step.name().to_owned(),
                source,
            });
        }
    }
    if let Some(step) = def.output_step().and_then(|i| def.steps().get(i))
        && step.may_be_missing()
    {
        problems.push(DefinitionError::OptionalOutput {
            step: step.name().to_owned(),
        });
    }
    problems
}

/// `graph` as [`NewRun::graph`](crate::runtime::store::NewRun::graph) holds it.
pub(crate) fn graph_json(graph: &crate::Graph) -> String {
    let edges: Vec<[&str; 2]> = graph
        .edges()
        .iter()
        .map(|e| [e.from.as_str(), e.to.as_str()])
        .collect();
    serde_json::json!({ "nodes": graph.nodes(), "edges": edges }).to_string()
}
