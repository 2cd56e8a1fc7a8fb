//! The database as the commands read it: the SQLite store's read-only [`Db`]
//! (`sagaflow_sqlite::inspect`, the one place outside the store that knows the tables), and
//! what makes a run part of a saga, by the saga crate's own naming rules. No SQL here.

use std::collections::{HashMap, HashSet};

use sagaflow_core::runtime::RunId;
use sagaflow_saga::naming;
pub(crate) use sagaflow_sqlite::inspect::{EventRow, InspectError, Inspector as Db, Run, Step};

/// The compensation rounds of saga run `run_id` (its round 1, 2, ...), oldest first.
pub(crate) fn rounds(db: &Db, run_id: &str) -> Result<Vec<Run>, InspectError> {
    let saga = RunId::from(run_id);
    let mut rounds = Vec::new();
    for number in 1.. {
        match db.run(naming::round_id(&saga, number).as_str()) {
            Ok(run) => rounds.push(run),
            Err(InspectError::UnknownRun { .. }) => break,
            Err(other) => return Err(other),
        }
    }
    Ok(rounds)
}

/// The rounds that ran the abandoning step: sagas an operator gave up on.
pub(crate) fn abandoned_rounds(db: &Db) -> Result<HashSet<String>, InspectError> {
    Ok(db
        .runs_with_step(naming::ABANDON_STEP)?
        .into_iter()
        .collect())
}

/// The rounds of `run` among `by_id`, oldest first.
pub(crate) fn rounds_of<'a>(run: &Run, by_id: &HashMap<&str, &'a Run>) -> Vec<&'a Run> {
    let saga = RunId::from(run.run_id.as_str());
    (1..)
        .map_while(|n| by_id.get(naming::round_id(&saga, n).as_str()).copied())
        .collect()
}

/// The saga run a round belongs to; any other run stands for itself.
pub(crate) fn saga_of(run: &Run) -> String {
    match naming::saga_of_round(&RunId::from(run.run_id.as_str())) {
        Some(saga) if is_round(run) => saga.as_str().to_owned(),
        _ => run.run_id.clone(),
    }
}

/// The runs by id, for looking rounds up.
pub(crate) fn by_id(runs: &[Run]) -> HashMap<&str, &Run> {
    runs.iter().map(|r| (r.run_id.as_str(), r)).collect()
}

/// Whether `run` is a saga's compensation round.
pub(crate) fn is_round(run: &Run) -> bool {
    naming::is_round(&run.workflow, &run.run_id)
}
