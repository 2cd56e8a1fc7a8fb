//! A property: random event sequences, with random guard answers and action failures, drive
//! a `fsm!` machine and a small reference model written here by hand from the table; after
//! every event both are in the same state, and they agree on whether the event moved the
//! machine.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sagaflow::{ActionError, Machine, fsm};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A lock's code.
pub struct Code(u8);

fsm! {
    /// A door, as in the design.
    pub Door {
        *Closed + Open [unlocked] / log_open = Opened,
        Opened + Close = Closed,
        Closed + Lock(Code) / remember = Locked(Code),
        Locked(Code) + Unlock(Code) [code_matches] = Closed,
        _ + Break = Broken,
        state Broken { final },
    }
}

/// The outside world's answers, in order.
struct Ctx {
    unlocked: bool,
    log_fails: bool,
}

impl DoorContext for Ctx {
    async fn unlocked(&mut self) -> bool {
        self.unlocked
    }
    async fn log_open(&mut self) -> Result<(), ActionError> {
        if self.log_fails {
            return Err(ActionError::new("log full"));
        }
        Ok(())
    }
    async fn remember(&mut self, code: Code) -> Result<Code, ActionError> {
        Ok(code)
    }
    async fn code_matches(&mut self, state: &Code, event: &Code) -> bool {
        state == event
    }
}

/// The reference: the table above, by hand.
#[derive(Debug, Clone, PartialEq)]
enum Model {
    Closed,
    Opened,
    Locked(u8),
    Broken,
}

#[derive(Debug, Clone)]
enum Ev {
    Open { unlocked: bool, log_fails: bool },
    Close,
    Lock(u8),
    Unlock(u8),
    Break,
}

fn model_step(state: &Model, event: &Ev) -> Option<Model> {
    match (state, event) {
        (Model::Broken, _) => None, // final: nothing leaves it
        (_, Ev::Break) => Some(Model::Broken),
        (
            Model::Closed,
            Ev::Open {
                unlocked: true,
                log_fails: false,
            },
        ) => Some(Model::Opened),
        (Model::Opened, Ev::Close) => Some(Model::Closed),
        (Model::Closed, Ev::Lock(code)) => Some(Model::Locked(*code)),
        (Model::Locked(held), Ev::Unlock(code)) if held == code => Some(Model::Closed),
        _ => None,
    }
}

fn same(model: &Model, state: &DoorState) -> bool {
    match (model, state) {
        (Model::Closed, DoorState::Closed)
        | (Model::Opened, DoorState::Opened)
        | (Model::Broken, DoorState::Broken) => true,
        (Model::Locked(a), DoorState::Locked(Code(b))) => a == b,
        _ => false,
    }
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        (any::<bool>(), prop::bool::weighted(0.2)).prop_map(|(unlocked, log_fails)| Ev::Open {
            unlocked,
            log_fails
        }),
        Just(Ev::Close),
        (0_u8..3).prop_map(Ev::Lock),
        (0_u8..3).prop_map(Ev::Unlock),
        prop::bool::weighted(0.05).prop_map(|_| Ev::Break),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_follows_the_reference_model(events in prop::collection::vec(event(), 0..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut door: Machine<Door> = Door::machine();
        let mut model = Model::Closed;
        for ev in &events {
            let mut ctx = Ctx { unlocked: true, log_fails: false };
            let event = match ev {
                Ev::Open { unlocked, log_fails } => {
                    ctx = Ctx { unlocked: *unlocked, log_fails: *log_fails };
                    DoorEvent::Open
                }
                Ev::Close => DoorEvent::Close,
                Ev::Lock(c) => DoorEvent::Lock(Code(*c)),
                Ev::Unlock(c) => DoorEvent::Unlock(Code(*c)),
                Ev::Break => DoorEvent::Break,
            };
            let moved = runtime.block_on(door.fire(&mut ctx, event)).is_ok();
            let expected = model_step(&model, ev);
            prop_assert_eq!(moved, expected.is_some(), "{:?} in {:?}", ev, model);
            if let Some(next) = expected {
                model = next;
            }
            prop_assert!(same(&model, door.state()), "{:?} vs {:?}", model, door.state());
            prop_assert_eq!(door.is_final(), model == Model::Broken);
        }
    }
}
