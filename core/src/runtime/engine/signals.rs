//! Signals: a step waits durably for a named value from outside (an approval, a callback),
//! and `Engine::signal` delivers it.
//!
//! The store keeps every delivered signal, so the wait survives a crash: a resumed step asks
//! again and finds it, including one delivered while no process was running. In the process,
//! a waiter sleeps on a `Notify`, and asks the store again when it is woken:
//!
//! - by `Engine::signal` in this process, at once;
//! - by the hub's poller, for a signal another process delivered (`sagaflow signal`, another
//!   engine on the same file). The poller asks the store once a second for the signals
//!   delivered since it last looked, one question for all the waiting steps of the engine:
//!   ten thousand runs waiting for approvals cost one read a second, not ten thousand.
//!
//! A store that hears of deliveries by other processes as they happen
//! ([`SignalStore::signal_notices`]: PostgreSQL's `LISTEN`) wakes the poller at once; the poll
//! stays as the fallback.
//!
//! A store that does not number its signals ([`SignalStore::signal_position`] is `None`) has no
//! poller: each waiter then asks for its own signal once a second, as a waiter also does,
//! every [`FALLBACK_POLL`] in any case, as a net.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, OnceCell};

use super::Engine;
use crate::runtime::context::SignalSource;
use crate::runtime::error::{EngineError, StepError, StoreError};
use crate::runtime::id::RunId;
use crate::runtime::store::SignalStore;

/// How often the poller asks the store for signals delivered by another process, and how
/// often a waiter asks for its own when the store does not number its signals.
const SIGNAL_POLL: Duration = Duration::from_secs(1);

/// How often a waiter asks for its own signal although a poller looks out for it: a net for
/// the unforeseen (the poller retries by itself when the store cannot be read), rare enough
/// to cost little with many waiters.
const FALLBACK_POLL: Duration = Duration::from_secs(300);

/// The most signals the poller takes from the store in one question.
const POLL_BATCH: usize = 1_000;

/// The engine's signal waiters, by run and signal name, and the poller that wakes them.
pub(crate) struct SignalHub {
    store: Arc<dyn SignalStore>,
    state: Mutex<HubState>,
    /// Whether the store numbers its signals, once it has answered.
    numbered: OnceCell<bool>,
    /// Itself, for the poller task, which must not keep the engine's hub alive.
    this: Weak<SignalHub>,
}

#[derive(Default)]
struct HubState {
    waiters: HashMap<(RunId, String), Waiters>,
    /// The position of the newest signal the poller has accounted for, once known: every
    /// signal delivered later has a larger one. `None` until the store is first asked, and
    /// for a store that does not number its signals.
    seen: Option<u64>,
    /// The poller task, while it runs. A runtime that shuts down ends it too, hence its
    /// handle rather than a flag: the next waiter, on another runtime, starts a new one.
    poller: Option<tokio::task::AbortHandle>,
}

/// The steps waiting for one signal of one run (almost always one).
struct Waiters {
    notify: Arc<Notify>,
    count: usize,
}

/// A waiter's place in the hub, given back when the wait ends or is dropped.
struct Registration<'a> {
    hub: &'a SignalHub,
    key: (RunId, String),
    notify: Arc<Notify>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut state = self.hub.state();
        if let Some(waiters) = state.waiters.get_mut(&self.key) {
            waiters.count -= 1;
            if waiters.count == 0 {
                state.waiters.remove(&self.key);
            }
        }
    }
}

impl SignalHub {
    pub(crate) fn new(store: Arc<dyn SignalStore>) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            store,
            state: Mutex::new(HubState::default()),
            numbered: OnceCell::new(),
            this: this.clone(),
        })
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, run_id: &RunId, name: &str) -> Registration<'_> {
        let key = (run_id.clone(), name.to_owned());
        let mut state = self.state();
        let waiters = state.waiters.entry(key.clone()).or_insert_with(|| Waiters {
            notify: Arc::new(Notify::new()),
            count: 0,
        });
        waiters.count += 1;
        let notify = Arc::clone(&waiters.notify);
        Registration {
            hub: self,
            key,
            notify,
        }
    }

    /// Wakes the steps waiting for signal `name` of run `run_id`, if any.
    fn wake(&self, run_id: &RunId, name: &str) {
        let state = self.state();
        if let Some(waiters) = state.waiters.get(&(run_id.clone(), name.to_owned())) {
            waiters.notify.notify_waiters();
        }
    }

    /// Whether a poller looks out for signals from other processes: asks the store where
    /// its signals stand the first time, and starts the poller if it is not running. Called
    /// after a waiter registers and before it asks the store for its signal, so that a
    /// signal its question misses is delivered after the position the poller starts from.
    async fn watched(&self) -> bool {
        // Asked once, by the first waiter; those that come meanwhile wait for its answer.
        let numbered = self
            .numbered
            .get_or_try_init(|| async {
                let position = self.store.signal_position().await?;
                self.state().seen = position;
                Ok::<_, StoreError>(position.is_some())
            })
            .await;
        let numbered = match numbered {
            Ok(&numbered) => numbered,
            Err(error) => {
                tracing::warn!(%error, "cannot ask the store where its signals stand; waiting steps ask for their own");
                return false;
            }
        };
        if numbered {
            let mut state = self.state();
            if state.poller.as_ref().is_none_or(|p| p.is_finished()) {
                state.poller = Some(tokio::spawn(poll(self.this.clone())).abort_handle());
            }
        }
        numbered
    }
}

