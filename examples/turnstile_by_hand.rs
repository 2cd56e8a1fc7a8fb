//! A state machine written without the macro: the types and trait implementations that
//!
//! ```text
//! fsm! {
//!     pub Turnstile {
//!         *Locked + Coin(u32) [paid_enough] / count = Unlocked,
//!         Unlocked + Push = Locked,
//!         _ + Break = Broken,
//!         state Unlocked { entry = beep },
//!         state Broken { final },
//!     }
//! }
//! ```
//!
//! expands to, minus the build-time checks of the table and the spans that put rustc's
//! errors on your code. The transition function is a `match` on the state and, in each arm,
//! on the event, as one writes it by hand: `benches/fsm.rs` measures the macro's against a
//! plain `match`. The machine is then persisted on SQLite like any `fsm!` machine.
//!
//! Run it with `cargo run --example turnstile_by_hand`.

use std::future::Future;

use sagaflow::{
    ActionError, Fsm, Machine, PersistedMachine, Spec, SqliteStore, StateSpec, Transition,
    TransitionError, TransitionErrorKind, TransitionSpec,
};
use serde::{Deserialize, Serialize};

/// The states, with their data (none here). Serialized as the persisted machine's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TurnstileState {
    /// The initial state.
    Locked,
    /// Paid: one person may pass.
    Unlocked,
    /// Final.
    Broken,
}

/// The events, with their payloads.
#[derive(Debug)]
pub enum TurnstileEvent {
    /// A coin, in cents.
    Coin(u32),
    /// Someone pushes the arm.
    Push,
    /// Someone breaks it.
    Break,
}

impl TurnstileEvent {
    fn name(&self) -> &'static str {
        match self {
            TurnstileEvent::Coin(_) => "Coin",
            TurnstileEvent::Push => "Push",
            TurnstileEvent::Break => "Break",
        }
    }
}

/// The guards and actions the table names, as the methods of a context the caller provides.
/// Their futures are `Send`, so that a machine can be driven from `tokio::spawn`.
pub trait TurnstileContext: Send {
    /// A guard: it sees the event's payload by reference.
    fn paid_enough(&mut self, cents: &u32) -> impl Future<Output = bool> + Send;
    /// A transition's action: it takes the payload, and would return the target's data.
    fn count(&mut self, cents: u32) -> impl Future<Output = Result<(), ActionError>> + Send;
    /// `Unlocked`'s entry action.
    fn beep(&mut self) -> impl Future<Output = Result<(), ActionError>> + Send;
}

/// The machine type.
pub struct Turnstile;

const MACHINE: &str = "Turnstile";

impl Fsm for Turnstile {
    type State = TurnstileState;
    type Event = TurnstileEvent;

    /// The table, for `mermaid()`, `dot()` and the command line.
    fn spec() -> &'static Spec {
        static SPEC: Spec = Spec {
            name: MACHINE,
            initial: "Locked",
            states: &[
                StateSpec {
                    name: "Locked",
                    is_final: false,
                    entry: None,
                    exit: None,
                },
                StateSpec {
                    name: "Unlocked",
                    is_final: false,
                    entry: Some("beep"),
                    exit: None,
                },
                StateSpec {
                    name: "Broken",
                    is_final: true,
                    entry: None,
                    exit: None,
                },
            ],
            events: &["Coin", "Push", "Break"],
            transitions: &[
                TransitionSpec {
                    from: Some("Locked"),
                    event: "Coin",
                    guard: Some("paid_enough"),
                    action: Some("count"),
                    to: "Unlocked",
                },
                TransitionSpec {
                    from: Some("Unlocked"),
                    event: "Push",
                    guard: None,
                    action: None,
                    to: "Locked",
                },
                TransitionSpec {
                    from: None,
                    event: "Break",
                    guard: None,
                    action: None,
                    to: "Broken",
                },
            ],
        };
        &SPEC
    }

    fn initial() -> TurnstileState {
        TurnstileState::Locked
    }

    fn state_name(state: &TurnstileState) -> &'static str {
        match state {
            TurnstileState::Locked => "Locked",
            TurnstileState::Unlocked => "Unlocked",
            TurnstileState::Broken => "Broken",
        }
    }

    fn event_name(event: &TurnstileEvent) -> &'static str {
        event.name()
    }
}

