//! The sequence of one transition: its guard; then its action, the exit action of the state it
//! leaves and the entry action of the state it enters, in that order; the first that fails (or a
//! guard that says no) ends it with the error that names it. `fsm!`'s transition function calls
//! [`run`] or [`try_run`] for every transition with a hook; `examples/turnstile_by_hand.rs`
//! does the same by hand.
//!
//! Nothing here changes a machine: the caller gets the next state or the error, and keeps the
//! state it had until it has the next one, so a failure leaves the machine where it was. Effects
//! a hook had before a later one failed are not undone.
//!
//! The hooks of one transition are a [`Hooks`] implementation, written by `fsm!` for each
//! transition (for `_`, for each state it leaves), which calls the context's methods. A
//! transition without any hook needs no sequence: `fsm!` writes it as its target state, which is
//! what keeps the transition function of a machine without hooks synchronous
//! ([`Step`](crate::Step)).
//!
//! Why a trait and not closures: every hook's future must be `Send`, so that a machine can be
//! driven from `tokio::spawn`. A function generic over async closures cannot require that of
//! their futures on stable Rust (it needs return-type notation); a trait method declared
//! `-> impl Future + Send` requires it where it is implemented. So the future of [`run`] is
//! `Send` whenever the context, the states' data and the payload allow it, without boxing.

use std::future::Future;

use crate::Fsm;
use crate::error::{ActionError, TransitionError, TransitionErrorKind};

/// The names of one transition and of its hooks, for its errors.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// The state it leaves (for `_`, the state the machine is in).
    pub state: &'static str,
    /// The event.
    pub event: &'static str,
    /// The state it enters.
    pub target: &'static str,
    /// What a refusal of its guard names: the guards of the transitions written before it on
    /// the same state and event, then its own. Empty for a transition without a guard.
    pub guards: &'static [&'static str],
    /// Its action. `None`: [`Hooks::action`] only hands over the target's data, and does not
    /// fail.
    pub action: Option<&'static str>,
    /// The exit action of the state it leaves.
    pub exit: Option<&'static str>,
    /// The entry action of the state it enters.
    pub entry: Option<&'static str>,
}

/// The hooks of one transition, as calls of a context `C`.
///
/// Every hook returns a `Send` future (an implementation returns the future of the context's
/// method, which is `Send` too). The hooks a transition does not have keep their default, which
/// is ready at once and cannot fail.
pub trait Hooks<C: ?Sized> {
    /// The machine.
    type Machine: Fsm;
    /// The data of the state it leaves; `()` if that state holds none.
    type SourceData;
    /// The event's payload; `()` if it carries none.
    type Payload;
    /// The data the target state will hold: what the action returns; `()` for none.
    type TargetData;

    /// The transition's names.
    const NAMES: Names;

    /// The guard: `true` lets the transition fire. Without a guard, `true`.
    fn guard(
        ctx: &mut C,
        source: &Self::SourceData,
        payload: &Self::Payload,
    ) -> impl Future<Output = bool> + Send {
        let _ = (ctx, source, payload);
        async { true }
    }

    /// The action, which makes the target's data. For a transition without an action, that
    /// data as it is: the payload, a copy of the source's data (a transition to the same state)
    /// or `()`.
    fn action(
        ctx: &mut C,
        source: &Self::SourceData,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Self::TargetData, ActionError>> + Send;

    /// The exit action of the state the transition leaves.
    fn exit(
        ctx: &mut C,
        source: &Self::SourceData,
    ) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = (ctx, source);
        async { Ok(()) }
    }

    /// The entry action of the state the transition enters, given the data it will hold.
    fn entry(
        ctx: &mut C,
        data: &Self::TargetData,
    ) -> impl Future<Output = Result<(), ActionError>> + Send {
        let _ = (ctx, data);
        async { Ok(()) }
    }

    /// The target state, holding `data`.
    fn enter(data: Self::TargetData) -> <Self::Machine as Fsm>::State;
}

/// The future of [`Hooks::action`] for a transition without an action: `data`, as the
/// target's.
///
/// (An `async fn`, as the defaults of the hooks are `async` blocks, rather than
/// `std::future::ready`: a `Ready` of a `Result` brings the error's drop glue into the
/// transition's future, whose drop then is no longer inlined; measured, a third more
/// instructions a transition.)
pub async fn given<T>(data: T) -> Result<T, ActionError> {
    Ok(data)
}

/// What [`try_run`] did.
#[derive(Debug)]
pub enum Guarded<S, P> {
    /// The guard said yes (or there is none): the rest of the sequence ran, to the next state
    /// or to the error of the hook that failed.
    Ran(Result<S, TransitionError>),
    /// The guard said no, and nothing else ran: the payload, for the next transition on the
    /// same state and event.
    Refused(P),
}

