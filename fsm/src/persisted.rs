//! Machines persisted in any store with the machine capability ([`MachineStore`]): the
//! SQLite store, the in-memory store, the engine's store. Many machines by id in one store.

use std::fmt;
use std::sync::Arc;

use sagaflow_core::runtime::StoreError;
use sagaflow_core::runtime::store::{
    Advanced, MachineStep, MachineStore, MachineTransition, StoredMachine,
};

use crate::error::MachineError;
use crate::{Fsm, Transition};

/// A machine whose state lives in a store ([`MachineStore`]: a SQLite database, or memory):
/// the state (serde JSON) with a version, and an append-only log of its transitions.
///
/// [`fire`](Self::fire) computes the next state with the pure transition function, then
/// stores it and the log row together, only if the machine is still at the version this handle
/// read (on SQLite, `UPDATE ... WHERE version = ?` and the log row in one transaction). If another
/// writer (another task, another process) moved the machine since this handle read it, nothing
/// is written and the call returns [`MachineError::Conflict`]: exactly one transition per
/// version. A failed guard or action writes nothing either. Loading a machine restores its
/// state without running any entry action.
///
/// ```
/// use sagaflow_fsm::{Fsm, MachineStore, PersistedMachine};
/// # use sagaflow_fsm::*;
/// # async fn demo<M: Fsm, S: MachineStore + Clone + 'static>(store: &S) -> Result<(), MachineError> {
/// let machine = PersistedMachine::<M>::open(store, "order-7").await?; // created if missing
/// println!("{} at version {}", machine.state_name(), machine.version());
/// # Ok(())
/// # }
/// ```
pub struct PersistedMachine<M: Fsm> {
    store: Arc<dyn MachineStore>,
    id: String,
    state: M::State,
    version: u64,
}

