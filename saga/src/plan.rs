//! The compensation plan: which steps to undo, in which order, and the durable run that undoes
//! them.
//!
//! A saga's compensation is itself a run on the engine, one per *round*: the first round
//! undoes what the failed forward run did; an operator's retry or skip of a stuck saga starts
//! the next round with what is left. A round's input is its plan, so a process that takes a
//! round up after a crash rebuilds exactly the graph that was started (same steps, same
//! order, same fingerprint), and the engine skips the compensations that had completed.
//!
//! The order is the reverse of completion order, read from the forward run's event log: the
//! one record that orders the steps of parallel branches as they really ended.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use sagaflow_core::StepOptions;
use sagaflow_core::runtime::{
    Builder, Definition, EventKind, Handle, RunId, StepContext, StepStatus, Store, StoredRun,
    StoredStep, Value,
};

use crate::error::SagaError;
use crate::inner::SagaInner;
pub(crate) use crate::naming::{ABANDON_STEP, END_STEP, round_id, round_number, saga_of_round};

/// Events read per query while the completion order is worked out.
const PAGE: usize = 1024;

/// One round of compensation, as its run's input: kept in the store with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// The forward steps to undo, in the order to undo them.
    pub(crate) steps: Vec<Planned>,
    /// Why the saga compensates: the forward run's error.
    pub(crate) cause: String,
    /// Steps whose compensation an operator skipped, in earlier rounds and this one.
    #[serde(default)]
    pub(crate) skipped: Vec<String>,
    /// The operator gave up on the saga: nothing is undone.
    #[serde(default)]
    pub(crate) abandoned: bool,
}

/// One compensation to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Planned {
    /// The forward step.
    pub(crate) step: String,
    /// Whether the step completed (its output is known); `false` for a step whose outcome is
    /// unknown, undone by a compensation declared safe for that.
    pub(crate) completed: bool,
}

