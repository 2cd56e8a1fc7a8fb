//! What can go wrong with a transition, and with a persisted machine. Every message names the
//! machine, the state and the event, so a log line alone says what happened.

use std::fmt;
use std::sync::Arc;

use sagaflow_core::runtime::StoreError;

/// Why an action (a transition's, or a state's entry or exit action) failed. Any
/// `std::error::Error` converts into it with `?`; [`ActionError::new`] makes one from a message.
///
/// Like `anyhow::Error` it does not implement `std::error::Error` itself: that is what lets
/// every error type convert into it.
#[derive(Clone)]
pub struct ActionError {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ActionError {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// The message, with the chain of the error it was converted from.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error this one was converted from, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ActionError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut cause = error.source();
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        Self {
            message,
            source: Some(Arc::new(error)),
        }
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionError")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// Why an event did not move a machine. The machine stays in the state it was in
/// ([`state`](Self::state)); effects an action or an exit action had before the failure are
/// not undone. [`kind`](Self::kind) says which guard refused or which action failed.
///
/// One pointer wide, so that a transition's `Result` stays small: the error is built only on
/// the (cold) failing path.
#[derive(Clone)]
pub struct TransitionError(Box<TransitionErrorKind>);

impl TransitionError {
    /// What went wrong.
    pub fn kind(&self) -> &TransitionErrorKind {
        &self.0
    }

    /// What went wrong, by value.
    pub fn into_kind(self) -> TransitionErrorKind {
        *self.0
    }

    /// The state the machine was in, and is still in.
    pub fn state(&self) -> &'static str {
        self.0.state()
    }

    /// The event that did not move the machine.
    pub fn event(&self) -> &'static str {
        self.0.event()
    }
}

impl From<TransitionErrorKind> for TransitionError {
    #[cold]
    fn from(kind: TransitionErrorKind) -> Self {
        TransitionError(Box::new(kind))
    }
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for TransitionError {}

/// What a [`TransitionError`] is: which guard refused, which action failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionErrorKind {
    /// No transition leaves `state` on `event`.
    #[error("{machine}: no transition from `{state}` on `{event}`")]
    NoTransition {
        /// The machine's type.
        machine: &'static str,
        /// The state it is in, and stays in.
        state: &'static str,
        /// The event.
        event: &'static str,
    },
    /// `state` is final: no event leaves it.
    #[error("{machine}: `{state}` is final; `{event}` cannot leave it")]
    Final {
        /// The machine's type.
        machine: &'static str,
        /// The final state it is in.
        state: &'static str,
        /// The event.
        event: &'static str,
    },
    /// Every transition from `state` on `event` is guarded, and each guard said no.
    #[error("{machine}: {} refused `{event}` in `{state}`", guard_list(guards))]
    GuardRefused {
        /// The machine's type.
        machine: &'static str,
        /// The state it is in, and stays in.
        state: &'static str,
        /// The event.
        event: &'static str,
        /// The guards asked, in the order they were asked.
        guards: &'static [&'static str],
    },
    /// The transition's action failed.
    #[error("{machine}: action `{action}` failed on `{event}` in `{state}`: {error}")]
    ActionFailed {
        /// The machine's type.
        machine: &'static str,
        /// The state it is in, and stays in.
        state: &'static str,
        /// The event.
        event: &'static str,
        /// The action.
        action: &'static str,
        /// What it said.
        error: ActionError,
    },
    /// The exit action of `state` failed.
    #[error("{machine}: exit action `{action}` of `{state}` failed on `{event}`: {error}")]
    ExitFailed {
        /// The machine's type.
        machine: &'static str,
        /// The state it is in, and stays in.
        state: &'static str,
        /// The event.
        event: &'static str,
        /// The exit action.
        action: &'static str,
        /// What it said.
        error: ActionError,
    },
    /// The entry action of `target` failed.
    #[error(
        "{machine}: entry action `{action}` of `{target}` failed on `{event}` from `{state}`: {error}"
    )]
    EntryFailed {
        /// The machine's type.
        machine: &'static str,
        /// The state it is in, and stays in.
        state: &'static str,
        /// The event.
        event: &'static str,
        /// The state the transition would have entered.
        target: &'static str,
        /// The entry action.
        action: &'static str,
        /// What it said.
        error: ActionError,
    },
}

