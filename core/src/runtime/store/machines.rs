//! The machine capability: state machines persisted by id, each with its state, a version
//! bumped by every transition, and an append-only log of its transitions.
//!
//! The trait, its types, and the contract: [`MachineStore`].

use std::sync::Arc;

use crate::runtime::error::StoreError;

/// A machine as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMachine {
    /// The machine's id, unique in the database.
    pub id: String,
    /// The machine's type (the name given to `fsm!`).
    pub machine: String,
    /// The state, as the runtime encoded it (JSON).
    pub state: String,
    /// Bumped by every transition; 0 when created.
    pub version: u64,
    /// When it was created, unix milliseconds.
    pub created_at: i64,
    /// When it last changed, unix milliseconds.
    pub updated_at: i64,
}

/// One row of a machine's transition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineTransition {
    /// The version the transition produced (1 for the first).
    pub seq: u64,
    /// The state it left.
    pub from: String,
    /// The event that caused it.
    pub event: String,
    /// The state it entered.
    pub to: String,
    /// When it was committed, unix milliseconds.
    pub at: i64,
}

/// What [`MachineStore::advance_machine`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// The state and the log row were committed; the machine is at `version`.
    Applied {
        /// The new version.
        version: u64,
        /// The commit's time, unix milliseconds.
        at: i64,
    },
    /// Nothing was written: the machine is not at the version the caller read. `found` is the
    /// version it is at, `None` if it does not exist.
    Conflict {
        /// The stored version, if the machine exists.
        found: Option<u64>,
    },
}

/// A transition to store: the version it was decided on, the new state and the log row's names.
#[derive(Debug, Clone)]
pub struct MachineStep {
    /// The version the caller read; the write applies only if the machine is still there.
    pub expected_version: u64,
    /// The new state (JSON).
    pub state: String,
    /// The state left, for the log.
    pub from: String,
    /// The event, for the log.
    pub event: String,
    /// The state entered, for the log.
    pub to: String,
}

/// Stores state machines: the machine capability of a store. `sagaflow-fsm`'s persisted
/// machines work on any store that has it. The contract every implementation keeps (the
/// conformance suite checks it):
///
/// - [`insert_machine`](Self::insert_machine) creates a machine at version 0 once: the id is
///   the idempotency key, and a second insert hands back the machine as stored;
/// - [`advance_machine`](Self::advance_machine) applies a transition only if the machine is
///   still at the version the caller read (optimistic concurrency), and writes the new state
///   and its log row together or not at all; otherwise it writes nothing and answers
///   [`Advanced::Conflict`] with the version it found;
/// - the log's `seq` is the version the transition produced, 1 for the first.
#[async_trait::async_trait]
pub trait MachineStore: Send + Sync {
    /// The machine `id`, if it exists.
    async fn load_machine(&self, id: &str) -> Result<Option<StoredMachine>, StoreError>;

    /// Creates the machine `id` of type `machine` in `state` at version 0, unless a machine
    /// has that id already; returns the machine as stored either way (the id is the
    /// idempotency key), and whether this call created it.
    async fn insert_machine(
        &self,
        id: &str,
        machine: &str,
        state: &str,
    ) -> Result<(StoredMachine, bool), StoreError>;

    /// Stores a transition of machine `id`: the new state and version, and the log row,
    /// together, only if the machine is still at `step.expected_version`.
    async fn advance_machine(&self, id: &str, step: MachineStep) -> Result<Advanced, StoreError>;

    /// The ids of every machine of type `machine`, in id order (meant for sweeps, such as
    /// escalating overdue ones, not for a hot path).
    async fn machine_ids(&self, machine: &str) -> Result<Vec<String>, StoreError>;

    /// Up to `limit` transitions of machine `id` with a `seq` past `after`, oldest first.
    async fn machine_log(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MachineTransition>, StoreError>;
}

/// A shared store is a store: `Arc<MemoryStore>` and the like.
#[async_trait::async_trait]
impl<S: MachineStore + ?Sized> MachineStore for Arc<S> {
    async fn load_machine(&self, id: &str) -> Result<Option<StoredMachine>, StoreError> {
        (**self).load_machine(id).await
    }

    async fn insert_machine(
        &self,
        id: &str,
        machine: &str,
        state: &str,
    ) -> Result<(StoredMachine, bool), StoreError> {
        (**self).insert_machine(id, machine, state).await
    }

    async fn advance_machine(&self, id: &str, step: MachineStep) -> Result<Advanced, StoreError> {
        (**self).advance_machine(id, step).await
    }

    async fn machine_ids(&self, machine: &str) -> Result<Vec<String>, StoreError> {
        (**self).machine_ids(machine).await
    }

    async fn machine_log(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MachineTransition>, StoreError> {
        (**self).machine_log(id, after, limit).await
    }
}