/// The poller: once a second, while any step waits, asks the store for the signals
/// delivered since it last looked and wakes their waiters. Ends when no step waits (the next
/// waiter starts it again) or when the engine is gone.
async fn poll(hub: Weak<SignalHub>) {
    let mut notices = hub.upgrade().and_then(|hub| hub.store.signal_notices());
    loop {
        match notices.as_mut() {
            // Woken by a notice from the store, or by the poll as a fallback; a store whose
            // notices ended (it was dropped) leaves the poll alone.
            Some(receiver) => tokio::select! {
                () = tokio::time::sleep(SIGNAL_POLL) => {}
                changed = receiver.changed() => if changed.is_err() { notices = None },
            },
            None => tokio::time::sleep(SIGNAL_POLL).await,
        }
        let Some(hub) = hub.upgrade() else {
            return;
        };
        loop {
            let after = {
                let mut state = hub.state();
                if state.waiters.is_empty() {
                    state.poller = None;
                    return;
                }
                state.seen.unwrap_or(0)
            };
            let delivered = match hub.store.signals_after(after, POLL_BATCH).await {
                Ok(delivered) => delivered,
                Err(error) => {
                    tracing::warn!(%error, "cannot ask the store for new signals; trying again");
                    break;
                }
            };
            let full = delivered.len() == POLL_BATCH;
            let mut state = hub.state();
            for signal in delivered {
                state.seen = Some(state.seen.unwrap_or(0).max(signal.position));
                if let Some(waiters) = state.waiters.get(&(signal.run_id, signal.name)) {
                    waiters.notify.notify_waiters();
                }
            }
            if !full {
                break;
            }
        }
    }
}

