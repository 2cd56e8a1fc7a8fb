//! Signals: a step waits durably for a named value from outside (an approval, a callback),
//! and `Engine::signal` delivers it.
//!
//! The store keeps every delivered signal, so the wait survives a crash: a resumed step asks
//! again and finds it, including one delivered while no process was running. In the process,
//! a waiter sleeps on a `Notify` that delivery wakes, and asks the store again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::Notify;

use super::Engine;
use crate::runtime::context::{RunId, SignalSource};
use crate::runtime::error::{EngineError, StepError};
use crate::runtime::store::Store;

/// How often a waiting step asks the store again for a signal that another process may have
/// delivered (a delivery in this process wakes it at once).
const SIGNAL_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The engine's signal waiters, by run and signal name.
pub(crate) struct SignalHub {
    store: Arc<dyn Store>,
    waiters: Mutex<HashMap<(RunId, String), Arc<Notify>>>,
}

impl SignalHub {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            waiters: Mutex::new(HashMap::new()),
        }
    }

    fn notify_for(&self, run_id: &RunId, name: &str) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            waiters
                .entry((run_id.clone(), name.to_owned()))
                .or_default(),
        )
    }

    fn wake(&self, run_id: &RunId, name: &str) {
        let notify = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(run_id.clone(), name.to_owned()));
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

#[async_trait::async_trait]
impl SignalSource for SignalHub {
    async fn wait(&self, run_id: &RunId, name: &str) -> Result<String, StepError> {
        loop {
            let notify = self.notify_for(run_id, name);
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before the store is asked, so a delivery in between still wakes it.
            notified.as_mut().enable();
            match self.store.signal(run_id, name).await {
                Ok(Some(payload)) => return Ok(payload),
                // A delivery by another process (`sagaflow signal`) wakes no one here: ask
                // the store again now and then.
                Ok(None) => {
                    let _ = tokio::time::timeout(SIGNAL_POLL, notified).await;
                }
                Err(error) => {
                    return Err(StepError::new(format!(
                        "signal `{name}` of run `{run_id}` could not be read: {error}"
                    )));
                }
            }
        }
    }
}

impl Engine {
    /// Delivers the signal `name` with `payload` to run `run_id`, which a step receives from
    /// `StepContext::signal`. The store keeps it: a run waiting in another process, or in
    /// none (crashed, not yet resumed), gets it when it asks. A signal is delivered once per
    /// name and run; a second delivery of the same name is refused.
    pub async fn signal<T: Serialize + ?Sized>(
        &self,
        run_id: impl Into<RunId>,
        name: &str,
        payload: &T,
    ) -> Result<(), EngineError> {
        let run_id = run_id.into();
        let json = serde_json::to_string(payload).map_err(|e| EngineError::SignalPayload {
            run_id: run_id.clone(),
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        if !self
            .inner
            .store
            .deliver_signal(&run_id, name, &json)
            .await?
        {
            return Err(EngineError::SignalAlreadyDelivered {
                run_id,
                name: name.to_owned(),
            });
        }
        self.inner.signals.wake(&run_id, name);
        Ok(())
    }
}
