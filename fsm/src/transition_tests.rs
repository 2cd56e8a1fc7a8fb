//! The sequence of one transition, on a machine written here by hand: the order of the hooks,
//! what each is given, the error of each, a refusal, and the payload handed back to the next
//! transition on the same state and event.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::{Guarded, Hooks, Names, given, run, try_run};
use crate::{
    ActionError, Fsm, Machine, Spec, StateSpec, Transition, TransitionError, TransitionErrorKind,
    TransitionSpec,
};

/// ```text
/// Locked(u32) + Dial(u32) [matches] / greet = Open(String),
/// Locked(u32) + Dial(u32) [is_master] / master = Open(String),
/// Open(String) + Shut(u32) = Locked(u32),
/// state Locked(u32) { exit = unlatch },
/// state Open(String) { entry = light },
/// ```
struct Safe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum SafeState {
    Locked(u32),
    Open(String),
}

#[derive(Debug)]
enum SafeEvent {
    Dial(u32),
    Shut(u32),
}

static SPEC: Spec = Spec {
    name: "Safe",
    initial: "Locked",
    states: &[
        StateSpec {
            name: "Locked",
            is_final: false,
            entry: None,
            exit: Some("unlatch"),
        },
        StateSpec {
            name: "Open",
            is_final: false,
            entry: Some("light"),
            exit: None,
        },
    ],
    events: &["Dial", "Shut"],
    transitions: &[
        TransitionSpec {
            from: Some("Locked"),
            event: "Dial",
            guard: Some("matches"),
            action: Some("greet"),
            to: "Open",
        },
        TransitionSpec {
            from: Some("Locked"),
            event: "Dial",
            guard: Some("is_master"),
            action: Some("master"),
            to: "Open",
        },
        TransitionSpec {
            from: Some("Open"),
            event: "Shut",
            guard: None,
            action: None,
            to: "Locked",
        },
    ],
};

impl Fsm for Safe {
    type State = SafeState;
    type Event = SafeEvent;

    fn spec() -> &'static Spec {
        &SPEC
    }

    fn initial() -> SafeState {
        SafeState::Locked(0)
    }

    fn state_name(state: &SafeState) -> &'static str {
        match state {
            SafeState::Locked(_) => "Locked",
            SafeState::Open(_) => "Open",
        }
    }

    fn event_name(event: &SafeEvent) -> &'static str {
        match event {
            SafeEvent::Dial(_) => "Dial",
            SafeEvent::Shut(_) => "Shut",
        }
    }
}

/// The context: records every call with what it was given, says no or fails on demand, and
/// awaits once in each hook, so every future is polled again after `Pending`.
#[derive(Default)]
struct Recorder {
    calls: Vec<String>,
    refuse: bool,
    fail: Option<&'static str>,
}

impl Recorder {
    async fn call(&mut self, call: String, hook: &str) -> Result<(), ActionError> {
        self.calls.push(call);
        tokio::task::yield_now().await;
        if self.fail == Some(hook) {
            return Err(ActionError::new(format!("{hook} broke")));
        }
        Ok(())
    }
}

/// The context's methods, as `fsm!` declares them: each future `Send`.
trait SafeContext: Send {
    fn matches(&mut self, code: &u32, dialed: &u32) -> impl Future<Output = bool> + Send;
    fn is_master(&mut self, dialed: &u32) -> impl Future<Output = bool> + Send;
    fn greet(
        &mut self,
        code: &u32,
        dialed: u32,
    ) -> impl Future<Output = Result<String, ActionError>> + Send;
    fn master(&mut self) -> impl Future<Output = Result<String, ActionError>> + Send;
    fn unlatch(&mut self, code: &u32) -> impl Future<Output = Result<(), ActionError>> + Send;
    // `&String`, not `&str`: an entry action gets the state's data by reference.
    #[allow(clippy::ptr_arg)]
    fn light(&mut self, who: &String) -> impl Future<Output = Result<(), ActionError>> + Send;
}

