//! A machine's table as data, written by `fsm!` as a `static`, and the diagrams drawn from it.

use std::fmt::Write as _;

/// A machine's states and transitions, as declared.
#[derive(Debug)]
pub struct Spec {
    /// The machine's type.
    pub name: &'static str,
    /// The initial state.
    pub initial: &'static str,
    /// Every state, in the order first declared or mentioned.
    pub states: &'static [StateSpec],
    /// Every event, in the order first declared or mentioned.
    pub events: &'static [&'static str],
    /// Every transition, in the order written.
    pub transitions: &'static [TransitionSpec],
}

/// One state.
#[derive(Debug)]
pub struct StateSpec {
    /// Its name.
    pub name: &'static str,
    /// Whether it is declared final.
    pub is_final: bool,
    /// Its entry action, if any.
    pub entry: Option<&'static str>,
    /// Its exit action, if any.
    pub exit: Option<&'static str>,
}

/// One transition, `from + event [guard] / action = to`.
#[derive(Debug)]
pub struct TransitionSpec {
    /// The source state; `None` for `_`, every state that is not final.
    pub from: Option<&'static str>,
    /// The event.
    pub event: &'static str,
    /// The guard, if any.
    pub guard: Option<&'static str>,
    /// The action, if any.
    pub action: Option<&'static str>,
    /// The target state.
    pub to: &'static str,
}

impl Spec {
    /// The state called `name`.
    pub fn state(&self, name: &str) -> Option<&StateSpec> {
        self.states.iter().find(|s| s.name == name)
    }

    /// Every `(from, transition)` pair, a wildcard expanded to each state that is not final.
    pub fn edges(&self) -> impl Iterator<Item = (&'static str, &'static TransitionSpec)> + '_ {
        self.transitions.iter().flat_map(move |t| {
            let sources: Vec<&'static str> = match t.from {
                Some(from) => vec![from],
                None => self
                    .states
                    .iter()
                    .filter(|s| !s.is_final)
                    .map(|s| s.name)
                    .collect(),
            };
            sources.into_iter().map(move |from| (from, t))
        })
    }

    /// A Mermaid `stateDiagram-v2`; `current`, if given, is highlighted.
    pub fn mermaid(&self, current: Option<&str>) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        let _ = writeln!(out, "    [*] --> {}", self.initial);
        for (from, t) in self.edges() {
            let _ = writeln!(out, "    {from} --> {} : {}", t.to, label(t));
        }
        for s in self.states.iter().filter(|s| s.is_final) {
            let _ = writeln!(out, "    {} --> [*]", s.name);
        }
        for s in self.states {
            let actions: Vec<String> = s
                .entry
                .map(|e| format!("entry / {e}"))
                .into_iter()
                .chain(s.exit.map(|e| format!("exit / {e}")))
                .collect();
            if !actions.is_empty() {
                let _ = writeln!(out, "    {} : {}", s.name, actions.join(", "));
            }
        }
        if let Some(current) = current.filter(|c| self.state(c).is_some()) {
            out.push_str("    classDef current fill:#ffd54f,stroke:#f57f17,stroke-width:3px\n");
            let _ = writeln!(out, "    class {current} current");
        }
        out
    }

    /// A Graphviz `digraph`; `current`, if given, is filled.
    pub fn dot(&self, current: Option<&str>) -> String {
        let mut out = format!("digraph {} {{\n    rankdir=LR;\n", self.name);
        out.push_str("    \"[*]\" [shape=point];\n");
        for s in self.states {
            let mut attrs = vec![format!(
                "shape={}",
                if s.is_final { "doublecircle" } else { "box" }
            )];
            if current == Some(s.name) {
                attrs.push("style=filled".to_owned());
                attrs.push("fillcolor=\"#ffd54f\"".to_owned());
            }
            let _ = writeln!(out, "    \"{}\" [{}];", s.name, attrs.join(", "));
        }
        let _ = writeln!(out, "    \"[*]\" -> \"{}\";", self.initial);
        for (from, t) in self.edges() {
            let _ = writeln!(
                out,
                "    \"{from}\" -> \"{}\" [label=\"{}\"];",
                t.to,
                label(t)
            );
        }
        out.push_str("}\n");
        out
    }
}

fn label(t: &TransitionSpec) -> String {
    let mut label = t.event.to_owned();
    if let Some(g) = t.guard {
        let _ = write!(label, " [{g}]");
    }
    if let Some(a) = t.action {
        let _ = write!(label, " / {a}");
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    static DOOR: Spec = Spec {
        name: "Door",
        initial: "Closed",
        states: &[
            StateSpec {
                name: "Closed",
                is_final: false,
                entry: None,
                exit: None,
            },
            StateSpec {
                name: "Opened",
                is_final: false,
                entry: Some("ring"),
                exit: None,
            },
            StateSpec {
                name: "Broken",
                is_final: true,
                entry: None,
                exit: None,
            },
        ],
        events: &["Open", "Close", "Break"],
        transitions: &[
            TransitionSpec {
                from: Some("Closed"),
                event: "Open",
                guard: Some("unlocked"),
                action: Some("log"),
                to: "Opened",
            },
            TransitionSpec {
                from: Some("Opened"),
                event: "Close",
                guard: None,
                action: None,
                to: "Closed",
            },
            TransitionSpec {
                from: None,
                event: "Break",
                guard: None,
                action: None,
                to: "Broken",
            },
        ],
    };

    #[test]
    fn mermaid_expands_wildcards_to_states_that_are_not_final_and_highlights() {
        let m = DOOR.mermaid(Some("Opened"));
        assert!(m.contains("[*] --> Closed\n"));
        assert!(m.contains("Closed --> Opened : Open [unlocked] / log\n"));
        assert!(m.contains("Closed --> Broken : Break\n"));
        assert!(m.contains("Opened --> Broken : Break\n"));
        assert!(!m.contains("Broken --> Broken"));
        assert!(m.contains("Broken --> [*]\n"));
        assert!(m.contains("Opened : entry / ring\n"));
        assert!(m.contains("class Opened current\n"));
        assert!(!DOOR.mermaid(None).contains("class "));
        assert!(!DOOR.mermaid(Some("Nowhere")).contains("class "));
    }

    #[test]
    fn dot_marks_final_states_and_fills_the_current_one() {
        let d = DOOR.dot(Some("Closed"));
        assert!(d.starts_with("digraph Door {"));
        assert!(d.contains("\"Broken\" [shape=doublecircle];"));
        assert!(d.contains("\"Closed\" [shape=box, style=filled, fillcolor=\"#ffd54f\"];"));
        assert!(d.contains("\"Closed\" -> \"Opened\" [label=\"Open [unlocked] / log\"];"));
        assert!(d.contains("\"[*]\" -> \"Closed\";"));
    }
}