#[async_trait::async_trait]
impl SignalSource for SignalHub {
    async fn wait(&self, run_id: &RunId, name: &str) -> Result<String, StepError> {
        let registration = self.register(run_id, name);
        let watched = self.watched().await;
        let patience = if watched { FALLBACK_POLL } else { SIGNAL_POLL };
        loop {
            let notified = registration.notify.notified();
            tokio::pin!(notified);
            // Enabled before the store is asked, so a delivery in between still wakes it.
            notified.as_mut().enable();
            match self.store.signal(run_id, name).await {
                Ok(Some(payload)) => return Ok(payload),
                Ok(None) => {
                    let _ = tokio::time::timeout(patience, notified).await;
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
        // A store that keeps no record of runs takes a signal for any id: the engine's table
        // is where its runs are known.
        let known_here = !self.inner.creates_runs;
        if known_here && !self.inner.runs.holds(&run_id) {
            return Err(EngineError::NoRunToSignal {
                run_id,
                name: name.to_owned(),
            });
        }
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
        // The run may have been dropped from the table, and forgotten by the store, between
        // the check and the delivery: the store then forgets it again, so that no signal
        // outlives its run there.
        if known_here && !self.inner.runs.holds(&run_id) {
            self.inner.store.forget(&run_id);
        }
        self.inner.signals.wake(&run_id, name);
        Ok(())
    }

    /// Waits, outside any step, for the signal `name` of run `run_id` and returns its
    /// payload: what a step's `StepContext::signal` does, for code that watches a run from
    /// beside it (a saga waits so for a cancellation asked from another process). The wait
    /// shares the engine's poller with the waiting steps, so it costs the store no question
    /// of its own once a second.
    pub async fn wait_for_signal<T: DeserializeOwned>(
        &self,
        run_id: impl Into<RunId>,
        name: &str,
    ) -> Result<T, EngineError> {
        let run_id = run_id.into();
        let payload =
            self.inner
                .signals
                .wait(&run_id, name)
                .await
                .map_err(|e| EngineError::SignalWait {
                    run_id: run_id.clone(),
                    name: name.to_owned(),
                    message: e.to_string(),
                })?;
        serde_json::from_str(&payload).map_err(|e| EngineError::SignalWait {
            run_id,
            name: name.to_owned(),
            message: format!(
                "the payload does not decode into `{}`: {e}",
                std::any::type_name::<T>()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_util::FutureExt as _;

    use super::*;
    use crate::runtime::store::MemoryStore;

    fn waiters(hub: &SignalHub) -> usize {
        hub.state().waiters.len()
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_dropped_or_ended_leaves_no_waiter_behind() {
        let hub = SignalHub::new(Arc::new(MemoryStore::new()));
        let run = RunId::from("r");
        // Two waits of one signal share an entry; dropping them, mid-wait, removes it.
        let mut first = Box::pin(hub.wait(&run, "go"));
        let mut second = Box::pin(hub.wait(&run, "go"));
        assert!(first.as_mut().now_or_never().is_none());
        assert!(second.as_mut().now_or_never().is_none());
        assert_eq!(waiters(&hub), 1);
        assert_eq!(hub.state().waiters.values().next().unwrap().count, 2);
        drop(first);
        assert_eq!(waiters(&hub), 1);
        drop(second);
        assert_eq!(waiters(&hub), 0);
        // A store that does not number its signals gets no poller.
        assert!(hub.state().poller.is_none());
    }

    /// A store that numbers its signals and has none: enough for the hub to start a poller.
    struct Numbered;

    #[async_trait::async_trait]
    impl SignalStore for Numbered {
        async fn deliver_signal(&self, _: &RunId, _: &str, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }

        async fn signal(&self, _: &RunId, _: &str) -> Result<Option<String>, StoreError> {
            Ok(None)
        }

        async fn signal_position(&self) -> Result<Option<u64>, StoreError> {
            Ok(Some(0))
        }

        async fn signals_after(
            &self,
            _: u64,
            _: usize,
        ) -> Result<Vec<crate::runtime::store::DeliveredSignal>, StoreError> {
            Ok(Vec::new())
        }

        fn signal_notices(&self) -> Option<crate::runtime::store::SignalNotices> {
            None
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_poller_stops_when_no_step_waits_and_starts_again_for_the_next() {
        let hub = SignalHub::new(Arc::new(Numbered));
        let run = RunId::from("r");
        let mut wait = Box::pin(hub.wait(&run, "go"));
        assert!(wait.as_mut().now_or_never().is_none());
        let poller = hub.state().poller.clone().expect("a poller runs");
        drop(wait);
        assert_eq!(waiters(&hub), 0);
        // At its next look it finds no one waiting, and ends.
        tokio::time::sleep(SIGNAL_POLL * 2).await;
        for _ in 0..100 {
            if poller.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(poller.is_finished());
        assert!(hub.state().poller.is_none());
        // The next waiter starts a new one.
        let mut wait = Box::pin(hub.wait(&run, "go"));
        assert!(wait.as_mut().now_or_never().is_none());
        assert!(
            hub.state()
                .poller
                .as_ref()
                .is_some_and(|p| !p.is_finished())
        );
    }

    /// A store that numbers its signals and gives notices of deliveries made elsewhere: the
    /// signal `go` of run `r` appears when [`deliver`](Self::deliver) is called, as if
    /// another process had delivered it, with a notice.
    struct Noticed {
        delivered: Mutex<bool>,
        notices: tokio::sync::watch::Sender<u64>,
    }

    impl Noticed {
        fn deliver(&self) {
            *self.delivered.lock().unwrap() = true;
            self.notices.send_modify(|n| *n += 1);
        }

        fn delivered(&self) -> bool {
            *self.delivered.lock().unwrap()
        }
    }

    #[async_trait::async_trait]
    impl SignalStore for Noticed {
        async fn deliver_signal(&self, _: &RunId, _: &str, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }

        async fn signal(&self, _: &RunId, _: &str) -> Result<Option<String>, StoreError> {
            Ok(self.delivered().then(|| "1".to_owned()))
        }

        async fn signal_position(&self) -> Result<Option<u64>, StoreError> {
            Ok(Some(u64::from(self.delivered())))
        }

        async fn signals_after(
            &self,
            after: u64,
            _: usize,
        ) -> Result<Vec<crate::runtime::store::DeliveredSignal>, StoreError> {
            Ok(if self.delivered() && after < 1 {
                vec![crate::runtime::store::DeliveredSignal {
                    position: 1,
                    run_id: RunId::from("r"),
                    name: "go".to_owned(),
                }]
            } else {
                Vec::new()
            })
        }

        fn signal_notices(&self) -> Option<crate::runtime::store::SignalNotices> {
            Some(self.notices.subscribe())
        }
    }

    /// A notice from the store wakes the poller at once: the waiting step has its signal
    /// without the clock moving, where the poll alone would have taken a second.
    #[tokio::test(start_paused = true)]
    async fn a_notice_from_the_store_wakes_the_waiter_before_the_poll() {
        let store = Arc::new(Noticed {
            delivered: Mutex::new(false),
            notices: tokio::sync::watch::channel(0).0,
        });
        let hub = SignalHub::new(Arc::clone(&store) as Arc<dyn SignalStore>);
        let began = tokio::time::Instant::now();
        let waiting = tokio::spawn({
            let hub = Arc::clone(&hub);
            async move { hub.wait(&RunId::from("r"), "go").await }
        });
        while waiters(&hub) == 0 || hub.state().poller.is_none() {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        store.deliver();
        let payload = waiting.await.unwrap().unwrap();
        assert_eq!(payload, "1");
        assert!(
            began.elapsed() < SIGNAL_POLL,
            "woken by the poll after {:?}, not by the notice",
            began.elapsed()
        );
    }
}