/// The first round's plan: every step that completed and has a compensation, and every step
/// that started without completing whose compensation is safe on an unknown outcome, newest
/// first.
pub(crate) async fn first_plan(
    saga: &SagaInner,
    store: &dyn Store,
    run_id: &RunId,
    forward: &StoredRun,
) -> Result<Plan, SagaError> {
    // Each step's position: the seq of its last event in the forward run's log.
    let mut last_event: HashMap<Arc<str>, u64> = HashMap::new();
    let mut completed_at: HashMap<Arc<str>, u64> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.events(Some(run_id), after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in &page {
            if let Some(step) = &event.step {
                last_event.insert(Arc::clone(step), event.seq);
                if event.kind == EventKind::StepCompleted {
                    completed_at.insert(Arc::clone(step), event.seq);
                }
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    let mut planned: Vec<(u64, Planned)> = Vec::new();
    for (info, undo) in saga.steps.iter().zip(&saga.undos) {
        let Some(undo) = undo else { continue };
        let stored = forward.steps.iter().find(|s| s.name == info.name);
        let Some(stored) = stored else { continue };
        let name: &str = &info.name;
        match stored.status {
            StepStatus::Completed => {
                let seq = completed_at.get(name).copied().unwrap_or(u64::MAX);
                planned.push((
                    seq,
                    Planned {
                        step: info.name.clone(),
                        completed: true,
                    },
                ));
            }
            StepStatus::Skipped | StepStatus::Pending | StepStatus::NotRun => {}
            _ if undo.on_unknown && stored.attempts > 0 => {
                let seq = last_event.get(name).copied().unwrap_or(u64::MAX);
                planned.push((
                    seq,
                    Planned {
                        step: info.name.clone(),
                        completed: false,
                    },
                ));
            }
            _ => {}
        }
    }
    planned.sort_by_key(|p| std::cmp::Reverse(p.0));
    Ok(Plan {
        steps: planned.into_iter().map(|(_, p)| p).collect(),
        cause: forward
            .error
            .clone()
            .unwrap_or_else(|| format!("run `{run_id}` was cancelled")),
        skipped: Vec::new(),
        abandoned: false,
    })
}

/// The plan of the round after `plan`, whose run stored `round`: what is left once the
/// compensations that completed are taken out, and with `skip` (the stuck one) skipped.
pub(crate) fn next_plan(plan: &Plan, round: &StoredRun, skip: Option<&str>) -> Plan {
    let done = |name: &str| {
        round
            .steps
            .iter()
            .any(|s| s.name == name && s.status == StepStatus::Completed)
    };
    let mut skipped = plan.skipped.clone();
    let steps = plan
        .steps
        .iter()
        .filter(|p| !done(&p.step))
        .filter(|p| {
            if Some(p.step.as_str()) == skip {
                skipped.push(p.step.clone());
                false
            } else {
                true
            }
        })
        .cloned()
        .collect();
    Plan {
        steps,
        cause: plan.cause.clone(),
        skipped,
        abandoned: false,
    }
}

/// The step of a stuck round that failed, with its error and attempts.
pub(crate) fn stuck_step(round: &StoredRun) -> Option<&StoredStep> {
    round.steps.iter().find(|s| s.status == StepStatus::Failed)
}

/// The forward values a plan's compensations read: the saga's input and the outputs of the
/// steps whose inputs and outputs they receive, decoded from the forward run as stored.
pub(crate) fn forward_values(
    saga: &SagaInner,
    forward_def: &sagaflow_core::runtime::ErasedDefinition,
    run_id: &RunId,
    forward: &StoredRun,
    plan: &Plan,
) -> Result<Vec<Option<Value>>, SagaError> {
    let mut values: Vec<Option<Value>> = vec![None; saga.steps.len() + 1];
    let decode_error = |what: String, message: String| SagaError::Decode {
        saga: saga.name.clone(),
        run_id: run_id.clone(),
        what,
        message,
    };
    let input = (saga.input_codec.decode)(&forward.input)
        .map_err(|m| decode_error("input".to_owned(), m))?;
    values[0] = Some(input);
    let mut wanted: Vec<usize> = Vec::new();
    for planned in &plan.steps {
        let Some(index) = saga.index_of(&planned.step) else {
            continue;
        };
        wanted.extend(
            saga.steps[index]
                .inputs
                .iter()
                .filter(|&&s| s > 0)
                .map(|s| s - 1),
        );
        if planned.completed {
            wanted.push(index);
        }
    }
    for index in wanted {
        if values[index + 1].is_some() {
            continue;
        }
        let name = &saga.steps[index].name;
        let Some(text) = forward
            .steps
            .iter()
            .find(|s| &s.name == name)
            .and_then(|s| s.output.as_deref())
        else {
            continue;
        };
        let Some(def) = forward_def.steps().get(index) else {
            continue;
        };
        let value = (def.codec().decode)(text)
            .map_err(|m| decode_error(format!("output of step `{name}`"), m))?;
        values[index + 1] = Some(value);
    }
    Ok(values)
}

/// The round's definition: the plan's compensations in a chain, then the closing step. The
/// graph depends only on the plan, so the same plan always gives the same fingerprint.
pub(crate) fn round_definition(
    saga: &SagaInner,
    plan: &Plan,
    values: &[Option<Value>],
) -> Definition<Plan, ()> {
    let mut b = Builder::<Plan>::new(saga.compensation_name());
    if plan.abandoned {
        b.step(ABANDON_STEP, StepOptions::new(), (), |_, ()| async {
            Ok::<(), sagaflow_core::runtime::StepError>(())
        });
        return b.build();
    }
    let mut previous: Option<Handle<()>> = None;
    for planned in &plan.steps {
        let Some(index) = saga.index_of(&planned.step) else {
            continue;
        };
        let Some(undo) = &saga.undos[index] else {
            continue;
        };
        let inputs: Arc<[Option<Value>]> = saga.steps[index]
            .inputs
            .iter()
            .map(|&slot| values.get(slot).cloned().flatten())
            .collect();
        let output = if planned.completed {
            values.get(index + 1).cloned().flatten()
        } else {
            None
        };
        let call = Arc::clone(&undo.call);
        let run = move |ctx: StepContext| {
            // One idempotency key for this compensation in every round, `saga~undo:step`, so
            // that a refund retried by an operator reaches the payment service with the key
            // of the attempts before it.
            let ctx = match saga_of_round(ctx.run_id()) {
                Some(saga_run) => ctx.keyed_as(RunId::from(format!("{saga_run}~undo"))),
                None => ctx,
            };
            let started = call(ctx, &inputs, output.clone());
            async move { started?.await }
        };
        let handle = match previous {
            None => b.step(&planned.step, undo.options.clone(), (), move |ctx, ()| {
                run(ctx)
            }),
            Some(h) => b.step(
                &planned.step,
                undo.options.clone(),
                (h,),
                move |ctx, (_,)| run(ctx),
            ),
        };
        previous = Some(handle);
    }
    let end = |_, _| async { Ok::<(), sagaflow_core::runtime::StepError>(()) };
    match previous {
        None => b.step(END_STEP, StepOptions::new(), (), move |c, ()| end(c, ())),
        Some(h) => b.step(END_STEP, StepOptions::new(), (h,), move |c, (_,)| {
            end(c, ())
        }),
    };
    b.build()
}
