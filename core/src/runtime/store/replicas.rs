//! The replicas of a service as a store's heartbeats show them: who lives, what each runs,
//! which runs each holds, and which runs no live replica can run (a version none of them
//! knows), which wait rather than fail. What `sagaflow replicas` reads
//! ([`Inspect::replicas`](super::inspect::Inspect::replicas)) and shows.

use serde::Serialize;

use crate::runtime::HEARTBEAT_EVERY;

/// A replica not heard from for this long is forgotten: its row goes at another replica's
/// heartbeat, so that the table of replicas stays as small as the replicas of the last day
/// (pods with names of their own come and go for as long as a service lives). Until then
/// `sagaflow replicas` shows it as gone.
pub const FORGET_REPLICA_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// [`FORGET_REPLICA_AFTER`] in milliseconds, as the stores' clocks count.
pub fn forget_after_ms() -> i64 {
    i64::try_from(FORGET_REPLICA_AFTER.as_millis()).unwrap_or(i64::MAX)
}

/// A replica heard from within this many milliseconds lives (three
/// [`HEARTBEAT_EVERY`]): what `sagaflow replicas` shows as live, and the replicas a store
/// divides freed runs between ([`LeaseStore::free_runs_shared`]).
///
/// [`LeaseStore::free_runs_shared`]: crate::runtime::LeaseStore::free_runs_shared
pub fn live_within_ms() -> i64 {
    i64::try_from(HEARTBEAT_EVERY.as_millis() * 3).unwrap_or(i64::MAX)
}

/// A replica's workflow and graph, as its engine registered them; `fingerprint` `None` for
/// every graph of the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Graph {
    /// The workflow's name.
    pub workflow: String,
    /// The graph's fingerprint.
    pub fingerprint: Option<u64>,
}

impl Graph {
    /// `known` as a store keeps it beside a replica: JSON `[{"workflow", "fingerprint"}]`.
    pub fn json_of(known: &[crate::runtime::KnownGraph]) -> String {
        let graphs: Vec<Graph> = known
            .iter()
            .map(|k| Graph {
                workflow: k.workflow.clone(),
                fingerprint: k.fingerprint,
            })
            .collect();
        serde_json::to_string(&graphs).unwrap_or_else(|_| "[]".to_owned())
    }

    /// What [`json_of`](Self::json_of) wrote; none if it does not read.
    pub fn from_json(json: &str) -> Vec<Graph> {
        serde_json::from_str(json).unwrap_or_default()
    }
}

/// A queue a replica serves and the bounds its engine set ([`Serve`](crate::runtime::Serve)),
/// as its heartbeat tells them: set in code, shown by `sagaflow queues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServedQueue {
    /// The queue.
    pub queue: String,
    /// At most this many of its runs at once on this replica.
    pub at_most: Option<usize>,
    /// At most this many at once over all replicas.
    pub overall: Option<usize>,
    /// At most this many of one key at once over all replicas.
    pub per_key: Option<usize>,
    /// At most this many starts in a window of this many milliseconds.
    pub rate: Option<(usize, u64)>,
}

impl ServedQueue {
    /// `queues` as a store keeps them beside a replica (JSON).
    pub fn json_of(queues: &[ServedQueue]) -> String {
        serde_json::to_string(queues).unwrap_or_else(|_| "[]".to_owned())
    }

    /// What [`json_of`](Self::json_of) wrote; none if it does not read (or is missing: a
    /// replica of a release before queues were shown).
    pub fn from_json(json: Option<&str>) -> Vec<ServedQueue> {
        json.and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default()
    }
}

/// A replica as its last heartbeat left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replica {
    /// Its owner id: what it holds leases under.
    pub owner: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// The sagaflow version it runs.
    pub version: String,
    /// When it was first heard from, unix milliseconds.
    pub started_at: i64,
    /// When it was last heard from, unix milliseconds.
    pub heartbeat_at: i64,
    /// The workflows and graphs it can run.
    pub graphs: Vec<Graph>,
    /// The queues it serves, with their bounds.
    pub queues: Vec<ServedQueue>,
}

/// An unfinished run and its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldRun {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// Its graph's fingerprint.
    pub fingerprint: u64,
    /// Who holds (or last held) its lease.
    pub owner: Option<String>,
    /// When that lease runs out, unix milliseconds.
    pub lease_expires: Option<i64>,
    /// Parked: taken up too many times; it waits for an operator.
    pub parked: bool,
}

/// What a store knows of its replicas, read at `now` (unix milliseconds, the store's clock:
/// the server's for PostgreSQL, which leases are timed by).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replicas {
    /// When it was read.
    pub now: i64,
    /// Every replica heard from, live or gone.
    pub replicas: Vec<Replica>,
    /// Every unfinished run.
    pub runs: Vec<HeldRun>,
}

/// A replica and what it does now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaStanding {
    /// The replica.
    #[serde(flatten)]
    pub replica: Replica,
    /// Heard from within three heartbeats.
    pub live: bool,
    /// Milliseconds since it was last heard from.
    pub silent_ms: i64,
    /// The runs it holds under a live lease.
    pub runs: Vec<String>,
}