impl SafeContext for Recorder {
    async fn matches(&mut self, code: &u32, dialed: &u32) -> bool {
        self.calls.push(format!("matches {code} {dialed}"));
        tokio::task::yield_now().await;
        !self.refuse && code == dialed
    }

    async fn is_master(&mut self, dialed: &u32) -> bool {
        self.calls.push(format!("is_master {dialed}"));
        tokio::task::yield_now().await;
        !self.refuse && *dialed == 0
    }

    async fn greet(&mut self, code: &u32, dialed: u32) -> Result<String, ActionError> {
        self.call(format!("greet {code} {dialed}"), "greet").await?;
        Ok(format!("owner of {dialed}"))
    }

    async fn master(&mut self) -> Result<String, ActionError> {
        self.call("master".into(), "master").await?;
        Ok("master".into())
    }

    async fn unlatch(&mut self, code: &u32) -> Result<(), ActionError> {
        self.call(format!("unlatch {code}"), "unlatch").await
    }

    async fn light(&mut self, who: &String) -> Result<(), ActionError> {
        self.call(format!("light {who}"), "light").await
    }
}

/// `Locked(u32) + Dial(u32) [matches] / greet = Open(String)`, with `Locked`'s exit and
/// `Open`'s entry action.
struct DialCode;

impl<C: SafeContext + ?Sized> Hooks<C> for DialCode {
    type Machine = Safe;
    type SourceData = u32;
    type Payload = u32;
    type TargetData = String;

    const NAMES: Names = Names {
        state: "Locked",
        event: "Dial",
        target: "Open",
        guards: &["matches"],
        action: Some("greet"),
        exit: Some("unlatch"),
        entry: Some("light"),
    };

    fn guard(ctx: &mut C, code: &u32, dialed: &u32) -> impl Future<Output = bool> + Send {
        ctx.matches(code, dialed)
    }

    fn action(
        ctx: &mut C,
        code: &u32,
        dialed: u32,
    ) -> impl Future<Output = Result<String, ActionError>> + Send {
        ctx.greet(code, dialed)
    }

    fn exit(ctx: &mut C, code: &u32) -> impl Future<Output = Result<(), ActionError>> + Send {
        ctx.unlatch(code)
    }

    fn entry(ctx: &mut C, who: &String) -> impl Future<Output = Result<(), ActionError>> + Send {
        ctx.light(who)
    }

    fn enter(who: String) -> SafeState {
        SafeState::Open(who)
    }
}

/// The second transition on `Locked` and `Dial`: `[is_master] / master = Open(String)`.
struct DialMaster;

impl<C: SafeContext + ?Sized> Hooks<C> for DialMaster {
    type Machine = Safe;
    type SourceData = u32;
    type Payload = u32;
    type TargetData = String;

    const NAMES: Names = Names {
        state: "Locked",
        event: "Dial",
        target: "Open",
        guards: &["matches", "is_master"],
        action: Some("master"),
        exit: Some("unlatch"),
        entry: Some("light"),
    };

    fn guard(ctx: &mut C, _: &u32, dialed: &u32) -> impl Future<Output = bool> + Send {
        ctx.is_master(dialed)
    }

    fn action(
        ctx: &mut C,
        _: &u32,
        _: u32,
    ) -> impl Future<Output = Result<String, ActionError>> + Send {
        ctx.master()
    }

    fn exit(ctx: &mut C, code: &u32) -> impl Future<Output = Result<(), ActionError>> + Send {
        ctx.unlatch(code)
    }

    fn entry(ctx: &mut C, who: &String) -> impl Future<Output = Result<(), ActionError>> + Send {
        ctx.light(who)
    }

    fn enter(who: String) -> SafeState {
        SafeState::Open(who)
    }
}

/// `Open(String) + Shut(u32) = Locked(u32)`: no guard, no action (the payload is the target's
/// data), no exit or entry action. Only the hooks it must have.
struct Shut;

impl<C: ?Sized> Hooks<C> for Shut {
    type Machine = Safe;
    type SourceData = String;
    type Payload = u32;
    type TargetData = u32;

