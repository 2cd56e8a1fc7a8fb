//! The store's calls on persisted machines (what `sagaflow-fsm` uses), and `engine()`. A
//! transition is a write of the writer ([`AdvanceMachine`]), which applies it with the
//! parent's `advance`; the other calls read, or write in a transaction of their own.

use std::sync::Arc;

use crate::SqliteStore;
use crate::ops::AdvanceMachine;
use sagaflow_core::runtime::engine::Engine;
use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::MachineStore;

use super::{
    Advanced, MachineStep, MachineTransition, StoredMachine, ids, in_transaction, insert, load, log,
};

impl SqliteStore {
    /// An engine whose runs are recorded in this store: its workflows and sagas, and the
    /// machines persisted here, share one database file and one writer thread.
    pub fn engine(&self) -> Engine {
        Engine::builder().store(Arc::new(self.clone())).build()
    }
}

/// Machines in the `machines` and `machine_transitions` tables: a transition is one write
/// of the writer, committed with the state's `UPDATE ... WHERE version = ?`.
#[async_trait::async_trait]
impl MachineStore for SqliteStore {
    async fn load_machine(&self, id: &str) -> Result<Option<StoredMachine>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn, label| load(conn, label, &id)).await
    }

    async fn insert_machine(
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

    async fn advance_machine(&self, id: &str, step: MachineStep) -> Result<Advanced, StoreError> {
        let op = AdvanceMachine {
            machine_id: id.to_owned(),
            step,
        };
        self.write(op).await
    }

    async fn machine_ids(&self, machine: &str) -> Result<Vec<String>, StoreError> {
        let machine = machine.to_owned();
        self.read(move |conn, label| ids(conn, label, &machine))
            .await
    }

    async fn machine_log(
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
