//! The design's door: data in events and states, a guard, actions, entry and exit actions, a
//! wildcard and a final state; driven from a spawned task and persisted.

use sagaflow::{ActionError, SqliteStore, fsm};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Code(u32);

fsm! {
    /// A door.
    pub Door {
        *Closed + Open [unlocked] / log_open = Opened,
        Opened + Close = Closed,
        Closed + Lock(Code) / remember = Locked(Code),
        Locked(Code) + Unlock(Code) [code_matches] = Closed,
        _ + Break = Broken,
        state Opened { entry = ring, exit = silence },
        state Broken { final },
        event Break,
    }
}

#[derive(Default)]
struct Hall {
    opened: u32,
}

impl DoorContext for Hall {
    async fn unlocked(&mut self) -> bool {
        true
    }
    async fn log_open(&mut self) -> Result<(), ActionError> {
        self.opened += 1;
        Ok(())
    }
    async fn remember(&mut self, event: Code) -> Result<Code, ActionError> {
        Ok(event)
    }
    async fn code_matches(&mut self, state: &Code, event: &Code) -> bool {
        state == event
    }
    async fn ring(&mut self) -> Result<(), ActionError> {
        Ok(())
    }
    async fn silence(&mut self) -> Result<(), ActionError> {
        Ok(())
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::in_memory().unwrap();
        let task = tokio::spawn(async move {
            let mut hall = Hall::default();
            let mut door = Door::open(&store, "front").await.unwrap();
            door.fire(&mut hall, DoorEvent::Open).await.unwrap();
            door.fire(&mut hall, DoorEvent::Close).await.unwrap();
            door.fire(&mut hall, DoorEvent::Lock(Code(7))).await.unwrap();
            door.fire(&mut hall, DoorEvent::Unlock(Code(7))).await.unwrap();
            door.fire(&mut hall, DoorEvent::Break).await.unwrap();
            (door.version(), hall.opened, door.is_final())
        });
        assert_eq!(task.await.unwrap(), (5, 1, true));
    });
}
