//! The graph model: named steps and the edges between them, and the checks that make a graph
//! runnable.
//!
//! This module has no async or I/O dependencies on purpose: `workflow!` runs the very same
//! validation at build time (so a cycle is a compile error) that the engine runs when a graph is
//! built at run time (so a definition loaded from elsewhere gets the same answers).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;

/// The most inputs one step can take (the engine passes them as a tuple).
pub const MAX_INPUTS: usize = 16;

/// A graph as declared: node names and edges between names, in declaration order.
///
/// Nothing is checked while it is built; [`GraphSpec::validate`] reports every problem at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphSpec {
    nodes: Vec<String>,
    edges: Vec<Edge>,
}

/// An edge `from -> to`: `to` receives the output of `from`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Edge {
    /// The upstream node.
    pub from: String,
    /// The downstream node.
    pub to: String,
}

/// One problem found by [`GraphSpec::validate`]. Indexes refer to declaration order, so a
/// caller that kept its own positions (the macro keeps token spans) can point at the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The graph has no node at all.
    #[error("the graph has no steps")]
    Empty,
    /// Two nodes share a name.
    #[error("step `{name}` is declared twice")]
    DuplicateNode {
        /// The repeated name.
        name: String,
        /// Index of the first declaration.
        first: usize,
        /// Index of the repeated declaration.
        second: usize,
    },
    /// An edge names a node that was never declared.
    #[error("unknown step `{name}`{}", suggestion_suffix(.suggestion))]
    UnknownNode {
        /// The unknown name.
        name: String,
        /// Index of the edge that names it.
        edge: usize,
        /// A declared name close to the unknown one.
        suggestion: Option<String>,
    },
    /// The same edge is declared twice, so `node` would receive `input` twice.
    #[error(
        "step `{node}` receives `{input}` twice: the edge `{input} -> {node}` is declared twice"
    )]
    DuplicateInput {
        /// The downstream node.
        node: String,
        /// The upstream node declared twice.
        input: String,
        /// Index of the first edge.
        first_edge: usize,
        /// Index of the repeated edge.
        second_edge: usize,
    },
    /// A cycle. `path` starts and ends with the same node, and `closing_edge` is the edge that
    /// closes it (the one found last when the graph is walked in declaration order).
    #[error("{}", describe_cycle(.path))]
    Cycle {
        /// The nodes of the cycle, first node repeated at the end: `a -> b -> a` is `[a, b, a]`.
        path: Vec<String>,
        /// Index of the edge that closes the cycle.
        closing_edge: usize,
    },
}