    const NAMES: Names = Names {
        state: "Open",
        event: "Shut",
        target: "Locked",
        guards: &[],
        action: None,
        exit: None,
        entry: None,
    };

    fn action(
        _: &mut C,
        _: &String,
        code: u32,
    ) -> impl Future<Output = Result<u32, ActionError>> + Send {
        given(code)
    }

    fn enter(code: u32) -> SafeState {
        SafeState::Locked(code)
    }
}

/// Both transitions on `Locked` and `Dial`, as `fsm!` writes them: the first hands the payload
/// back when its guard says no, the second is the last.
async fn dial<C: SafeContext + ?Sized>(
    ctx: &mut C,
    code: &u32,
    dialed: u32,
) -> Result<SafeState, TransitionError> {
    let dialed = match try_run::<C, DialCode>(ctx, code, dialed).await {
        Guarded::Ran(result) => return result,
        Guarded::Refused(dialed) => dialed,
    };
    run::<C, DialMaster>(ctx, code, dialed).await
}

#[tokio::test]
async fn the_guard_then_the_action_exit_and_entry_run_in_order_each_given_its_data() {
    let mut ctx = Recorder::default();
    let next = run::<_, DialCode>(&mut ctx, &7, 7).await.unwrap();
    assert_eq!(next, SafeState::Open("owner of 7".into()));
    assert_eq!(
        ctx.calls,
        ["matches 7 7", "greet 7 7", "unlatch 7", "light owner of 7"],
        "the guard sees the source's data and the payload, the action takes the payload, \
         the exit action sees the source's data, the entry action the action's result"
    );
}

#[tokio::test]
async fn a_guard_that_says_no_runs_nothing_else_and_names_the_guards_asked() {
    let mut ctx = Recorder {
        refuse: true,
        ..Recorder::default()
    };
    let err = run::<_, DialCode>(&mut ctx, &7, 7).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            TransitionErrorKind::GuardRefused {
                machine: "Safe",
                state: "Locked",
                event: "Dial",
                guards: ["matches"],
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Safe: guard `matches` refused `Dial` in `Locked`"
    );
    assert_eq!(ctx.calls, ["matches 7 7"]);
}

#[tokio::test]
async fn try_run_hands_the_payload_back_on_a_refusal_and_runs_nothing_else() {
    let mut ctx = Recorder::default();
    match try_run::<_, DialCode>(&mut ctx, &7, 8).await {
        Guarded::Refused(payload) => assert_eq!(payload, 8),
        Guarded::Ran(result) => panic!("the guard said no, yet it ran: {result:?}"),
    }
    assert_eq!(ctx.calls, ["matches 7 8"]);
}

#[tokio::test]
async fn the_next_transition_on_the_same_pair_gets_the_payload_and_a_refusal_names_every_guard() {
    let mut ctx = Recorder::default();
    let next = dial(&mut ctx, &7, 0).await.unwrap();
    assert_eq!(next, SafeState::Open("master".into()));
    assert_eq!(
        ctx.calls,
        [
            "matches 7 0",
            "is_master 0",
            "master",
            "unlatch 7",
            "light master"
        ]
    );

    let mut ctx = Recorder::default();
    let err = dial(&mut ctx, &7, 5).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Safe: guards `matches`, `is_master` refused `Dial` in `Locked`"
    );
    assert_eq!(ctx.calls, ["matches 7 5", "is_master 5"]);
}

#[tokio::test]
async fn a_failing_action_ends_the_sequence_and_is_named() {
    let mut ctx = Recorder {
        fail: Some("greet"),
        ..Recorder::default()
    };
    let err = run::<_, DialCode>(&mut ctx, &7, 7).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            TransitionErrorKind::ActionFailed {
                machine: "Safe",
                state: "Locked",
                event: "Dial",
                action: "greet",
                error,
            } if error.message() == "greet broke"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Safe: action `greet` failed on `Dial` in `Locked`: greet broke"
    );
    assert_eq!(ctx.calls, ["matches 7 7", "greet 7 7"], "no exit, no entry");
}