impl<M: Fsm> PersistedMachine<M> {
    /// Creates the machine `id` in the initial state (no entry action runs). Errors with
    /// [`MachineError::AlreadyExists`] if a machine has this id.
    pub async fn create<S: MachineStore + Clone + 'static>(
        store: &S,
        id: impl Into<String>,
    ) -> Result<Self, MachineError> {
        let (machine, created, stored) = Self::insert(store, id.into()).await?;
        if created {
            Ok(machine)
        } else {
            Err(MachineError::AlreadyExists {
                id: stored.id,
                machine: stored.machine,
                version: stored.version,
            })
        }
    }

    /// The machine `id` as stored, or a new one in the initial state if there is none. The id
    /// is the idempotency key: calling this twice gives one machine.
    pub async fn open<S: MachineStore + Clone + 'static>(
        store: &S,
        id: impl Into<String>,
    ) -> Result<Self, MachineError> {
        let id = id.into();
        if let Some(machine) = Self::load(store, &id).await? {
            return Ok(machine);
        }
        Ok(Self::insert(store, id).await?.0)
    }

    /// The machine `id` as stored, `None` if there is none. Restores the state; runs no entry
    /// action. Errors if the machine is of another type or its state no longer decodes.
    pub async fn load<S: MachineStore + Clone + 'static>(
        store: &S,
        id: &str,
    ) -> Result<Option<Self>, MachineError> {
        let stored = store
            .load_machine(id)
            .await
            .map_err(|e| store_error(id, e))?;
        stored
            .map(|s| Self::from_stored(Arc::new(store.clone()), s))
            .transpose()
    }

    /// The ids of every machine of this type in `store`, in id order. Load each with
    /// [`load`](Self::load): one that no longer decodes then fails alone.
    pub async fn ids<S: MachineStore>(store: &S) -> Result<Vec<String>, StoreError> {
        store.machine_ids(M::name()).await
    }

    async fn insert<S: MachineStore + Clone + 'static>(
        store: &S,
        id: String,
    ) -> Result<(Self, bool, StoredMachine), MachineError> {
        let state = encode::<M>(&id, &M::initial())?;
        let (stored, created) = store
            .insert_machine(&id, M::name(), &state)
            .await
            .map_err(|e| store_error(&id, e))?;
        let machine = Self::from_stored(Arc::new(store.clone()), stored.clone())?;
        Ok((machine, created, stored))
    }

    fn from_stored(
        store: Arc<dyn MachineStore>,
        stored: StoredMachine,
    ) -> Result<Self, MachineError> {
        if stored.machine != M::name() {
            return Err(MachineError::WrongType {
                id: stored.id,
                expected: M::name(),
                found: stored.machine,
            });
        }
        let state = serde_json::from_str(&stored.state).map_err(|e| MachineError::Codec {
            id: stored.id.clone(),
            machine: M::name(),
            message: format!("does not decode: {e}"),
        })?;
        Ok(Self {
            store,
            id: stored.id,
            state,
            version: stored.version,
        })
    }

    /// The machine's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The state, as of the last load or transition through this handle.
    pub fn state(&self) -> &M::State {
        &self.state
    }

    /// The state's name.
    pub fn state_name(&self) -> &'static str {
        M::state_name(&self.state)
    }

    /// The version this handle is at: the number of transitions stored.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the state is final.
    pub fn is_final(&self) -> bool {
        M::is_final(&self.state)
    }

    /// Fires `event`: computes the next state with the context's guards and actions, then
    /// stores it and the log row in one transaction, fenced on the version this handle read.
    /// On success the handle is at the new state and version. On any error neither the handle
    /// nor the database has changed: [`MachineError::Transition`] says which guard refused or
    /// which action failed, [`MachineError::Conflict`] that another writer moved the machine
    /// first (its actions did run; [`reload`](Self::reload) and decide again).
    pub async fn fire<C: ?Sized>(
        &mut self,
        ctx: &mut C,
        event: M::Event,
    ) -> Result<&M::State, MachineError>
    where
        M: Transition<C>,
    {
        let event_name = M::event_name(&event);
        let from = M::state_name(&self.state);
        let next = M::transition(ctx, &self.state, event)
            .await
            .map_err(|source| MachineError::Transition {
                id: self.id.clone(),
                source,
            })?;
        let step = MachineStep {
            expected_version: self.version,
            state: encode::<M>(&self.id, &next)?,
            from: from.to_owned(),
            event: event_name.to_owned(),
            to: M::state_name(&next).to_owned(),
        };
        match self
            .store
            .advance_machine(&self.id, step)
            .await
            .map_err(|e| store_error(&self.id, e))?
        {
            Advanced::Applied { version, .. } => {
                self.state = next;
                self.version = version;
                Ok(&self.state)
            }
            Advanced::Conflict { found } => Err(MachineError::Conflict {
                id: self.id.clone(),
                state: from,
                event: event_name,
                expected: self.version,
                found,
            }),
        }
    }

    /// Reads the machine again: after a [`MachineError::Conflict`], or to see another
    /// writer's transitions. Runs no entry action.
    pub async fn reload(&mut self) -> Result<(), MachineError> {
        let stored = self
            .store
            .load_machine(&self.id)
            .await
            .map_err(|e| store_error(&self.id, e))?
            .ok_or_else(|| MachineError::NotFound {
                id: self.id.clone(),
            })?;
        *self = Self::from_stored(Arc::clone(&self.store), stored)?;
        Ok(())
    }

    /// The transition log, oldest first.
    pub async fn history(&self) -> Result<Vec<MachineTransition>, MachineError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map_or(0, |t: &MachineTransition| t.seq);
            let page = self
                .store
                .machine_log(&self.id, after, 1024)
                .await
                .map_err(|e| store_error(&self.id, e))?;
            let done = page.len() < 1024;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
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

impl<M: Fsm> fmt::Debug for PersistedMachine<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistedMachine")
            .field("machine", &M::name())
            .field("id", &self.id)
            .field("state", &self.state)
            .field("version", &self.version)
            .finish()
    }
}

fn encode<M: Fsm>(id: &str, state: &M::State) -> Result<String, MachineError> {
    serde_json::to_string(state).map_err(|e| MachineError::Codec {
        id: id.to_owned(),
        machine: M::name(),
        message: format!("`{}` does not encode: {e}", M::state_name(state)),
    })
}

fn store_error(id: &str, source: StoreError) -> MachineError {
    MachineError::Store {
        id: id.to_owned(),
        source,
    }
}