fn suggestion_suffix(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

fn describe_cycle(path: &[String]) -> String {
    if path.len() == 2 {
        format!(
            "step `{}` depends on itself: {}",
            path[0],
            path.join(" -> ")
        )
    } else {
        format!("cycle: {}", path.join(" -> "))
    }
}

/// Returns the candidate closest to `name`, if one is close enough to be a likely typo: at most
/// one edit in three characters, where an edit is a character inserted, removed, replaced, or
/// two neighbours swapped (`retyr` is one edit from `retry`).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(name, candidate);
        let limit = (name.chars().count().max(candidate.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance with swaps of neighbours (the optimal string alignment distance),
/// hand-written because this module must stay dependency-free for the macro.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: two rows back (for swaps), the previous, the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

impl GraphSpec {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a node and returns its declaration index.
    pub fn node(&mut self, name: impl Into<String>) -> usize {
        self.nodes.push(name.into());
        self.nodes.len() - 1
    }

    /// Declares the edge `from -> to` and returns its declaration index.
    pub fn edge(&mut self, from: impl Into<String>, to: impl Into<String>) -> usize {
        self.edges.push(Edge {
            from: from.into(),
            to: to.into(),
        });
        self.edges.len() - 1
    }

    /// The declared node names, in order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The declared edges, in order.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Checks the graph and returns it ready to run, or every problem found.
    pub fn validate(&self) -> Result<Graph, Vec<GraphError>> {
        let mut errors = Vec::new();
        if self.nodes.is_empty() {
            errors.push(GraphError::Empty);
        }
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.nodes.len());
        for (i, name) in self.nodes.iter().enumerate() {
            if let Some(&first) = index.get(name.as_str()) {
                errors.push(GraphError::DuplicateNode {
                    name: name.clone(),
                    first,
                    second: i,
                });
            } else {
                index.insert(name, i);
            }
        }
        // Adjacency over known nodes only; unknown names are reported, not guessed.
        let mut outputs: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.nodes.len()];
        let mut inputs: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        let mut seen_edges: HashMap<(usize, usize), usize> =
            HashMap::with_capacity(self.edges.len());
        for (e, edge) in self.edges.iter().enumerate() {
            let mut resolve = |name: &str| match index.get(name) {
                Some(&i) => Some(i),
                None => {
                    errors.push(GraphError::UnknownNode {
                        name: name.to_owned(),
                        edge: e,
                        suggestion: closest(name, self.nodes.iter().map(String::as_str))
                            .map(str::to_owned),
                    });
                    None
                }
            };
            let (from, to) = (resolve(&edge.from), resolve(&edge.to));
            let (Some(from), Some(to)) = (from, to) else {
                continue;
            };
            if let Some(&first_edge) = seen_edges.get(&(from, to)) {
                errors.push(GraphError::DuplicateInput {
                    node: edge.to.clone(),
                    input: edge.from.clone(),
                    first_edge,
                    second_edge: e,
                });
                continue;
            }
            seen_edges.insert((from, to), e);
            outputs[from].push((to, e));
            inputs[to].push(from);
        }
        errors.extend(find_cycles(&self.nodes, &outputs));
        if !errors.is_empty() {
            return Err(errors);
        }
        let order = topological_order(&inputs, &outputs);
        Ok(Graph {
            nodes: self.nodes.clone(),
            edges: self.edges.clone(),
            index: self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            inputs,
            outputs: outputs
                .into_iter()
                .map(|outs| outs.into_iter().map(|(to, _)| to).collect())
                .collect(),
            order,
        })
    }
}

/// Walks the graph depth-first in declaration order (iteratively, so a 100,000-step chain does
/// not overflow the stack) and reports one cycle per back edge found.
fn find_cycles(nodes: &[String], outputs: &[Vec<(usize, usize)>]) -> Vec<GraphError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; nodes.len()];
    let mut errors = Vec::new();
    for root in 0..nodes.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (node, next output to look at)
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&(to, edge)) = outputs[node].get(*next) else {
                mark[node] = Mark::Done;
                stack.pop();
                continue;
            };
            *next += 1;
            match mark[to] {
                Mark::New => {
                    mark[to] = Mark::OnPath;
                    stack.push((to, 0));
                }
                Mark::OnPath => {
                    let start = stack.iter().position(|&(n, _)| n == to).unwrap_or(0);
                    let mut path: Vec<String> = stack[start..]
                        .iter()
                        .map(|&(n, _)| nodes[n].clone())
                        .collect();
                    path.push(nodes[to].clone());
                    errors.push(GraphError::Cycle {
                        path,
                        closing_edge: edge,
                    });
                }
                Mark::Done => {}
            }
        }
    }
    errors
}

/// Kahn's algorithm, always taking the ready node declared first, so the order is the same on
/// every build and every machine.
fn topological_order(inputs: &[Vec<usize>], outputs: &[Vec<(usize, usize)>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = inputs.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, w)| **w == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(inputs.len());
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for &(to, _) in &outputs[node] {
            waiting[to] -= 1;
            if waiting[to] == 0 {
                ready.push(Reverse(to));
            }
        }
    }
    order
}

/// A validated graph: no cycle, no unknown or duplicate name. Nodes are identified by their
/// declaration index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    nodes: Vec<String>,
    edges: Vec<Edge>,
    index: HashMap<String, usize>,
    inputs: Vec<Vec<usize>>,
    outputs: Vec<Vec<usize>>,
    order: Vec<usize>,
}

/// How a node is drawn in a diagram of a run: its status, used as a CSS class in mermaid and
/// as a fill colour in DOT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStyle {
    /// Not started.
    Pending,
    /// Running now.
    Running,
    /// Finished with an output.
    Completed,
    /// Failed.
    Failed,
    /// Skipped by a guard, or not run because the run stopped.
    Skipped,
}

impl NodeStyle {
    fn name(self) -> &'static str {
        match self {
            NodeStyle::Pending => "pending",
            NodeStyle::Running => "running",
            NodeStyle::Completed => "completed",
            NodeStyle::Failed => "failed",
            NodeStyle::Skipped => "skipped",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            NodeStyle::Pending => "#eeeeee",
            NodeStyle::Running => "#fff3b0",
            NodeStyle::Completed => "#c8f7c5",
            NodeStyle::Failed => "#f7c5c5",
            NodeStyle::Skipped => "#dddddd",
        }
    }
}

impl Graph {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no node (never true for a validated graph).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node names, in declaration order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The edges, in declaration order.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The direct upstream nodes of `node`, in the order their edges were declared: the order
    /// in which the step receives their outputs.
    pub fn inputs(&self, node: usize) -> &[usize] {
        self.inputs.get(node).map_or(&[], Vec::as_slice)
    }