#[tokio::test]
async fn a_failing_exit_action_ends_the_sequence_and_is_named() {
    let mut ctx = Recorder {
        fail: Some("unlatch"),
        ..Recorder::default()
    };
    let err = run::<_, DialCode>(&mut ctx, &7, 7).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            TransitionErrorKind::ExitFailed {
                machine: "Safe",
                state: "Locked",
                event: "Dial",
                action: "unlatch",
                error,
            } if error.message() == "unlatch broke"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Safe: exit action `unlatch` of `Locked` failed on `Dial`: unlatch broke"
    );
    assert_eq!(
        ctx.calls,
        ["matches 7 7", "greet 7 7", "unlatch 7"],
        "no entry"
    );
}

#[tokio::test]
async fn a_failing_entry_action_ends_the_sequence_and_names_the_target() {
    let mut ctx = Recorder {
        fail: Some("light"),
        ..Recorder::default()
    };
    let err = run::<_, DialCode>(&mut ctx, &7, 7).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            TransitionErrorKind::EntryFailed {
                machine: "Safe",
                state: "Locked",
                event: "Dial",
                target: "Open",
                action: "light",
                error,
            } if error.message() == "light broke"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Safe: entry action `light` of `Open` failed on `Dial` from `Locked`: light broke"
    );
    assert_eq!(
        ctx.calls,
        ["matches 7 7", "greet 7 7", "unlatch 7", "light owner of 7"]
    );
}

#[tokio::test]
async fn the_hooks_a_transition_does_not_have_let_it_through() {
    let mut ctx = Recorder {
        refuse: true,
        fail: Some("light"),
        ..Recorder::default()
    };
    let next = run::<_, Shut>(&mut ctx, &"owner".to_owned(), 42)
        .await
        .unwrap();
    assert_eq!(next, SafeState::Locked(42));
    assert!(ctx.calls.is_empty(), "{:?}", ctx.calls);
    // and with a context of any type
    let next = run::<_, Shut>(&mut (), &"owner".to_owned(), 1)
        .await
        .unwrap();
    assert_eq!(next, SafeState::Locked(1));
}

/// The transition function of `Safe`, as `fsm!` writes it: a `match` on the state and the
/// event, and the sequence for each transition. Generic over the context, and the trait asks
/// for a `Send` future: that this compiles is what lets `fsm!` promise one.
impl<C: SafeContext + ?Sized> Transition<C> for Safe {
    async fn transition(
        ctx: &mut C,
        state: &SafeState,
        event: SafeEvent,
    ) -> Result<SafeState, TransitionError> {
        match (state, event) {
            (SafeState::Locked(code), SafeEvent::Dial(dialed)) => dial(ctx, code, dialed).await,
            (SafeState::Open(who), SafeEvent::Shut(code)) => run::<C, Shut>(ctx, who, code).await,
            (state, event) => Err(TransitionErrorKind::NoTransition {
                machine: "Safe",
                state: Safe::state_name(state),
                event: Safe::event_name(&event),
            }
            .into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_on_the_sequence_moves_only_when_it_completes_and_runs_on_any_thread() {
    let task = tokio::spawn(async move {
        let mut ctx = Recorder {
            fail: Some("light"),
            ..Recorder::default()
        };
        let mut safe = Machine::<Safe>::from_state(SafeState::Locked(3));
        let failed = safe.fire(&mut ctx, SafeEvent::Dial(3)).await.is_err();
        let stayed = safe.state().clone();
        ctx.fail = None;
        safe.fire(&mut ctx, SafeEvent::Dial(3)).await?;
        let opened = safe.state().clone();
        safe.fire(&mut ctx, SafeEvent::Shut(9)).await?;
        Ok::<_, TransitionError>((failed, stayed, opened, safe.into_state()))
    });
    let (failed, stayed, opened, shut) = task.await.unwrap().unwrap();
    assert!(failed);
    assert_eq!(
        stayed,
        SafeState::Locked(3),
        "a failed entry action moves nothing"
    );
    assert_eq!(opened, SafeState::Open("owner of 3".into()));
    assert_eq!(shut, SafeState::Locked(9));
}
