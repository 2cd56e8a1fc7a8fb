//! An engine's automatic retention policy ([`EngineBuilder::retention`]): a loop that, every
//! [`period`](RetentionPolicy::period), runs one pass of the policy
//! ([`retention::prune`](crate::runtime::retention::prune)), bounded to
//! [`batches_per_pass`](RetentionPolicy::batches_per_pass) batches.
//!
//! Every [`reclaim_after`](RetentionPolicy::reclaim_after) runs deleted
//! ([`RECLAIM_AFTER_RUNS`] by default), the loop has the store reclaim their room
//! ([`Retention::reclaim`](crate::runtime::Retention::reclaim)).
//!
//! The loop holds the engine weakly: it ends when the engine is dropped or drains
//! ([`Engine::shutdown`]), a pass under way stopping between two batches (each batch is one
//! transaction, so a pass cut short deletes whole batches only). A pass that fails is logged
//! and tried again at the next period.
//!
//! [`EngineBuilder::retention`]: super::EngineBuilder::retention

use std::sync::{Mutex, PoisonError, Weak};

use super::{Engine, Inner};
use crate::runtime::retention::{self, PruneReport, RECLAIM_AFTER_RUNS, RetentionPolicy};

/// The engine's policy, and the sagas named on it since it was built.
pub(crate) struct Retained {
    policy: RetentionPolicy,
    sagas: Mutex<Vec<String>>,
}

impl Retained {
    pub(crate) fn new(policy: RetentionPolicy) -> Self {
        Retained {
            policy,
            sagas: Mutex::new(Vec::new()),
        }
    }

    /// The policy, with the sagas named so far.
    fn policy(&self) -> RetentionPolicy {
        let sagas = self.sagas.lock().unwrap_or_else(PoisonError::into_inner);
        sagas.iter().fold(self.policy.clone(), |policy, saga| {
            policy.saga(saga.clone())
        })
    }
}

impl Engine {
    /// Names `workflow` as a saga's on the engine's retention policy, if it has one: its failed
    /// and cancelled runs then stay until compensated (see
    /// [`crate::runtime::retention`]). The saga crate calls it when a saga is
    /// registered or started on the engine.
    pub fn retain_until_compensated(&self, workflow: &str) {
        if let Some(retained) = &self.inner.retention {
            let mut sagas = retained
                .sagas
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !sagas.iter().any(|s| s == workflow) {
                sagas.push(workflow.to_owned());
            }
        }
    }

    /// One pass of the engine's retention policy now, bounded as the loop's passes are; `None`
    /// if the engine has no policy. A store that fails is an error naming it.
    pub async fn prune_now(
        &self,
    ) -> Option<Result<PruneReport, crate::runtime::error::StoreError>> {
        let retained = self.inner.retention.as_ref()?;
        let policy = retained.policy();
        Some(retention::prune(&*self.inner.store, &policy, Some(policy.batches_per_pass())).await)
    }
}

/// Starts the loop, if there is a tokio runtime to run it on (else it says so once).
pub(crate) fn start(inner: &std::sync::Arc<Inner>) {
    let Some(retained) = &inner.retention else {
        return;
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let every = retained.policy.period();
            let draining = inner.lifecycle.watch();
            runtime.spawn(run_loop(std::sync::Arc::downgrade(inner), every, draining));
        }
        Err(_) => tracing::warn!(
            "the engine was built outside a tokio runtime: its retention policy does not run"
        ),
    }
}

/// A pass every `every`, until the engine drains or is dropped.
async fn run_loop(
    engine: Weak<Inner>,
    every: std::time::Duration,
    mut draining: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: the first pass waits a period, as the next ones do.
    tick.tick().await;
    // Runs deleted since the store last reclaimed their room.
    let mut unreclaimed = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = draining.wait_for(|d| *d) => return,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let engine_now = Engine { inner };
        let pass = async {
            match engine_now.prune_now().await {
                Some(Ok(report)) if report.deleted.runs > 0 => {
                    tracing::info!(
                        runs = report.deleted.runs,
                        events = report.deleted.events,
                        batches = report.batches,
                        more = report.more,
                        "retention: finished runs pruned"
                    );
                    unreclaimed += report.deleted.runs;
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "retention: pruning failed; trying again at the next period")
                }
                _ => {}
            }
            let every = engine_now
                .inner
                .retention
                .as_ref()
                .map_or(RECLAIM_AFTER_RUNS, |r| r.policy.reclaim_every());
            if unreclaimed >= every {
                match engine_now.inner.store.reclaim().await {
                    Ok(()) => {
                        tracing::debug!(
                            runs = unreclaimed,
                            "retention: the room of deleted runs reclaimed"
                        );
                        unreclaimed = 0;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "retention: the room of deleted runs could not be reclaimed; trying again after the next pass")
                    }
                }
            }
        };
        tokio::select! {
            () = pass => {}
            _ = draining.wait_for(|d| *d) => return,
        }
        // The engine is held only for the pass.
        drop(engine_now);
    }
}