    /// The direct downstream nodes of `node`.
    pub fn outputs(&self, node: usize) -> &[usize] {
        self.outputs.get(node).map_or(&[], Vec::as_slice)
    }

    /// Nodes with no upstream.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&n| self.inputs[n].is_empty())
    }

    /// Nodes with no downstream.
    pub fn sinks(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&n| self.outputs[n].is_empty())
    }

    /// A topological order, deterministic: among ready nodes the one declared first comes first.
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// A stable fingerprint of the graph's shape (names and edges, in order), so a stored run
    /// can tell that it was started under a different graph. FNV-1a: fixed across builds and
    /// platforms, unlike `std`'s hasher.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = crate::fnv::Fnv1a::with_seed(0);
        for n in &self.nodes {
            hash.write(n.as_bytes());
            hash.write(&[0]);
        }
        for e in &self.edges {
            hash.write(e.from.as_bytes());
            hash.write(&[1]);
            hash.write(e.to.as_bytes());
            hash.write(&[2]);
        }
        hash.finish()
    }

    /// The graph as a mermaid flowchart.
    pub fn mermaid(&self) -> String {
        self.mermaid_styled(|_| None)
    }

    /// The graph as a mermaid flowchart, each node given the style `style` returns for it.
    pub fn mermaid_styled(&self, style: impl Fn(usize) -> Option<NodeStyle>) -> String {
        let mut out = String::from("flowchart LR\n");
        for (i, name) in self.nodes.iter().enumerate() {
            let _ = writeln!(out, "    s{i}[\"{}\"]", escape(name, '"', "#quot;"));
        }
        for e in &self.edges {
            if let (Some(a), Some(b)) = (self.index_of(&e.from), self.index_of(&e.to)) {
                let _ = writeln!(out, "    s{a} --> s{b}");
            }
        }
        let styled: Vec<(usize, NodeStyle)> = (0..self.nodes.len())
            .filter_map(|i| style(i).map(|s| (i, s)))
            .collect();
        if !styled.is_empty() {
            for s in [
                NodeStyle::Pending,
                NodeStyle::Running,
                NodeStyle::Completed,
                NodeStyle::Failed,
                NodeStyle::Skipped,
            ] {
                let _ = writeln!(out, "    classDef {} fill:{}", s.name(), s.colour());
            }
            for (i, s) in styled {
                let _ = writeln!(out, "    class s{i} {}", s.name());
            }
        }
        out
    }

    /// The graph in Graphviz DOT.
    pub fn dot(&self) -> String {
        self.dot_styled(|_| None)
    }

    /// The graph in Graphviz DOT, each node filled by the style `style` returns for it.
    pub fn dot_styled(&self, style: impl Fn(usize) -> Option<NodeStyle>) -> String {
        let mut out = String::from("digraph workflow {\n    rankdir=LR;\n");
        for (i, name) in self.nodes.iter().enumerate() {
            let label = escape(name, '"', "\\\"");
            match style(i) {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "    s{i} [label=\"{label}\", style=filled, fillcolor=\"{}\", tooltip=\"{}\"];",
                        s.colour(),
                        s.name()
                    );
                }
                None => {
                    let _ = writeln!(out, "    s{i} [label=\"{label}\"];");
                }
            }
        }
        for e in &self.edges {
            if let (Some(a), Some(b)) = (self.index_of(&e.from), self.index_of(&e.to)) {
                let _ = writeln!(out, "    s{a} -> s{b};");
            }
        }
        out.push_str("}\n");
        out
    }
}

