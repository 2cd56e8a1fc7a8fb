//! A run's change as the row it writes: its event (with the output of a step's completion),
//! and the run's end. Owned, with the output already encoded on the caller's side, so that a
//! value that does not serialize fails its caller before anything reaches the writer, and so
//! that a batch can be applied again if its transaction fails.

use sagaflow_core::runtime::RunId;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::events::EventKind;
use sagaflow_core::runtime::store::Change;

/// A change's rows.
#[derive(Debug, Clone)]
pub(crate) struct ChangeRow {
    /// The step the change concerns, if any.
    pub(crate) step: Option<String>,
    /// The step's output, for a step's completion: the event carries it (the `steps` view
    /// reads it from there).
    pub(crate) output: Option<String>,
    /// The run's end: its status and error.
    pub(crate) end: Option<(&'static str, Option<String>)>,
    /// The event the change logs.
    pub(crate) kind: EventKind,
    /// The event's attempt.
    pub(crate) attempt: Option<u32>,
    /// The event's detail, JSON.
    pub(crate) detail: Option<String>,
}

impl ChangeRow {
    /// The rows of `change` of run `run_id`; an output that does not encode is
    /// [`StoreError::Codec`] naming the run and the step.
    pub(crate) fn of(run_id: &RunId, change: &Change<'_>) -> Result<ChangeRow, StoreError> {
        let row =
            |step: Option<&str>, kind, attempt, detail: Option<serde_json::Value>| ChangeRow {
                step: step.map(str::to_owned),
                output: None,
                end: None,
                kind,
                attempt,
                detail: detail.map(|d| d.to_string()),
            };
        Ok(match *change {
            Change::StepStarted {
                step: name,
                attempt,
            } => row(Some(name), EventKind::StepStarted, Some(attempt), None),
            Change::StepRetrying {
                step: name,
                attempt,
                error,
                delay,
            } => row(
                Some(name),
                EventKind::StepRetrying,
                Some(attempt),
                Some(serde_json::json!({
                    "error": error.message(),
                    "permanent": error.is_permanent(),
                    "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                })),
            ),
            Change::StepCompleted {
                step: name,
                attempt,
                output,
                codec,
            } => {
                let output = (codec.encode)(output).map_err(|message| StoreError::Codec {
                    run_id: run_id.clone(),
                    step: name.to_owned(),
                    message: format!("the output cannot be encoded: {message}"),
                })?;
                ChangeRow {
                    output: Some(output),
                    ..row(Some(name), EventKind::StepCompleted, Some(attempt), None)
                }
            }
            Change::StepFailed {
                step: name,
                attempts,
                error,
            } => row(
                Some(name),
                EventKind::StepFailed,
                Some(attempts),
                Some(serde_json::json!({
                    "error": error.message(), "permanent": error.is_permanent()
                })),
            ),
            Change::StepSkipped { step: name } => {
                row(Some(name), EventKind::StepSkipped, None, None)
            }
            Change::RunCompleted => ChangeRow {
                end: Some(("completed", None)),
                ..row(None, EventKind::RunCompleted, None, None)
            },
            Change::RunFailed { error } => ChangeRow {
                end: Some(("failed", Some(error.to_string()))),
                ..row(
                    None,
                    EventKind::RunFailed,
                    None,
                    Some(serde_json::json!({ "error": error.to_string() })),
                )
            },
            Change::RunCancelled => ChangeRow {
                end: Some(("cancelled", None)),
                ..row(None, EventKind::RunCancelled, None, None)
            },
        })
    }

    /// Whether the change ends its run.
    pub(crate) fn ends_run(&self) -> bool {
        self.end.is_some()
    }
}
