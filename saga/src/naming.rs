//! How a saga names what it stores: its compensation rounds are runs of a workflow of their
//! own, with ids derived from the saga run's. Public so that tools (the `sagaflow` command
//! line) read a saga's runs without repeating these rules. The marks themselves are core's
//! ([`ROUND_MARK`](retention::ROUND_MARK), [`ROUND_WORKFLOW_SUFFIX`]), whose retention policy deletes a saga's run
//! together with its rounds.

use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::store::retention::{self, ROUND_WORKFLOW_SUFFIX};

/// The name of the no-op step that closes every round, so that even an empty plan is a run
/// with a step (and the end of a round is recorded like any step's).
pub const END_STEP: &str = "~compensated";

/// The only step of a round that records that an operator abandoned the saga.
pub const ABANDON_STEP: &str = "~abandoned";

/// The workflow name of the compensation rounds of the saga `saga`.
pub fn compensation_workflow(saga: &str) -> String {
    format!("{saga}{ROUND_WORKFLOW_SUFFIX}")
}

/// The run id of round `round` (from 1) of the saga run `run_id`.
pub fn round_id(run_id: &RunId, round: u32) -> RunId {
    retention::round_id(run_id, round)
}

/// The number of the round whose id is `round`, if it is one.
pub fn round_number(round: &RunId) -> Option<u32> {
    retention::split_round_id(round).map(|(_, number)| number)
}

/// The saga run a round's id belongs to, if it is one.
pub fn saga_of_round(round: &RunId) -> Option<RunId> {
    retention::split_round_id(round).map(|(saga, _)| saga)
}

/// Whether the run `run_id` of `workflow` is a saga's compensation round.
pub fn is_round(workflow: &str, run_id: &str) -> bool {
    retention::is_round(workflow, &RunId::from(run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_id_names_its_saga_and_number() {
        let round = round_id(&RunId::from("deploy-7"), 3);
        assert_eq!(round.as_str(), "deploy-7~undo3");
        assert_eq!(round_number(&round), Some(3));
        assert_eq!(saga_of_round(&round), Some(RunId::from("deploy-7")));
        assert!(is_round(&compensation_workflow("Deploy"), round.as_str()));
        assert!(!is_round("Deploy", round.as_str()));
        assert!(!is_round("Deploy~compensate", "deploy-7"));
        assert_eq!(saga_of_round(&RunId::from("a~undoX")), None);
    }
}