/// Runs the transition `H`: if its guard says no, a [`TransitionErrorKind::GuardRefused`]
/// naming [`Names::guards`]; else as [`try_run`]. For the only transition on a state and event,
/// or the last one tried.
#[inline]
pub async fn run<C: ?Sized, H: Hooks<C>>(
    ctx: &mut C,
    source: &H::SourceData,
    payload: H::Payload,
) -> Result<<H::Machine as Fsm>::State, TransitionError> {
    if !H::guard(ctx, source, &payload).await {
        drop(payload);
        return Err(refused::<C, H>());
    }
    act::<C, H>(ctx, source, payload).await.map(H::enter)
}

/// Runs the transition `H`: its guard; if it says no, hands the payload back and runs nothing
/// else. Else its action, which makes the target's data
/// ([`ActionFailed`](TransitionErrorKind::ActionFailed) if it fails), the exit action of the
/// source ([`ExitFailed`](TransitionErrorKind::ExitFailed)), the entry action of the target
/// ([`EntryFailed`](TransitionErrorKind::EntryFailed)), and returns the target holding the
/// data. A hook that fails ends the sequence: the hooks after it do not run.
#[inline]
pub async fn try_run<C: ?Sized, H: Hooks<C>>(
    ctx: &mut C,
    source: &H::SourceData,
    payload: H::Payload,
) -> Guarded<<H::Machine as Fsm>::State, H::Payload> {
    match guard::<C, H>(ctx, source, payload).await {
        Ok(payload) => Guarded::Ran(act::<C, H>(ctx, source, payload).await.map(H::enter)),
        Err(payload) => Guarded::Refused(payload),
    }
}

// How the sequence is cut into `async fn`s was chosen by measurement (callgrind, machines with
// hooks whose futures are ready at once, against the sequence as `fsm!` used to write it inline):
// a shape that moves a value of a generic type at a point after which an `.await` could still
// drop it gives the future drop flags, so drop glue even for a payload or data without any, and
// the optimizer then keeps the future's stores (up to 20 more instructions a transition). Here
// `act` hands the data back so that the target state is made after the last `.await`, and
// `try_run` asks the guard through `guard`, whose future hands the payload back; `run`, which
// drops a refused payload, asks it itself (through `guard`, it measured slower).

/// The guard: the payload back, as `Ok` if it said yes.
#[inline]
async fn guard<C: ?Sized, H: Hooks<C>>(
    ctx: &mut C,
    source: &H::SourceData,
    payload: H::Payload,
) -> Result<H::Payload, H::Payload> {
    if H::guard(ctx, source, &payload).await {
        Ok(payload)
    } else {
        Err(payload)
    }
}

/// The action, the exit action of the source and the entry action of the target: the data
/// the target will hold.
#[inline]
async fn act<C: ?Sized, H: Hooks<C>>(
    ctx: &mut C,
    source: &H::SourceData,
    payload: H::Payload,
) -> Result<H::TargetData, TransitionError> {
    let data = match H::action(ctx, source, payload).await {
        Ok(data) => data,
        Err(error) => return Err(failed::<C, H>(Hook::Action, error)),
    };
    if let Err(error) = H::exit(ctx, source).await {
        return Err(failed::<C, H>(Hook::Exit, error));
    }
    if let Err(error) = H::entry(ctx, &data).await {
        return Err(failed::<C, H>(Hook::Entry, error));
    }
    Ok(data)
}

/// The hooks that can fail.
#[derive(Clone, Copy)]
enum Hook {
    Action,
    Exit,
    Entry,
}

#[cold]
#[inline(never)]
fn refused<C: ?Sized, H: Hooks<C>>() -> TransitionError {
    let names = H::NAMES;
    TransitionErrorKind::GuardRefused {
        machine: H::Machine::name(),
        state: names.state,
        event: names.event,
        guards: names.guards,
    }
    .into()
}

#[cold]
#[inline(never)]
fn failed<C: ?Sized, H: Hooks<C>>(hook: Hook, error: ActionError) -> TransitionError {
    let names = H::NAMES;
    let (machine, state, event) = (H::Machine::name(), names.state, names.event);
    // A hook without a name keeps its default, which cannot fail; an implementation that
    // fails one anyway is still reported, under an empty name.
    let kind = match hook {
        Hook::Action => TransitionErrorKind::ActionFailed {
            machine,
            state,
            event,
            action: names.action.unwrap_or_default(),
            error,
        },
        Hook::Exit => TransitionErrorKind::ExitFailed {
            machine,
            state,
            event,
            action: names.exit.unwrap_or_default(),
            error,
        },
        Hook::Entry => TransitionErrorKind::EntryFailed {
            machine,
            state,
            event,
            target: names.target,
            action: names.entry.unwrap_or_default(),
            error,
        },
    };
    kind.into()
}

#[cfg(test)]
#[path = "transition_tests.rs"]
mod tests;
