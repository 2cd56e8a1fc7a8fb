//! Properties of graph validation over random graphs: every acyclic graph validates with an
//! order that respects its edges, and a back edge always yields a cycle error whose path is a
//! real cycle of the graph.

use std::collections::HashSet;

use proptest::prelude::*;
use sagaflow_graph::graph::{GraphError, GraphSpec};

/// A random DAG: `n` nodes with a hidden topological order, declared in a shuffled order, with
/// edges only from lower to higher hidden rank.
fn dag() -> impl Strategy<Value = (Vec<String>, Vec<(usize, usize)>)> {
    (1usize..40)
        .prop_flat_map(|n| {
            let pairs: Vec<(usize, usize)> = (0..n)
                .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
                .collect();
            let len = pairs.len();
            (
                Just(n),
                Just(pairs),
                proptest::collection::vec(any::<bool>(), len),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            )
        })
        .prop_map(|(n, pairs, keep, by_rank)| {
            // `by_rank[r]` is the node at hidden position r.
            let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
            let edges = pairs
                .into_iter()
                .zip(keep)
                .filter(|(_, k)| *k)
                .map(|((a, b), _)| (by_rank[a], by_rank[b]))
                .collect();
            (names, edges)
        })
}

fn spec(names: &[String], edges: &[(usize, usize)]) -> GraphSpec {
    let mut g = GraphSpec::new();
    for n in names {
        g.node(n.clone());
    }
    for &(a, b) in edges {
        g.edge(names[a].clone(), names[b].clone());
    }
    g
}

fn reachable(n: usize, edges: &[(usize, usize)], from: usize) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut stack = vec![from];
    while let Some(x) = stack.pop() {
        for &(a, b) in edges {
            if a == x && !seen[b] {
                seen[b] = true;
                stack.push(b);
            }
        }
    }
    seen
}

proptest! {
    #[test]
    fn acyclic_graphs_validate_in_an_order_that_respects_every_edge((names, edges) in dag()) {
        let graph = spec(&names, &edges).validate().expect("a DAG validates");
        let order = graph.topological_order();
        prop_assert_eq!(order.len(), names.len());
        let mut position = vec![usize::MAX; names.len()];
        for (p, &node) in order.iter().enumerate() {
            prop_assert_eq!(position[node], usize::MAX, "node {} appears twice", node);
            position[node] = p;
        }
        for &(a, b) in &edges {
            prop_assert!(position[a] < position[b], "edge {} -> {} out of order", a, b);
        }
        let again = spec(&names, &edges).validate().expect("valid");
        prop_assert_eq!(again.topological_order(), order);
    }

    #[test]
    fn a_back_edge_yields_a_cycle_whose_path_is_a_real_cycle(
        (names, edges) in dag(),
        pick in any::<proptest::sample::Index>(),
    ) {
        // Choose a pair (a, b) with b reachable from a, or a self loop, and add b -> a.
        let n = names.len();
        let mut pairs: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| {
                let r = reachable(n, &edges, a);
                (0..n).filter(move |&b| r[b]).map(move |b| (a, b))
            })
            .collect();
        pairs.push((0, 0));
        let (a, b) = pairs[pick.index(pairs.len())];
        let mut with_back = edges.clone();
        with_back.push((b, a));
        let errors = spec(&names, &with_back).validate().expect_err("a cycle");
        let edge_set: HashSet<(String, String)> = with_back
            .iter()
            .map(|&(x, y)| (names[x].clone(), names[y].clone()))
            .collect();
        let mut cycles = 0;
        for e in &errors {
            let GraphError::Cycle { path, closing_edge } = e else {
                prop_assert!(false, "only cycles expected, got {:?}", e);
                continue;
            };
            cycles += 1;
            prop_assert!(path.len() >= 2);
            prop_assert_eq!(path.first(), path.last());
            for w in path.windows(2) {
                prop_assert!(edge_set.contains(&(w[0].clone(), w[1].clone())), "{:?} is not an edge", w);
            }
            let (x, y) = with_back[*closing_edge];
            let closing = (names[x].clone(), names[y].clone());
            prop_assert!(path.windows(2).any(|w| (w[0].clone(), w[1].clone()) == closing));
        }
        prop_assert!(cycles >= 1);
    }
}
