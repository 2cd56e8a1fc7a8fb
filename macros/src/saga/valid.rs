//! The checks of a saga that need its whole forward graph, a stage of their own: one pivot per
//! path, no compensation and no bounded retry or deadline past a pivot, and no guard on a
//! pivot.

use super::model::SagaModel;
use crate::dsl::ctxt::Errors;

/// Checks `model`; every problem is in `errors`.
pub(crate) fn validate(model: &SagaModel, errors: &mut Errors) {
    past_pivots(model, errors);
    for (i, step) in model.forward.steps.iter().enumerate() {
        if let (Some(_), Some(guard)) = (&model.pivots[i], &step.options.when) {
            errors.at(
                guard,
                format!(
                    "the pivot `{}` cannot have a `when` guard: a saga's point of no return is never skipped",
                    step.name
                ),
            );
        }
    }
}

/// No compensation and no second pivot after a pivot.
fn past_pivots(model: &SagaModel, errors: &mut Errors) {
    let (forward, pivots, undos) = (&model.forward, &model.pivots, &model.undos);
    let graph = &forward.graph;
    // The pivot each step comes after, nearest first in topological order.
    let mut after: Vec<Option<usize>> = vec![None; pivots.len()];
    for &i in graph.topological_order() {
        for &up in graph.inputs(i) {
            let pivot = if pivots[up].is_some() {
                Some(up)
            } else {
                after[up]
            };
            if after[i].is_none() {
                after[i] = pivot;
            }
        }
        let Some(p) = after[i] else {
            continue;
        };
        let (name, pivot) = (&forward.steps[i].name, &forward.steps[p].name);
        if let Some(bang) = &pivots[i] {
            errors.at(
                bang,
                format!(
                    "step `{name}` is a pivot after the pivot `{pivot}`: a path has one point of no return"
                ),
            );
        }
        let options = &forward.steps[i].options;
        let bounded = options.retry.is_some_and(|r| r.maximum_attempts != 0);
        for (set, option) in [(bounded, "retry"), (options.deadline.is_some(), "deadline")] {
            if let (true, Some(span)) = (set, options.span_of(option)) {
                let what = if option == "retry" {
                    "its `max_attempts` has no effect (its intervals do); leave it out"
                } else {
                    "a `deadline` has no effect"
                };
                errors.at_span(
                    span,
                    format!(
                        "step `{name}` comes after the pivot `{pivot}`, where steps are retried until they succeed: {what}"
                    ),
                );
            }
        }
        if let Some(undo) = &undos[i] {
            errors.at(
                &undo.path,
                format!(
                    "step `{name}` comes after the pivot `{pivot}`, so it cannot have a compensation: past the pivot, steps are retried until they succeed"
                ),
            );
        }
    }
}
