//! Requests from outside the process that runs a saga: an operator's retry, skip or abandon of
//! a stuck saga, and a cancellation, made by anything that can reach the store (the `sagaflow`
//! command line) and acted on by the process that has the saga's definition.
//!
//! A request is a durable signal (the store's `signals` table): the operator's on the stuck
//! compensation round, the cancellation on the forward run. A signal is kept once per run and
//! name, so a request cannot be made twice for one round; acting on it starts the next round,
//! so it is never acted on twice either.

use serde::{Deserialize, Serialize};

use sagaflow_core::runtime::{RunId, Store, StoredRunStatus};

use crate::error::SagaError;
use crate::plan;

/// The signal that carries an operator's request, on a stuck compensation round.
pub const OPERATOR_SIGNAL: &str = "sagaflow.operator";
/// The signal that asks for a saga run's cancellation, on its forward run.
pub const CANCEL_SIGNAL: &str = "sagaflow.cancel";

/// What an operator asks of a stuck saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperatorAction {
    /// Run the compensations left, from the one that got stuck.
    Retry,
    /// Leave the stuck compensation and run the others.
    Skip,
    /// Give up: no further compensation.
    Abandon,
}

impl OperatorAction {
    /// The action's name: `retry`, `skip` or `abandon`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorAction::Retry => "retry",
            OperatorAction::Skip => "skip",
            OperatorAction::Abandon => "abandon",
        }
    }
}

/// The compensation round runs of saga run `run_id`, as ids, oldest first, with how each ended.
pub async fn rounds(
    store: &dyn Store,
    run_id: &RunId,
) -> Result<Vec<(RunId, StoredRunStatus)>, SagaError> {
    let mut rounds = Vec::new();
    let mut number = 1;
    loop {
        let id = plan::round_id(run_id, number);
        let Some(run) = store.load_run(&id).await? else {
            return Ok(rounds);
        };
        rounds.push((id, run.status));
        number += 1;
    }
}

/// Asks the process that runs the saga run `run_id` to `action` it: kept in the store until
/// that process calls [`SagaDefinition::serve_requests`](crate::SagaDefinition::serve_requests).
/// The saga must be stuck (its latest compensation round failed). Returns whether this call
/// made the request (`false`: one was made for this round already).
pub async fn request(
    store: &dyn Store,
    run_id: &RunId,
    action: OperatorAction,
) -> Result<bool, SagaError> {
    let rounds = rounds(store, run_id).await?;
    match rounds.last() {
        Some((round, StoredRunStatus::Failed | StoredRunStatus::Cancelled)) => {
            let payload = serde_json::to_string(&action).map_err(|e| SagaError::Decode {
                saga: String::new(),
                run_id: run_id.clone(),
                what: "operator request".to_owned(),
                message: e.to_string(),
            })?;
            Ok(store
                .deliver_signal(round, OPERATOR_SIGNAL, &payload)
                .await?)
        }
        _ => {
            let status = match (rounds.last(), store.load_run(run_id).await?) {
                (_, None) => {
                    return Err(SagaError::NotFound {
                        saga: String::new(),
                        run_id: run_id.clone(),
                    });
                }
                (Some(_), _) => "compensating or compensated".to_owned(),
                (None, Some(run)) => format!("{:?}", run.status).to_lowercase(),
            };
            Err(SagaError::NotStuck {
                saga: String::new(),
                run_id: run_id.clone(),
                status,
                action: match action {
                    OperatorAction::Retry => "retried",
                    OperatorAction::Skip => "skipped",
                    OperatorAction::Abandon => "abandoned",
                },
            })
        }
    }
}

/// Asks the process that runs the saga run `run_id` to cancel it (and so compensate it),
/// as [`SagaHandle::cancel`](crate::SagaHandle::cancel) does in that process. Returns whether
/// this call made the request.
pub async fn request_cancel(store: &dyn Store, run_id: &RunId) -> Result<bool, SagaError> {
    if store.load_run(run_id).await?.is_none() {
        return Err(SagaError::NotFound {
            saga: String::new(),
            run_id: run_id.clone(),
        });
    }
    Ok(store.deliver_signal(run_id, CANCEL_SIGNAL, "{}").await?)
}

/// The operator's request kept on the round `round`, if any.
pub(crate) async fn pending(
    store: &dyn Store,
    round: &RunId,
) -> Result<Option<OperatorAction>, SagaError> {
    let Some(payload) = store.signal(round, OPERATOR_SIGNAL).await? else {
        return Ok(None);
    };
    serde_json::from_str(&payload)
        .map(Some)
        .map_err(|e| SagaError::Decode {
            saga: String::new(),
            run_id: round.clone(),
            what: "operator request".to_owned(),
            message: e.to_string(),
        })
}
