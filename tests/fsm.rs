//! `fsm!` in memory: the generated enums and context trait, the transition function, guards
//! and actions that fail without moving the machine, entry and exit actions, wildcards, final
//! states, payloads moved into states, `Send` futures, diagrams.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use sagaflow::{ActionError, Fsm, Machine, TransitionErrorKind, fsm};
use serde::{Deserialize, Serialize};

/// A lock's code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Code(u32);

fsm! {
    /// A door.
    pub Door {
        *Closed + Open [unlocked] / log_open = Opened,
        Opened + Close = Closed,
        Closed + Lock(Code) / remember = Locked(Code),
        Locked(Code) + Unlock(Code) [code_matches] = Closed,
        Locked + Unlock [always] / alarm = Locked,
        _ + Break = Broken,
        state Opened { entry = ring, exit = silence },
        state Broken { final },
    }
}

/// Records every call, and fails on demand.
#[derive(Default)]
struct Ctx {
    jammed: bool,
    fail_log: bool,
    fail_ring: bool,
    fail_silence: bool,
    calls: Vec<String>,
}

impl DoorContext for Ctx {
    async fn unlocked(&mut self) -> bool {
        self.calls.push("unlocked".into());
        tokio::task::yield_now().await; // a real await point: the future is polled twice
        !self.jammed
    }
    async fn log_open(&mut self) -> Result<(), ActionError> {
        self.calls.push("log_open".into());
        if self.fail_log {
            return Err(ActionError::new("log is full"));
        }
        Ok(())
    }
    async fn remember(&mut self, event: Code) -> Result<Code, ActionError> {
        self.calls.push(format!("remember {}", event.0));
        Ok(event)
    }
    async fn code_matches(&mut self, state: &Code, event: &Code) -> bool {
        self.calls
            .push(format!("code_matches {} {}", state.0, event.0));
        state == event
    }
    async fn always(&mut self, _state: &Code, _event: &Code) -> bool {
        self.calls.push("always".into());
        true
    }
    async fn alarm(&mut self, state: &Code, event: Code) -> Result<Code, ActionError> {
        self.calls.push(format!("alarm {}", event.0));
        Ok(state.clone())
    }
    async fn ring(&mut self) -> Result<(), ActionError> {
        self.calls.push("ring".into());
        if self.fail_ring {
            return Err(std::io::Error::other("bell broken").into());
        }
        Ok(())
    }
    async fn silence(&mut self) -> Result<(), ActionError> {
        self.calls.push("silence".into());
        if self.fail_silence {
            return Err(ActionError::new("stuck"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_transition_runs_guard_action_exit_and_entry_in_order() {
    let mut ctx = Ctx::default();
    let mut door = Door::machine();
    assert!(matches!(door.state(), DoorState::Closed));
    door.fire(&mut ctx, DoorEvent::Open).await.unwrap();
    assert!(matches!(door.state(), DoorState::Opened));
    assert_eq!(ctx.calls, ["unlocked", "log_open", "ring"]);
    ctx.calls.clear();
    door.fire(&mut ctx, DoorEvent::Close).await.unwrap();
    assert_eq!(door.state_name(), "Closed");
    assert_eq!(ctx.calls, ["silence"]);
}

#[tokio::test]
async fn a_guard_that_says_no_leaves_the_state_and_names_itself() {
    let mut ctx = Ctx {
        jammed: true,
        ..Ctx::default()
    };
    let mut door = Door::machine();
    let err = door.fire(&mut ctx, DoorEvent::Open).await.unwrap_err();
    assert!(matches!(door.state(), DoorState::Closed));
    assert!(
        matches!(
            err.kind(),
            TransitionErrorKind::GuardRefused {
                machine: "Door",
                state: "Closed",
                event: "Open",
                guards: ["unlocked"],
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Door: guard `unlocked` refused `Open` in `Closed`"
    );
    assert_eq!(ctx.calls, ["unlocked"], "no action after a refusal");
}

#[tokio::test]
async fn a_failing_action_leaves_the_state_and_says_which() {
    let mut ctx = Ctx {
        fail_log: true,
        ..Ctx::default()
    };
    let mut door = Door::machine();
    let err = door.fire(&mut ctx, DoorEvent::Open).await.unwrap_err();
    assert!(matches!(door.state(), DoorState::Closed));
    assert_eq!(
        err.to_string(),
        "Door: action `log_open` failed on `Open` in `Closed`: log is full"
    );
    assert_eq!((err.state(), err.event()), ("Closed", "Open"));
    assert_eq!(
        ctx.calls,
        ["unlocked", "log_open"],
        "no entry after a failed action"
    );
}

#[tokio::test]
async fn failing_entry_and_exit_actions_leave_the_state() {
    let mut ctx = Ctx {
        fail_ring: true,
        ..Ctx::default()
    };
    let mut door = Door::machine();
    let err = door.fire(&mut ctx, DoorEvent::Open).await.unwrap_err();
    assert!(matches!(door.state(), DoorState::Closed));
    assert_eq!(
        err.to_string(),
        "Door: entry action `ring` of `Opened` failed on `Open` from `Closed`: bell broken"
    );

    ctx.fail_ring = false;
    door.fire(&mut ctx, DoorEvent::Open).await.unwrap();
    ctx.fail_silence = true;
    let err = door.fire(&mut ctx, DoorEvent::Close).await.unwrap_err();
    assert!(matches!(door.state(), DoorState::Opened));
    assert!(matches!(
        err.kind(),
        TransitionErrorKind::ExitFailed {
            action: "silence",
            state: "Opened",
            ..
        }
    ));
}

#[tokio::test]
async fn a_payload_moves_into_the_state_and_guards_see_both() {
    let mut ctx = Ctx::default();
    let mut door = Door::machine();
    door.fire(&mut ctx, DoorEvent::Lock(Code(1234)))
        .await
        .unwrap();
    assert!(matches!(door.state(), DoorState::Locked(Code(1234))));

    // A wrong code: the first guard says no, the second (`always`) fires and its action keeps
    // the stored code.
    door.fire(&mut ctx, DoorEvent::Unlock(Code(1)))
        .await
        .unwrap();
    assert!(matches!(door.state(), DoorState::Locked(Code(1234))));
    assert_eq!(
        &ctx.calls[1..],
        ["code_matches 1234 1", "always", "alarm 1"],
        "guards are asked in the order written"
    );

    door.fire(&mut ctx, DoorEvent::Unlock(Code(1234)))
        .await
        .unwrap();
    assert!(matches!(door.state(), DoorState::Closed));
}

#[tokio::test]
async fn a_wildcard_leaves_any_state_and_a_final_state_refuses_everything() {
    for setup in [
        vec![],
        vec![DoorEvent::Open],
        vec![DoorEvent::Lock(Code(7))],
    ] {
        let mut ctx = Ctx::default();
        let mut door = Door::machine();
        for event in setup {
            door.fire(&mut ctx, event).await.unwrap();
        }
        door.fire(&mut ctx, DoorEvent::Break).await.unwrap();
        assert!(matches!(door.state(), DoorState::Broken));
        assert!(door.is_final());
    }
    let mut door = Machine::<Door>::from_state(DoorState::Broken);
    let err = door
        .fire(&mut Ctx::default(), DoorEvent::Break)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Door: `Broken` is final; `Break` cannot leave it"
    );
}

#[tokio::test]
async fn an_event_with_no_transition_from_the_state_is_an_error_naming_both() {
    let mut door = Door::machine();
    let err = door
        .fire(&mut Ctx::default(), DoorEvent::Close)
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        TransitionErrorKind::NoTransition {
            machine: "Door",
            state: "Closed",
            event: "Close"
        }
    ));
    assert!(matches!(door.state(), DoorState::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transition_function_is_pure_and_its_futures_are_send() {
    // The associated function: the state passed in is not touched.
    let state = DoorState::Closed;
    let mut ctx = Ctx::default();
    let next = Door::transition(&mut ctx, &state, DoorEvent::Open)
        .await
        .unwrap();
    assert!(matches!(state, DoorState::Closed));
    assert!(matches!(next, DoorState::Opened));

    // Driven from `tokio::spawn` on a multi-thread runtime: this only compiles if every
    // guard's and action's future is `Send`.
    let task = tokio::spawn(async move {
        let mut ctx = Ctx::default();
        let mut door = Door::machine();
        door.fire(&mut ctx, DoorEvent::Lock(Code(9))).await.unwrap();
        door.fire(&mut ctx, DoorEvent::Unlock(Code(9)))
            .await
            .unwrap();
        door.fire(&mut ctx, DoorEvent::Open).await.unwrap();
        (door.state_name(), ctx.calls.len())
    });
    assert_eq!(task.await.unwrap(), ("Opened", 5));
}

#[test]
fn the_state_serializes_with_its_data() {
    let json = serde_json::to_string(&DoorState::Locked(Code(42))).unwrap();
    assert_eq!(json, r#"{"Locked":42}"#);
    let back: DoorState = serde_json::from_str(&json).unwrap();
    assert!(matches!(back, DoorState::Locked(Code(42))));
    assert_eq!(DoorEvent::Unlock(Code(1)).name(), "Unlock");
    assert_eq!(<Door as Fsm>::name(), "Door");
    assert_eq!(Door::NAME, "Door");
}

#[test]
fn diagrams_show_every_transition_and_highlight_the_current_state() {
    let m = Door::mermaid();
    assert!(
        m.starts_with("stateDiagram-v2\n    [*] --> Closed\n"),
        "{m}"
    );
    assert!(m.contains("    Closed --> Opened : Open [unlocked] / log_open\n"));
    assert!(m.contains("    Locked --> Closed : Unlock [code_matches]\n"));
    assert!(m.contains("    Opened --> Broken : Break\n"));
    assert!(m.contains("    Broken --> [*]\n"));
    assert!(m.contains("    Opened : entry / ring, exit / silence\n"));
    assert!(!m.contains("class "));
    let locked = Machine::<Door>::from_state(DoorState::Locked(Code(1)));
    assert!(locked.mermaid().ends_with("    class Locked current\n"));
    let dot = locked.dot();
    assert!(dot.contains("\"Locked\" [shape=box, style=filled"), "{dot}");
    assert!(dot.contains("\"Broken\" [shape=doublecircle];"));
    assert!(Door::dot().contains("\"Closed\" -> \"Locked\" [label=\"Lock / remember\"];"));
}

fsm! {
    /// The classic: no guards, no actions, so `next` is synchronous.
    Turnstile {
        *Locked + Coin = Unlocked,
        Unlocked + Push = Locked,
        Locked + Push = Locked,
        Unlocked + Coin = Unlocked,
    }
}

#[test]
fn a_machine_without_hooks_has_a_synchronous_next() {
    let s = Turnstile::next(&TurnstileState::Locked, TurnstileEvent::Coin).unwrap();
    assert!(matches!(s, TurnstileState::Unlocked));
    let s = Turnstile::next(&s, TurnstileEvent::Push).unwrap();
    assert!(matches!(s, TurnstileState::Locked));
    // and a synchronous step on a machine
    let mut m = Turnstile::machine();
    assert_eq!(m.step(TurnstileEvent::Coin).unwrap().name(), "Unlocked");
    assert_eq!(m.step(TurnstileEvent::Push).unwrap().name(), "Locked");
    // and `()` is its context
    let state = futures::executor::block_on(m.fire(&mut (), TurnstileEvent::Coin)).unwrap();
    assert_eq!(state.name(), "Unlocked");
}

fsm! {
    /// No hooks and no data: a wildcard, a final state and a missing pair.
    Bulb {
        *Off + Switch = On,
        On + Switch = Off,
        Off + Dim = Off,
        _ + Smash = Broken,
        state Broken { final },
    }
}

#[test]
fn a_machine_without_hooks_reports_missing_transitions_and_final_states() {
    let on = Bulb::next(&BulbState::Off, BulbEvent::Switch).unwrap();
    assert!(matches!(on, BulbState::On));
    assert!(matches!(
        Bulb::next(&on, BulbEvent::Switch).unwrap(),
        BulbState::Off
    ));
    assert!(matches!(
        Bulb::next(&BulbState::Off, BulbEvent::Dim).unwrap(),
        BulbState::Off
    ));
    let err = Bulb::next(&on, BulbEvent::Dim).unwrap_err();
    assert_eq!(err.to_string(), "Bulb: no transition from `On` on `Dim`");
    let broken = Bulb::next(&on, BulbEvent::Smash).unwrap();
    assert!(matches!(broken, BulbState::Broken));
    let err = Bulb::next(&broken, BulbEvent::Switch).unwrap_err();
    assert!(matches!(
        err.kind(),
        TransitionErrorKind::Final {
            machine: "Bulb",
            state: "Broken",
            event: "Switch"
        }
    ));
}

#[test]
fn the_transition_function_agrees_with_the_table_the_diagrams_are_drawn_from() {
    let states = [BulbState::Off, BulbState::On, BulbState::Broken];
    let events = || [BulbEvent::Switch, BulbEvent::Dim, BulbEvent::Smash];
    let spec = Bulb::spec();
    assert_eq!(spec.states.len(), states.len());
    assert_eq!(spec.events.len(), events().len());
    for state in &states {
        for event in events() {
            let (s, e) = (state.name(), event.name());
            // What the table says: the state's own transition first, else the wildcard's,
            // and nothing out of a final state.
            let is_final = spec.state(s).unwrap().is_final;
            let expected = spec
                .transitions
                .iter()
                .find(|t| t.from == Some(s) && t.event == e)
                .or_else(|| {
                    spec.transitions
                        .iter()
                        .find(|t| t.from.is_none() && t.event == e && !is_final)
                })
                .map(|t| t.to);
            match (Bulb::next(state, event), expected) {
                (Ok(next), Some(to)) => assert_eq!(next.name(), to, "{s} + {e}"),
                (Err(err), None) => {
                    assert_eq!((err.state(), err.event()), (s, e));
                    assert_eq!(
                        matches!(err.kind(), TransitionErrorKind::Final { .. }),
                        is_final
                    );
                }
                (got, want) => panic!("{s} + {e}: got {got:?}, the table says {want:?}"),
            }
        }
    }
}

fsm! {
    /// Two guarded transitions on one state and event, then a wildcard's; an exit action on
    /// the state they leave.
    Gate {
        *Shut + Knock(u8) [friend] / greet = Open(u8),
        Shut + Knock [courier] = Shut,
        Open(u8) + Knock = Open,
        _ + Kick = Shut,
        state Shut { exit = creak },
    }
}

/// Who is a friend and who a courier, by knock; records every call.
struct Porter {
    friend: u8,
    courier: u8,
    calls: Vec<String>,
}

impl GateContext for Porter {
    async fn friend(&mut self, event: &u8) -> bool {
        self.calls.push(format!("friend {event}"));
        *event == self.friend
    }
    async fn greet(&mut self, event: u8) -> Result<u8, ActionError> {
        self.calls.push(format!("greet {event}"));
        Ok(event * 10)
    }
    async fn courier(&mut self, event: &u8) -> bool {
        self.calls.push(format!("courier {event}"));
        *event == self.courier
    }
    async fn creak(&mut self) -> Result<(), ActionError> {
        self.calls.push("creak".into());
        Ok(())
    }
}

#[tokio::test]
async fn the_payload_a_guard_refused_goes_to_the_next_guard_and_a_refusal_names_them_all() {
    let mut porter = Porter {
        friend: 1,
        courier: 2,
        calls: Vec::new(),
    };
    let mut gate = Gate::machine();

    let err = gate
        .fire(&mut porter, GateEvent::Knock(3))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Gate: guards `friend`, `courier` refused `Knock` in `Shut`"
    );
    assert!(matches!(gate.state(), GateState::Shut));
    assert_eq!(porter.calls, ["friend 3", "courier 3"]);

    porter.calls.clear();
    gate.fire(&mut porter, GateEvent::Knock(2)).await.unwrap();
    assert!(matches!(gate.state(), GateState::Shut));
    assert_eq!(porter.calls, ["friend 2", "courier 2", "creak"]);

    porter.calls.clear();
    gate.fire(&mut porter, GateEvent::Knock(1)).await.unwrap();
    assert!(matches!(gate.state(), GateState::Open(10)));
    assert_eq!(porter.calls, ["friend 1", "greet 1", "creak"]);

    // Without hooks: the payload is the target's data; and the wildcard's transition.
    porter.calls.clear();
    gate.fire(&mut porter, GateEvent::Knock(7)).await.unwrap();
    assert!(matches!(gate.state(), GateState::Open(7)));
    gate.fire(&mut porter, GateEvent::Kick).await.unwrap();
    assert!(matches!(gate.state(), GateState::Shut));
    assert!(porter.calls.is_empty(), "{:?}", porter.calls);
    gate.fire(&mut porter, GateEvent::Kick).await.unwrap();
    assert_eq!(
        porter.calls,
        ["creak"],
        "the wildcard's transition runs `Shut`'s exit"
    );
}