impl<C: TurnstileContext + ?Sized> Transition<C> for Turnstile {
    // The trait asks for a `Send` future; an `async fn` here gives one, since the context's
    // futures are `Send`.
    async fn transition(
        ctx: &mut C,
        state: &TurnstileState,
        event: TurnstileEvent,
    ) -> Result<TurnstileState, TransitionError> {
        let (from, on) = (Turnstile::state_name(state), event.name());
        let no_transition = || {
            TransitionError::from(TransitionErrorKind::NoTransition {
                machine: MACHINE,
                state: from,
                event: on,
            })
        };
        match state {
            TurnstileState::Locked => match event {
                TurnstileEvent::Coin(cents) => {
                    if !ctx.paid_enough(&cents).await {
                        return Err(TransitionErrorKind::GuardRefused {
                            machine: MACHINE,
                            state: from,
                            event: on,
                            guards: &["paid_enough"],
                        }
                        .into());
                    }
                    // The action, then the target's entry action; any failure leaves the
                    // caller's state as it was.
                    ctx.count(cents)
                        .await
                        .map_err(|error| TransitionErrorKind::ActionFailed {
                            machine: MACHINE,
                            state: from,
                            event: on,
                            action: "count",
                            error,
                        })?;
                    ctx.beep()
                        .await
                        .map_err(|error| TransitionErrorKind::EntryFailed {
                            machine: MACHINE,
                            state: from,
                            event: on,
                            target: "Unlocked",
                            action: "beep",
                            error,
                        })?;
                    Ok(TurnstileState::Unlocked)
                }
                TurnstileEvent::Break => Ok(TurnstileState::Broken),
                TurnstileEvent::Push => Err(no_transition()),
            },
            TurnstileState::Unlocked => match event {
                TurnstileEvent::Push => Ok(TurnstileState::Locked),
                TurnstileEvent::Break => Ok(TurnstileState::Broken),
                TurnstileEvent::Coin(_) => Err(no_transition()),
            },
            TurnstileState::Broken => Err(TransitionErrorKind::Final {
                machine: MACHINE,
                state: from,
                event: on,
            }
            .into()),
        }
    }
}

/// The station: what the guards and actions act on.
#[derive(Default)]
struct Station {
    takings: u32,
}

impl TurnstileContext for Station {
    async fn paid_enough(&mut self, cents: &u32) -> bool {
        *cents >= 250
    }

    async fn count(&mut self, cents: u32) -> Result<(), ActionError> {
        self.takings += cents;
        Ok(())
    }

    async fn beep(&mut self) -> Result<(), ActionError> {
        println!("  beep");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut station = Station::default();

    // In memory.
    let mut gate = Machine::<Turnstile>::new();
    for event in [
        TurnstileEvent::Coin(100),
        TurnstileEvent::Coin(300),
        TurnstileEvent::Coin(300),
        TurnstileEvent::Push,
    ] {
        let on = event.name();
        match gate.fire(&mut station, event).await {
            Ok(state) => println!("{on:<5} -> {state:?}"),
            Err(error) => println!("{on:<5} refused: {error}"),
        }
    }

    // Persisted, many by id in one database, each transition logged.
    let store = SqliteStore::in_memory()?;
    let mut north = PersistedMachine::<Turnstile>::open(&store, "north-gate").await?;
    north.fire(&mut station, TurnstileEvent::Coin(250)).await?;
    north.fire(&mut station, TurnstileEvent::Break).await?;
    for t in north.history().await? {
        println!("north-gate: {} + {} = {}", t.from, t.event, t.to);
    }
    if let Err(error) = north.fire(&mut station, TurnstileEvent::Push).await {
        println!("north-gate: {error}");
    }
    println!("takings: {} cents", station.takings);
    println!("{}", north.mermaid());
    Ok(())
}
