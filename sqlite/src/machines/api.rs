//! The store's calls on persisted machines (what `sagaflow-fsm` uses), and `engine()`. A
//! transition goes to the writer as a [`WriteOp`], which the writer applies with the parent's
//! `advance` (see `rows.rs`); the other calls read, or write in a transaction of their own.

use std::sync::Arc;

use crate::SqliteStore;
use crate::rows::{Applied, WriteOp};
use sagaflow_core::runtime::engine::Engine;
use sagaflow_core::runtime::error::StoreError;

use super::{
    Advanced, MachineStep, MachineTransition, StoredMachine, ids, in_transaction, insert, load, log,
};

impl SqliteStore {
    /// An engine whose runs are recorded in this store: its workflows and sagas, and the
    /// machines persisted here, share one database file and one writer thread.
    pub fn engine(&self) -> Engine {
        Engine::builder().store(Arc::new(self.clone())).build()
    }

    /// The machine `id`, if it exists.
    pub async fn load_machine(&self, id: &str) -> Result<Option<StoredMachine>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn, label| load(conn, label, &id)).await
    }

    /// Creates the machine `id` of type `machine` in `state` at version 0, unless a machine
    /// has that id already; returns the machine as stored either way (the id is the
    /// idempotency key), and whether this call created it.
    pub async fn insert_machine(
        &self,
        id: &str,
        machine: &str,
        state: &str,
    ) -> Result<(StoredMachine, bool), StoreError> {
        let (id, machine, state) = (id.to_owned(), machine.to_owned(), state.to_owned());
        self.exclusive(move |conn, label| {
            in_transaction(conn, label, |conn, label| {
                let created = insert(conn, label, &id, &machine, &state)?;
                match load(conn, label, &id)? {
                    Some(stored) => Ok((stored, created)),
                    None => Err(StoreError::Backend(format!(
                        "database `{label}`: machine `{id}` vanished while it was created"
                    ))),
                }
            })
        })
        .await
    }

    /// Stores a transition of machine `id`: the new state and version, and the log row, in one
    /// transaction, only if the machine is still at `step.expected_version`.
    pub async fn advance_machine(
        &self,
        id: &str,
        step: MachineStep,
    ) -> Result<Advanced, StoreError> {
        let op = WriteOp::AdvanceMachine {
            machine_id: id.to_owned(),
            step,
        };
        match self.write(op).await? {
            Applied::Advanced(advanced) => Ok(advanced),
            _ => Err(self.misanswered("a machine's transition")),
        }
    }

    /// The ids of every machine of type `machine`, in id order (a scan of the machines: meant
    /// for sweeps such as escalating overdue ones, not for a hot path).
    pub async fn machine_ids(&self, machine: &str) -> Result<Vec<String>, StoreError> {
        let machine = machine.to_owned();
        self.read(move |conn, label| ids(conn, label, &machine))
            .await
    }

    /// Up to `limit` transitions of machine `id` with a `seq` past `after`, oldest first.
    pub async fn machine_log(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MachineTransition>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn, label| log(conn, label, &id, after, limit))
            .await
    }
}