fn guard_list(guards: &[&str]) -> String {
    match guards {
        [one] => format!("guard `{one}`"),
        many => {
            let names: Vec<String> = many.iter().map(|g| format!("`{g}`")).collect();
            format!("guards {}", names.join(", "))
        }
    }
}

impl TransitionErrorKind {
    /// The state the machine was in, and is still in.
    pub fn state(&self) -> &'static str {
        match self {
            TransitionErrorKind::NoTransition { state, .. }
            | TransitionErrorKind::Final { state, .. }
            | TransitionErrorKind::GuardRefused { state, .. }
            | TransitionErrorKind::ActionFailed { state, .. }
            | TransitionErrorKind::ExitFailed { state, .. }
            | TransitionErrorKind::EntryFailed { state, .. } => state,
        }
    }

    /// The event that did not move the machine.
    pub fn event(&self) -> &'static str {
        match self {
            TransitionErrorKind::NoTransition { event, .. }
            | TransitionErrorKind::Final { event, .. }
            | TransitionErrorKind::GuardRefused { event, .. }
            | TransitionErrorKind::ActionFailed { event, .. }
            | TransitionErrorKind::ExitFailed { event, .. }
            | TransitionErrorKind::EntryFailed { event, .. } => event,
        }
    }
}

/// What went wrong with a persisted machine. The machine, in memory and in the database, is
/// unchanged by a call that returns one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MachineError {
    /// The event did not move the machine (see [`TransitionError`]); nothing was written.
    #[error("machine `{id}`: {source}")]
    Transition {
        /// The machine's id.
        id: String,
        /// Why.
        #[source]
        source: TransitionError,
    },
    /// Another writer moved the machine first: it is no longer at the version this one read,
    /// so this transition was not written. Its actions did run: [`reload`] the machine and
    /// decide again.
    ///
    /// [`reload`]: crate::PersistedMachine::reload
    #[error(
        "machine `{id}`: `{event}` in `{state}` (version {expected}) lost the race to another writer: {}; reload it and try again",
        match found { Some(v) => format!("the machine is at version {v} now"), None => "the machine no longer exists".to_owned() }
    )]
    Conflict {
        /// The machine's id.
        id: String,
        /// The state this writer saw.
        state: &'static str,
        /// The event it fired.
        event: &'static str,
        /// The version it read.
        expected: u64,
        /// The version stored now, `None` if the machine is gone.
        found: Option<u64>,
    },
    /// No machine has this id.
    #[error("machine `{id}` does not exist")]
    NotFound {
        /// The id.
        id: String,
    },
    /// A machine with this id exists already.
    #[error("machine `{id}` exists already (a `{machine}` in version {version})")]
    AlreadyExists {
        /// The id.
        id: String,
        /// Its type.
        machine: String,
        /// Its version.
        version: u64,
    },
    /// The machine with this id is of another type.
    #[error("machine `{id}` is a `{found}`, not a `{expected}`")]
    WrongType {
        /// The id.
        id: String,
        /// The type asked for.
        expected: &'static str,
        /// The type stored.
        found: String,
    },
    /// The state could not be encoded, or the stored state no longer decodes (the machine's
    /// states changed since it was written).
    #[error("machine `{id}` (a `{machine}`): state {message}")]
    Codec {
        /// The id.
        id: String,
        /// The machine's type.
        machine: &'static str,
        /// serde's words.
        message: String,
    },
    /// The database refused or failed.
    #[error("machine `{id}`: {source}")]
    Store {
        /// The id.
        id: String,
        /// The store's error, naming the file.
        #[source]
        source: StoreError,
    },
}

impl MachineError {
    /// Whether this is a lost race ([`MachineError::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, MachineError::Conflict { .. })
    }

    /// The transition error inside, if the event was refused.
    pub fn transition(&self) -> Option<&TransitionError> {
        match self {
            MachineError::Transition { source, .. } => Some(source),
            _ => None,
        }
    }
}
