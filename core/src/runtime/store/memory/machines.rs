//! The in-memory store's machines: a map by id under a lock of its own (apart from the runs',
//! so machines never wait on checkpoints), each machine with its log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::MemoryStore;
use crate::runtime::error::StoreError;
use crate::runtime::store::{
    Advanced, MachineStep, MachineStore, MachineTransition, StoredMachine,
};

/// A machine and its log.
#[derive(Debug)]
struct Machine {
    stored: StoredMachine,
    log: Vec<MachineTransition>,
}

/// Every machine of a [`MemoryStore`], by id.
#[derive(Debug, Default)]
pub(super) struct Machines(Mutex<HashMap<String, Machine>>);

impl Machines {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Machine>> {
        // Every write below leaves the map whole between statements, so the data behind a
        // poisoned lock is still good.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait::async_trait]
impl MachineStore for MemoryStore {
    async fn load_machine(&self, id: &str) -> Result<Option<StoredMachine>, StoreError> {
        Ok(self.machines.lock().get(id).map(|m| m.stored.clone()))
    }

    async fn insert_machine(
        &self,
        id: &str,
        machine: &str,
        state: &str,
    ) -> Result<(StoredMachine, bool), StoreError> {
        let mut machines = self.machines.lock();
        if let Some(existing) = machines.get(id) {
            return Ok((existing.stored.clone(), false));
        }
        let at = now_ms();
        let stored = StoredMachine {
            id: id.to_owned(),
            machine: machine.to_owned(),
            state: state.to_owned(),
            version: 0,
            created_at: at,
            updated_at: at,
        };
        machines.insert(
            id.to_owned(),
            Machine {
                stored: stored.clone(),
                log: Vec::new(),
            },
        );
        Ok((stored, true))
    }

    async fn advance_machine(&self, id: &str, step: MachineStep) -> Result<Advanced, StoreError> {
        let mut machines = self.machines.lock();
        let Some(machine) = machines.get_mut(id) else {
            return Ok(Advanced::Conflict { found: None });
        };
        if machine.stored.version != step.expected_version {
            return Ok(Advanced::Conflict {
                found: Some(machine.stored.version),
            });
        }
        let at = now_ms().max(machine.stored.updated_at);
        let version = step.expected_version.saturating_add(1);
        machine.stored.state = step.state;
        machine.stored.version = version;
        machine.stored.updated_at = at;
        machine.log.push(MachineTransition {
            seq: version,
            from: step.from,
            event: step.event,
            to: step.to,
            at,
        });
        Ok(Advanced::Applied { version, at })
    }

    async fn machine_ids(&self, machine: &str) -> Result<Vec<String>, StoreError> {
        let machines = self.machines.lock();
        let ids: BTreeMap<&str, ()> = machines
            .values()
            .filter(|m| m.stored.machine == machine)
            .map(|m| (m.stored.id.as_str(), ()))
            .collect();
        Ok(ids.into_keys().map(str::to_owned).collect())
    }

    async fn machine_log(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MachineTransition>, StoreError> {
        let machines = self.machines.lock();
        Ok(machines.get(id).map_or_else(Vec::new, |m| {
            m.log
                .iter()
                .filter(|t| t.seq > after)
                .take(limit)
                .cloned()
                .collect()
        }))
    }
}