fn escape(s: &str, c: char, with: &str) -> String {
    s.replace(c, with)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: &[&str], edges: &[(&str, &str)]) -> GraphSpec {
        let mut g = GraphSpec::new();
        for n in nodes {
            g.node(*n);
        }
        for (a, b) in edges {
            g.edge(*a, *b);
        }
        g
    }

    #[test]
    fn a_diamond_validates_in_declaration_order() {
        let g = spec(
            &["extract", "clean", "audit", "load"],
            &[
                ("extract", "clean"),
                ("extract", "audit"),
                ("clean", "load"),
                ("audit", "load"),
            ],
        )
        .validate()
        .expect("valid");
        assert_eq!(g.topological_order(), &[0, 1, 2, 3]);
        assert_eq!(g.inputs(3), &[1, 2]);
        assert_eq!(g.outputs(0), &[1, 2]);
        assert_eq!(g.roots().collect::<Vec<_>>(), vec![0]);
        assert_eq!(g.sinks().collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn inputs_keep_the_order_edges_were_declared_in() {
        let g = spec(&["a", "b", "c"], &[("b", "c"), ("a", "c")])
            .validate()
            .expect("valid");
        assert_eq!(g.inputs(2), &[1, 0]);
    }

    #[test]
    fn the_order_prefers_the_node_declared_first() {
        let g = spec(&["z", "y", "x"], &[]).validate().expect("valid");
        assert_eq!(g.topological_order(), &[0, 1, 2]);
        let g = spec(&["a", "b", "c"], &[("c", "a")])
            .validate()
            .expect("valid");
        assert_eq!(g.topological_order(), &[1, 2, 0]);
    }

    #[test]
    fn a_three_cycle_names_the_whole_path_at_the_closing_edge() {
        let errors = spec(&["a", "b", "c"], &[("a", "b"), ("b", "c"), ("c", "a")])
            .validate()
            .expect_err("cycle");
        assert_eq!(
            errors,
            vec![GraphError::Cycle {
                path: vec!["a".into(), "b".into(), "c".into(), "a".into()],
                closing_edge: 2
            }]
        );
        assert_eq!(errors[0].to_string(), "cycle: a -> b -> c -> a");
    }

    #[test]
    fn a_self_loop_says_the_step_depends_on_itself() {
        let errors = spec(&["a"], &[("a", "a")]).validate().expect_err("loop");
        assert_eq!(errors[0].to_string(), "step `a` depends on itself: a -> a");
    }

    #[test]
    fn every_problem_is_reported_together() {
        let errors = spec(
            &["extract", "load", "load"],
            &[("extract", "lod"), ("extract", "load"), ("extract", "load")],
        )
        .validate()
        .expect_err("invalid");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            matches!(&errors[0], GraphError::DuplicateNode { name, first: 1, second: 2 } if name == "load")
        );
        assert_eq!(
            errors[1].to_string(),
            "unknown step `lod`; did you mean `load`?"
        );
        assert!(matches!(
            &errors[2],
            GraphError::DuplicateInput {
                first_edge: 1,
                second_edge: 2,
                ..
            }
        ));
    }

    #[test]
    fn an_empty_graph_is_an_error() {
        assert_eq!(GraphSpec::new().validate(), Err(vec![GraphError::Empty]));
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let mut g = GraphSpec::new();
        for i in 0..100_000 {
            g.node(format!("s{i}"));
            if i > 0 {
                g.edge(format!("s{}", i - 1), format!("s{i}"));
            }
        }
        g.edge("s99999", "s0");
        let errors = g.validate().expect_err("cycle");
        assert!(
            matches!(&errors[0], GraphError::Cycle { path, closing_edge: 99_999 } if path.len() == 100_001)
        );
    }

    #[test]
    fn closest_finds_typos_only() {
        let names = ["extract", "transform", "load"];
        assert_eq!(closest("transfrom", names), Some("transform"));
        assert_eq!(closest("lod", names), Some("load"));
        assert_eq!(closest("banana", names), None);
        // A swap of neighbours is one edit, so short names find theirs too.
        assert_eq!(closest("retyr", ["retry", "timeout"]), Some("retry"));
        assert_eq!(closest("laod", names), Some("load"));
    }

    #[test]
    fn the_edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("retyr", "retry"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(edit_distance("max_atempts", "max_attempts"), 1);
    }

    #[test]
    fn diagrams_draw_every_node_and_edge() {
        let g = spec(&["a", "b"], &[("a", "b")]).validate().expect("valid");
        assert_eq!(
            g.mermaid(),
            "flowchart LR\n    s0[\"a\"]\n    s1[\"b\"]\n    s0 --> s1\n"
        );
        let dot = g.dot();
        assert!(
            dot.contains("s0 [label=\"a\"];") && dot.contains("s0 -> s1;"),
            "{dot}"
        );
        let styled = g.mermaid_styled(|i| (i == 1).then_some(NodeStyle::Failed));
        assert!(styled.contains("class s1 failed"), "{styled}");
    }

    #[test]
    fn the_fingerprint_changes_with_the_shape() {
        let a = spec(&["a", "b"], &[("a", "b")]).validate().expect("valid");
        let b = spec(&["a", "b"], &[]).validate().expect("valid");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }

    /// Stored runs keep the fingerprint of the graph they started under, so its value must not
    /// change between versions: this one is FNV-1a of "a\0b\0a\x01b\x02", computed apart.
    #[test]
    fn the_fingerprint_is_stable_across_versions() {
        let a = spec(&["a", "b"], &[("a", "b")]).validate().expect("valid");
        assert_eq!(a.fingerprint(), 0x01fe_7f7f_1865_05e8);
    }
}
