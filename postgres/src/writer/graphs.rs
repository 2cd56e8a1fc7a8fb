//! The graphs a store's writers have stored: a workflow's graph is written once, into
//! `graphs` (schema 11), keyed by the workflow and its fingerprint, and a run's row names it
//! by those two columns, which it has anyway.
//!
//! Until schema 11 every run's row carried its workflow's graph (`runs.graph`): 780 bytes of a
//! 940-byte row for the bench's ten-step chain, written again with every new version of the
//! row (the run's end, each renewal of its lease) and logged each time. A creation now sends
//! its graph only while no writer of the store has seen it committed, and the batch inserts it
//! into `graphs` unless there (`ON CONFLICT DO NOTHING`); the run's `graph` stays null.

use std::collections::HashMap;
use std::sync::Mutex;

/// How many graphs are remembered before the set starts over: a process registers a few
/// workflows, each a graph or two (a rolling upgrade), so the bound is never reached but by
/// definitions made at run time, and then the cost of forgetting is a graph sent again.
const REMEMBERED: usize = 1024;

/// The `(workflow, fingerprint)` of every graph this store's writers have seen committed into
/// `graphs`. Shared by the writers; a creation asks it whether to send its graph.
#[derive(Debug, Default)]
pub(crate) struct StoredGraphs {
    known: Mutex<Known>,
}

/// The fingerprints stored, by workflow, and how many in all.
#[derive(Debug, Default)]
struct Known {
    by_workflow: HashMap<String, Vec<i64>>,
    count: usize,
}

impl StoredGraphs {
    /// Whether the graph of `workflow` with `fingerprint` is known to be in `graphs`.
    pub(crate) fn has(&self, workflow: &str, fingerprint: i64) -> bool {
        // A poisoned set is still a set of graphs that were stored: read it.
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .by_workflow
            .get(workflow)
            .is_some_and(|fingerprints| fingerprints.contains(&fingerprint))
    }

    /// Notes that a committed batch stored (or found) the graph of `workflow` with
    /// `fingerprint`.
    pub(crate) fn stored(&self, workflow: &str, fingerprint: i64) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known
            .by_workflow
            .get(workflow)
            .is_some_and(|fingerprints| fingerprints.contains(&fingerprint))
        {
            return;
        }
        if known.count >= REMEMBERED {
            *known = Known::default();
        }
        known
            .by_workflow
            .entry(workflow.to_owned())
            .or_default()
            .push(fingerprint);
        known.count += 1;
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).count
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_graph_is_known_once_stored_by_its_workflow_and_fingerprint() {
        let graphs = StoredGraphs::default();
        assert!(!graphs.has("Etl", 7));
        graphs.stored("Etl", 7);
        assert!(graphs.has("Etl", 7));
        assert!(!graphs.has("Etl", 8), "another version's graph");
        assert!(!graphs.has("Ship", 7), "another workflow's");
        graphs.stored("Etl", 7);
        assert_eq!(graphs.count(), 1);
    }

    #[test]
    fn the_set_starts_over_at_its_bound_and_never_passes_it() {
        let graphs = StoredGraphs::default();
        for i in 0..REMEMBERED {
            graphs.stored("W", i64::try_from(i).unwrap());
        }
        assert_eq!(graphs.count(), REMEMBERED);
        assert!(graphs.has("W", 0));
        graphs.stored("W", -1);
        assert_eq!(graphs.count(), 1);
        assert!(graphs.has("W", -1));
        assert!(!graphs.has("W", 0), "forgotten: sent again, stored once");
    }
}
