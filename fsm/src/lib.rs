//! The state-machine runtime of sagaflow: what `fsm!` generates code against.
//!
//! - [`Fsm`] describes a machine type: its `State` and `Event` enums, its initial state and its
//!   table ([`Spec`]), from which [`Spec::mermaid`] and [`Spec::dot`] draw it.
//! - [`Transition`] is the pure transition function: from a state and an event, through the
//!   guards and actions of a context, to the next state, or to a [`TransitionError`] that says
//!   which guard refused or which action failed. It changes nothing itself: the caller keeps
//!   the old state until it has the new one, so a failure leaves the machine where it was.
//! - [`transition`] is what one transition does: its guard, action, exit and entry actions in
//!   order, and the error of each. `fsm!`'s transition functions call it for every transition
//!   with hooks, given as a [`transition::Hooks`] implementation.
//! - [`Machine`] holds one machine's state in memory; [`PersistedMachine`] keeps it in the
//!   engine's SQLite database, with a version every transition bumps (`UPDATE ... WHERE
//!   version = ?`) and an append-only transition log written in the same transaction.
//!
//! Use it through the `sagaflow` crate, which documents `fsm!`.

mod error;
mod persisted;
mod spec;
pub mod transition;

use std::fmt::Debug;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{ActionError, MachineError, TransitionError, TransitionErrorKind};
pub use persisted::PersistedMachine;
pub use sagaflow_core::runtime::StoreError;
pub use sagaflow_core::runtime::store::{MachineStore, MachineTransition};
pub use spec::{Spec, StateSpec, TransitionSpec};

/// serde, for the derives `fsm!` writes on the state enum.
#[doc(hidden)]
pub use serde;

/// A machine type, as `fsm!` declares it.
pub trait Fsm: Sized + Send + Sync + 'static {
    /// The states, with their data.
    type State: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The events, with their payloads.
    type Event: Debug + Send + 'static;

    /// The machine's table.
    fn spec() -> &'static Spec;

    /// The initial state.
    fn initial() -> Self::State;

    /// The name of `state`'s variant.
    fn state_name(state: &Self::State) -> &'static str;

    /// The name of `event`'s variant.
    fn event_name(event: &Self::Event) -> &'static str;

    /// Whether `state` is declared final.
    fn is_final(state: &Self::State) -> bool {
        Self::spec()
            .state(Self::state_name(state))
            .is_some_and(|s| s.is_final)
    }

    /// The machine's type name.
    fn name() -> &'static str {
        Self::spec().name
    }
}

/// The transition function of a machine with the context `C`: the guards, actions, entry and
/// exit actions are `C`'s methods.
///
/// Given `state` and `event`, it asks the guards of the transitions leaving `state` on `event`
/// in the order they were written (a specific state's before the wildcard's) and takes the
/// first whose guard says yes (or that has none); then it runs the transition's action (which
/// makes the target's data, or receives the event's payload), the exit action of `state` and
/// the entry action of the target, and returns the target (that sequence is
/// [`transition::run`]'s). It never changes `state`: on any error the caller still has it. The
/// future is `Send`, so a machine can be driven from `tokio::spawn`.
pub trait Transition<C: ?Sized>: Fsm {
    /// The next state, or why there is none.
    fn transition<'a>(
        ctx: &'a mut C,
        state: &'a Self::State,
        event: Self::Event,
    ) -> impl Future<Output = Result<Self::State, TransitionError>> + Send + 'a;
}

/// The synchronous transition function of a machine without guards or actions (`fsm!`
/// implements it for those): the same result as [`Transition::transition`] with `()` as the
/// context, without a future.
pub trait Step: Fsm {
    /// The next state, or why there is none; `state` is not changed.
    fn step(state: &Self::State, event: Self::Event) -> Result<Self::State, TransitionError>;
}

/// One machine's state, in memory.
pub struct Machine<M: Fsm> {
    state: M::State,
}

impl<M: Fsm> Machine<M> {
    /// A machine in the initial state. The initial state's entry action does not run: a
    /// machine starts inside it.
    #[inline]
    pub fn new() -> Self {
        Self {
            state: M::initial(),
        }
    }

    /// A machine restored in `state` (deserialized, say). No entry action runs.
    #[inline]
    pub fn from_state(state: M::State) -> Self {
        Self { state }
    }

    /// The current state.
    #[inline]
    pub fn state(&self) -> &M::State {
        &self.state
    }

    /// The current state's name.
    #[inline]
    pub fn state_name(&self) -> &'static str {
        M::state_name(&self.state)
    }

    /// Whether the current state is final.
    pub fn is_final(&self) -> bool {
        M::is_final(&self.state)
    }

    /// The current state, by value.
    #[inline]
    pub fn into_state(self) -> M::State {
        self.state
    }

    /// Fires `event`: on success the machine is in the new state, which is returned; on error
    /// it is still in the state it was in.
    #[inline]
    pub async fn fire<C: ?Sized>(
        &mut self,
        ctx: &mut C,
        event: M::Event,
    ) -> Result<&M::State, TransitionError>
    where
        M: Transition<C>,
    {
        let next = M::transition(ctx, &self.state, event).await?;
        self.state = next;
        Ok(&self.state)
    }

    /// Fires `event` on a machine without guards or actions, synchronously: on error the
    /// machine is still in the state it was in.
    #[inline]
    pub fn step(&mut self, event: M::Event) -> Result<&M::State, TransitionError>
    where
        M: Step,
    {
        self.state = M::step(&self.state, event)?;
        Ok(&self.state)
    }

    /// The machine as a Mermaid state diagram, the current state highlighted.
    pub fn mermaid(&self) -> String {
        M::spec().mermaid(Some(self.state_name()))
    }

    /// The machine as a Graphviz digraph, the current state filled.
    pub fn dot(&self) -> String {
        M::spec().dot(Some(self.state_name()))
    }
}

impl<M: Fsm> Default for Machine<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Fsm> Clone for Machine<M> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<M: Fsm> Debug for Machine<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("machine", &M::name())
            .field("state", &self.state)
            .finish()
    }
}
