//! `sagaflow graph`: a run's graph, each step drawn with its status, as mermaid, DOT or text.
//!
//! The graph comes from the run's row (`runs.graph`, schema version 5); a run created before
//! has none, and is drawn as its steps without edges.

use std::fmt::Write as _;

use sagaflow_core::{Graph, GraphSpec, NodeStyle};
use serde::Deserialize;

use crate::db::Step;
use crate::error::CliError;
use crate::render::{Paint, status_paint};

/// The graph as `NewRun::graph` stores it.
#[derive(Debug, Deserialize)]
struct Stored {
    nodes: Vec<String>,
    edges: Vec<(String, String)>,
}

/// How to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// A mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
    /// Text, one layer of steps per line.
    Ascii,
}

/// A run's graph, ready to draw.
pub(crate) struct Drawing {
    nodes: Vec<String>,
    edges: Vec<(String, String)>,
    /// Whether the edges are known (the run stored its graph).
    pub(crate) has_edges: bool,
    statuses: Vec<Option<String>>,
}

impl Drawing {
    /// From the stored graph (if any) and the run's steps.
    pub(crate) fn new(run: &str, graph: Option<&str>, steps: &[Step]) -> Result<Drawing, CliError> {
        let (nodes, edges, has_edges) = match graph {
            Some(json) => {
                let stored: Stored = serde_json::from_str(json).map_err(|e| {
                    CliError::Usage(format!("run `{run}`: its stored graph does not read: {e}"))
                })?;
                (stored.nodes, stored.edges, true)
            }
            None => (
                steps.iter().map(|s| s.name.clone()).collect(),
                Vec::new(),
                false,
            ),
        };
        let statuses = nodes
            .iter()
            .map(|n| {
                steps
                    .iter()
                    .find(|s| &s.name == n)
                    .map(|s| s.status.clone())
            })
            .collect();
        Ok(Drawing {
            nodes,
            edges,
            has_edges,
            statuses,
        })
    }

    /// The drawing in `format`.
    pub(crate) fn render(&self, format: Format, colour: bool) -> Result<String, CliError> {
        if self.nodes.is_empty() {
            return Ok(match format {
                Format::Mermaid => "flowchart LR\n".to_owned(),
                Format::Dot => "digraph workflow {\n}\n".to_owned(),
                Format::Ascii => "(no steps)\n".to_owned(),
            });
        }
        let graph = self.graph()?;
        let style = |i: usize| {
            Some(match self.statuses.get(i).and_then(Option::as_deref) {
                Some("completed") => NodeStyle::Completed,
                Some("failed") => NodeStyle::Failed,
                Some("running") => NodeStyle::Running,
                Some("skipped") => NodeStyle::Skipped,
                _ => NodeStyle::Pending,
            })
        };
        Ok(match format {
            Format::Mermaid => graph.mermaid_styled(style),
            Format::Dot => graph.dot_styled(style),
            Format::Ascii => self.ascii(&graph, colour),
        })
    }

    fn graph(&self) -> Result<Graph, CliError> {
        let mut spec = GraphSpec::new();
        for node in &self.nodes {
            spec.node(node.as_str());
        }
        for (from, to) in &self.edges {
            spec.edge(from.as_str(), to.as_str());
        }
        spec.validate().map_err(|problems| {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            CliError::Usage(format!(
                "the stored graph is not valid: {}",
                problems.join("; ")
            ))
        })
    }

    /// One line per layer (a step's layer is one past its deepest input's), each followed by
    /// the edges that leave it.
    fn ascii(&self, graph: &Graph, colour: bool) -> String {
        let mut layer = vec![0_usize; graph.len()];
        for &node in graph.topological_order() {
            let depth = graph
                .inputs(node)
                .iter()
                .map(|&i| layer[i] + 1)
                .max()
                .unwrap_or(0);
            layer[node] = depth;
        }
        let layers = layer.iter().copied().max().map_or(0, |m| m + 1);
        let mut out = String::new();
        for l in 0..layers {
            let members: Vec<usize> = (0..graph.len()).filter(|&n| layer[n] == l).collect();
            let cells: Vec<String> = members
                .iter()
                .map(|&n| {
                    let status = self.statuses.get(n).and_then(Option::as_deref);
                    let (mark, paint) = mark(status);
                    paint.apply(&format!("{mark} {}", graph.nodes()[n]), colour)
                })
                .collect();
            let _ = writeln!(out, "{:>3}  {}", l + 1, cells.join("    "));
            let leaving: Vec<String> = members
                .iter()
                .filter(|&&n| !graph.outputs(n).is_empty())
                .map(|&n| {
                    let to: Vec<&str> = graph
                        .outputs(n)
                        .iter()
                        .map(|&o| graph.nodes()[o].as_str())
                        .collect();
                    format!("{} ─▶ {}", graph.nodes()[n], to.join(", "))
                })
                .collect();
            if !leaving.is_empty() {
                let line = format!("       {}", leaving.join(" · "));
                let _ = writeln!(out, "{}", Paint::Dim.apply(&line, colour));
            }
        }
        let _ = writeln!(
            out,
            "{}",
            Paint::Dim.apply(
                "     ✓ completed  ✗ failed  ▸ running  – skipped  · not started",
                colour
            )
        );
        out
    }
}

/// The mark and colour of a step status (`None`: not started).
fn mark(status: Option<&str>) -> (&'static str, Paint) {
    match status {
        Some("completed") => ("✓", status_paint("completed")),
        Some("failed") => ("✗", status_paint("failed")),
        Some("running") => ("▸", status_paint("running")),
        Some("skipped") => ("–", status_paint("skipped")),
        _ => ("·", Paint::Dim),
    }
}
