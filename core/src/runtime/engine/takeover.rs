//! Runs another owner holds under a live lease: taken up by this engine by itself once the
//! lease runs out, with no second call.
//!
//! After a crash, a process that is not the crashed one's owner (another host, another slot)
//! finds the crashed process's runs still leased for up to a lease. [`Engine::recover`] lists
//! them as [`Waiting`] and leaves a task behind for each, which sleeps until the lease is due
//! to expire and then tries again: a live owner renews its lease, and the task goes back to
//! sleep for another lease; an owner that is gone lets it expire, and the run is taken up
//! here. The task holds the engine weakly: a dropped engine takes nothing up.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::Engine;
use crate::runtime::error::EngineError;
use crate::runtime::id::RunId;

/// How long after a lease's expiry the task tries again: the other owner's clock and this
/// one's may differ a little.
const MARGIN: Duration = Duration::from_millis(50);

/// A run another owner held under a live lease when it was asked for: this engine takes it
/// up by itself once the lease runs out, unless its owner renews it (then it runs there, and
/// this engine tries again at the next expiry). [`taken`](Self::taken) waits for its handle.
pub struct Waiting<H, E = EngineError> {
    run_id: RunId,
    owner: String,
    expires_in: Duration,
    taken: oneshot::Receiver<Result<H, E>>,
}

impl<H, E> fmt::Debug for Waiting<H, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiting")
            .field("run_id", &self.run_id)
            .field("owner", &self.owner)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl<H, E> fmt::Display for Waiting<H, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run `{}` is leased by owner `{}`: taken up here in {:.1} s unless that owner renews its lease",
            self.run_id,
            self.owner,
            self.expires_in.as_secs_f64()
        )
    }
}

impl<H, E: From<EngineError>> Waiting<H, E> {
    /// The run.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// The owner that held its lease.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// How long its lease had left when it was found: when this engine first tries to take
    /// it up.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// Waits until this engine has taken the run up, and gives its handle (or why it could
    /// not be taken up). The run is taken up whether or not this is awaited.
    pub async fn taken(self) -> Result<H, E> {
        match self.taken.await {
            Ok(result) => result,
            Err(_) => Err(E::from(EngineError::Dropped {
                run_id: self.run_id,
            })),
        }
    }
}

/// An error that may say the run is leased by another owner, and for how long.
pub trait LeaseRefusal {
    /// How long the lease that refused the run has left, if that is what this error is.
    fn lease_expires_in(&self) -> Option<Duration>;
}

impl LeaseRefusal for EngineError {
    fn lease_expires_in(&self) -> Option<Duration> {
        match self {
            EngineError::Leased { expires_in, .. } => Some(*expires_in),
            _ => None,
        }
    }
}

impl Engine {
    /// Takes the run `run_id`, leased by `owner` for another `expires_in`, up once the lease
    /// runs out, by calling `take` with this engine then, and again after each renewal for as
    /// long as `take` finds the lease renewed. Its result is what [`Waiting::taken`] gives.
    ///
    /// What [`Engine::recover`] does for a leased run; `take` is how the run is taken up
    /// (`resume` for a workflow run; a saga's own for a saga).
    pub fn take_up_when_free<H, E, F, Fut>(
        &self,
        run_id: RunId,
        owner: String,
        expires_in: Duration,
        take: F,
    ) -> Waiting<H, E>
    where
        H: Send + 'static,
        E: LeaseRefusal + From<EngineError> + Send + 'static,
        F: Fn(Engine) -> Fut + Send + 'static,
        Fut: Future<Output = Result<H, E>> + Send,
    {
        let (sender, taken) = oneshot::channel();
        let engine = Arc::downgrade(&self.inner);
        let id = run_id.clone();
        let task = async move {
            let mut wait = expires_in;
            loop {
                tokio::time::sleep(wait.saturating_add(MARGIN)).await;
                let Some(inner) = engine.upgrade() else {
                    return;
                };
                match take(Engine { inner }).await {
                    Err(error) if error.lease_expires_in().is_some() => {
                        // Renewed: its owner lives. Try again at the next expiry.
                        wait = error.lease_expires_in().unwrap_or(expires_in);
                        tracing::debug!(run_id = %id, "the run's lease was renewed; trying again at its expiry");
                    }
                    result => {
                        let _ = sender.send(result);
                        return;
                    }
                }
            }
        };
        // `recover` is async, so a runtime is there; without one, nothing can wait.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(task);
        }
        Waiting {
            run_id,
            owner,
            expires_in,
            taken,
        }
    }
}