/// The replicas and the runs waiting for a version no live replica runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// Every replica heard from, live ones first, then by owner.
    pub replicas: Vec<ReplicaStanding>,
    /// Unfinished runs whose workflow and graph no live replica has registered, and whose
    /// lease (if any) has run out: nobody can take them up until a replica that knows their
    /// version starts.
    pub waiting: Vec<HeldRun>,
}

impl Replicas {
    /// Who lives (heard from within three [`HEARTBEAT_EVERY`]), which runs each holds, and
    /// which runs wait for a version.
    pub fn standing(&self) -> Standing {
        let gone_after = live_within_ms();
        let mut replicas: Vec<ReplicaStanding> = self
            .replicas
            .iter()
            .map(|replica| {
                let silent_ms = (self.now - replica.heartbeat_at).max(0);
                ReplicaStanding {
                    replica: replica.clone(),
                    live: silent_ms <= gone_after,
                    silent_ms,
                    runs: self
                        .runs
                        .iter()
                        .filter(|run| {
                            run.owner.as_deref() == Some(replica.owner.as_str())
                                && run.lease_expires.is_some_and(|at| at > self.now)
                        })
                        .map(|run| run.run_id.clone())
                        .collect(),
                }
            })
            .collect();
        replicas.sort_by(|a, b| {
            b.live
                .cmp(&a.live)
                .then_with(|| a.replica.owner.cmp(&b.replica.owner))
        });
        let runnable = |run: &HeldRun| {
            replicas.iter().filter(|r| r.live).any(|r| {
                r.replica.graphs.iter().any(|graph| {
                    graph.workflow == run.workflow
                        && graph.fingerprint.is_none_or(|f| f == run.fingerprint)
                })
            })
        };
        let waiting = self
            .runs
            .iter()
            .filter(|run| !run.parked && run.lease_expires.is_none_or(|at| at <= self.now))
            .filter(|run| !runnable(run))
            .cloned()
            .collect();
        Standing { replicas, waiting }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(owner: &str, heartbeat_at: i64, graphs: &[(&str, Option<u64>)]) -> Replica {
        Replica {
            owner: owner.to_owned(),
            host: "h".to_owned(),
            pid: 1,
            version: "0.1.0".to_owned(),
            started_at: 0,
            heartbeat_at,
            graphs: graphs
                .iter()
                .map(|(workflow, fingerprint)| Graph {
                    workflow: (*workflow).to_owned(),
                    fingerprint: *fingerprint,
                })
                .collect(),
            queues: Vec::new(),
        }
    }

    fn run(id: &str, workflow: &str, fingerprint: u64, held: Option<(&str, i64)>) -> HeldRun {
        HeldRun {
            run_id: id.to_owned(),
            workflow: workflow.to_owned(),
            fingerprint,
            owner: held.map(|(owner, _)| owner.to_owned()),
            lease_expires: held.map(|(_, at)| at),
            parked: false,
        }
    }

    #[test]
    fn replicas_hold_their_leased_runs_and_unknown_versions_wait() {
        let now = 100_000;
        let replicas = Replicas {
            now,
            replicas: vec![
                replica("b", now - 1_000, &[("Deploy", Some(2))]),
                replica("a", now - 2_000, &[("Deploy", Some(1)), ("Saga", None)]),
                // Gone: silent for longer than three heartbeats; it knew version 3.
                replica("old", now - 60_000, &[("Deploy", Some(3))]),
            ],
            runs: vec![
                run("held-by-a", "Deploy", 1, Some(("a", now + 5_000))),
                run("held-by-b", "Deploy", 2, Some(("b", now + 5_000))),
                // Its lease ran out, and a live replica knows its version: free, not waiting.
                run("free", "Deploy", 2, Some(("old", now - 1))),
                // Only the gone replica knew version 3.
                run("v3", "Deploy", 3, Some(("old", now - 1))),
                // Any graph of `Saga` is known.
                run("saga", "Saga", 42, None),
                run("unknown", "Billing", 7, None),
            ],
        };
        let standing = replicas.standing();
        let owners: Vec<(&str, bool, Vec<String>)> = standing
            .replicas
            .iter()
            .map(|r| (r.replica.owner.as_str(), r.live, r.runs.clone()))
            .collect();
        assert_eq!(
            owners,
            [
                ("a", true, vec!["held-by-a".to_owned()]),
                ("b", true, vec!["held-by-b".to_owned()]),
                ("old", false, vec![]),
            ]
        );
        let waiting: Vec<&str> = standing.waiting.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(waiting, ["v3", "unknown"]);
    }

    #[test]
    fn a_parked_run_or_one_under_a_live_lease_does_not_wait() {
        let now = 10;
        let mut parked = run("parked", "Gone", 1, None);
        parked.parked = true;
        let replicas = Replicas {
            now,
            replicas: vec![],
            runs: vec![parked, run("leased", "Gone", 1, Some(("x", now + 1)))],
        };
        assert!(replicas.standing().waiting.is_empty());
    }
}
