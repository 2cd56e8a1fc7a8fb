//! The run-time graph validation on arbitrary graphs: it never panics; when it accepts a
//! graph, its topological order is a permutation of the nodes that respects every edge, and
//! when it refuses one for a cycle, the cycle's path is made of edges of the graph.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sagaflow_core::graph::{GraphError, GraphSpec};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Node names, as small numbers so that duplicates and unknown names happen often.
    nodes: Vec<u8>,
    edges: Vec<(u8, u8)>,
}

fuzz_target!(|input: Input| {
    let mut spec = GraphSpec::new();
    for n in &input.nodes {
        spec.node(format!("n{}", n % 32));
    }
    let mut edges = std::collections::HashSet::new();
    for (a, b) in &input.edges {
        let (a, b) = (format!("n{}", a % 40), format!("n{}", b % 40));
        edges.insert((a.clone(), b.clone()));
        spec.edge(a, b);
    }
    match spec.validate() {
        Ok(graph) => {
            let order = graph.topological_order();
            let mut position = vec![usize::MAX; order.len()];
            for (at, &node) in order.iter().enumerate() {
                assert_eq!(position[node], usize::MAX, "a node twice in the order");
                position[node] = at;
            }
            for node in 0..order.len() {
                for &input in graph.inputs(node) {
                    assert!(
                        position[input] < position[node],
                        "an edge against the order"
                    );
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in &errors {
                if let GraphError::Cycle { path, .. } = error {
                    assert!(path.len() >= 2, "a cycle of one name: {path:?}");
                    assert_eq!(
                        path.first(),
                        path.last(),
                        "a cycle that does not close: {path:?}"
                    );
                    for pair in path.windows(2) {
                        let edge = (pair[0].clone(), pair[1].clone());
                        assert!(
                            edges.contains(&edge),
                            "a cycle through a missing edge: {path:?}"
                        );
                    }
                }
            }
        }
    }
});
