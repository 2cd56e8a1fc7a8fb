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
//! plain `match`. What a transition with hooks does (the guard, the action, the exit and entry
//! actions, and the error of each) is not written here but in the runtime,
//! `sagaflow::transition::run`, given the transition's hooks as a `Hooks` implementation. The
//! machine is then persisted on SQLite like any `fsm!` machine.
//!
//! Run it with `cargo run --example turnstile_by_hand`.

use std::future::Future;

use sagaflow::transition::{self, Hooks, Names};
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

/// The hooks of `Locked + Coin(u32) [paid_enough] / count = Unlocked`, with `Unlocked`'s entry
/// action: what the runtime's sequence (`transition::run`) calls, in that order, naming the one
/// that fails. `fsm!` writes one such struct for each transition that has a hook; the others
/// (`Unlocked + Push = Locked`, `_ + Break = Broken`) are just their target state.
struct LockedCoin;

impl<C: TurnstileContext + ?Sized> Hooks<C> for LockedCoin {
    type Machine = Turnstile;
    /// `Locked` holds no data.
    type SourceData = ();
    /// `Coin(u32)`.
    type Payload = u32;
    /// Nor does `Unlocked`.
    type TargetData = ();

    const NAMES: Names = Names {
        state: "Locked",
        event: "Coin",
        target: "Unlocked",
        guards: &["paid_enough"],
        action: Some("count"),
        exit: None,
        entry: Some("beep"),
    };

    fn guard(ctx: &mut C, _: &(), cents: &u32) -> impl Future<Output = bool> + Send {
        ctx.paid_enough(cents)
    }

    fn action(
        ctx: &mut C,
        _: &(),
        cents: u32,
    ) -> impl Future<Output = Result<(), ActionError>> + Send {
        ctx.count(cents)
    }

    // `Locked` has no exit action: `exit` keeps its default, which does nothing.

    fn entry(ctx: &mut C, _: &()) -> impl Future<Output = Result<(), ActionError>> + Send {
        ctx.beep()
    }

    fn enter((): ()) -> TurnstileState {
        TurnstileState::Unlocked
    }
}

impl<C: TurnstileContext + ?Sized> Transition<C> for Turnstile {
    // The trait asks for a `Send` future; an `async fn` here gives one, since the context's
    // futures are `Send`, and so is the sequence's.
    async fn transition(
        ctx: &mut C,
        state: &TurnstileState,
        event: TurnstileEvent,
    ) -> Result<TurnstileState, TransitionError> {
        let no_transition = |state: &'static str, event: &'static str| {
            TransitionError::from(TransitionErrorKind::NoTransition {
                machine: MACHINE,
                state,
                event,
            })
        };
        match state {
            TurnstileState::Locked => match event {
                // The guard, the action and the entry action, in order; any failure leaves
                // the caller's state as it was.
                TurnstileEvent::Coin(cents) => {
                    transition::run::<C, LockedCoin>(ctx, &(), cents).await
                }
                TurnstileEvent::Break => Ok(TurnstileState::Broken),
                event => Err(no_transition("Locked", event.name())),
            },
            TurnstileState::Unlocked => match event {
                TurnstileEvent::Push => Ok(TurnstileState::Locked),
                TurnstileEvent::Break => Ok(TurnstileState::Broken),
                event => Err(no_transition("Unlocked", event.name())),
            },
            TurnstileState::Broken => Err(TransitionErrorKind::Final {
                machine: MACHINE,
                state: "Broken",
                event: event.name(),
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
