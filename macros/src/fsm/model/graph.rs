//! The graph checks of `fsm!`: every state reachable from the initial one, and, when final
//! states are declared, a way from every state to one of them.

use crate::dsl::ctxt::Errors;

use super::Model;

/// The edges `(from, to)` between known states, a wildcard expanded to every state that is
/// not final.
fn edges(model: &Model) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for t in &model.transitions {
        if !model.states[t.target].known {
            continue;
        }
        match t.source {
            Some(s) => out.push((s, t.target)),
            None => out.extend(
                model
                    .known_states()
                    .filter(|(_, s)| !s.is_final)
                    .map(|(i, _)| (i, t.target)),
            ),
        }
    }
    out
}

fn closure(start: &[usize], n: usize, edges: &[(usize, usize)], forward: bool) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut stack: Vec<usize> = start.to_vec();
    for &s in start {
        seen[s] = true;
    }
    while let Some(at) = stack.pop() {
        for &(a, b) in edges {
            let (from, to) = if forward { (a, b) } else { (b, a) };
            if from == at && !seen[to] {
                seen[to] = true;
                stack.push(to);
            }
        }
    }
    seen
}

pub(crate) fn check(model: &Model, errors: &mut Errors) {
    let Some(initial) = model.initial else {
        return;
    };
    let n = model.states.len();
    let edges = edges(model);
    let reachable = closure(&[initial], n, &edges, true);
    for (i, s) in model.known_states() {
        if !reachable[i] {
            errors.at(
                s.at.as_ref().unwrap_or(&s.name),
                format!(
                    "state `{}` is unreachable: no chain of transitions leads to it from the initial state `{}`",
                    s.name, model.states[initial].name
                ),
            );
        }
    }
    let finals: Vec<usize> = model
        .known_states()
        .filter(|(_, s)| s.is_final)
        .map(|(i, _)| i)
        .collect();
    if finals.is_empty() {
        return;
    }
    let ends = closure(&finals, n, &edges, false);
    let names: Vec<String> = finals
        .iter()
        .map(|&i| format!("`{}`", model.states[i].name))
        .collect();
    for (i, s) in model.known_states() {
        if reachable[i] && !ends[i] {
            errors.at(
                s.at.as_ref().unwrap_or(&s.name),
                format!(
                    "state `{}` has no way to a final state ({}): the machine would stay in it forever; add a transition out of it, or declare it `state {} {{ final }}`",
                    s.name,
                    names.join(", "),
                    s.name
                ),
            );
        }
    }
}
