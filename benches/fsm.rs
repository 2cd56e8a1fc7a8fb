//! State machines, side by side in one criterion run.
//!
//! - `turnstile` and `ten_states`: in-memory transitions of a 2-state turnstile and of a
//!   10-state ring (`Next`, `Back`, `Reset` from every state: 30 transitions), by a hand-written
//!   `match`, by sagaflow's `fsm!` (the synchronous `next` of a machine without hooks, and
//!   `Machine::fire`, the async path every machine has, polled once with a no-op waker: it is
//!   ready at once since nothing awaits), and by smlang 0.8, rust-fsm 0.8 and statig 0.4
//!   (blocking). One iteration is 1,000 events of one pre-drawn sequence, the same for all,
//!   each contender's made into its own event type before the timer starts and handed over in
//!   order by one loop of the same shape for all (`drive`); criterion's throughput is events
//!   per second.
//! - `persisted`: one transition of a machine persisted on a SQLite file
//!   (`PersistedMachine::fire`: encode, `UPDATE ... WHERE version = ?` and the log row in one
//!   transaction through the store's writer thread) against the same two statements committed
//!   by hand with rusqlite on a file in the same directory and with the same pragmas, and
//!   against the bare one-row commit of `durable.rs`; `synchronous` FULL and NORMAL.
//!
//! Before it is timed every in-memory contender runs the sequence once, through the function
//! that is timed, and must end in the state the hand-written `match` ends in; the persisted
//! machine's version and log are checked.
//!
//! `SAGAFLOW_FSM_ROUNDS=n` also times the in-memory contenders in turn, one sample of each per
//! round, and prints their medians and ratios (criterion times one after the other, so a change
//! of load on a shared machine between two of them changes their ratio):
//! `SAGAFLOW_FSM_ROUNDS=20000 cargo bench --bench fsm -- 'turnstile|ten_states'`.

use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use sagaflow::{MachineStore, SqliteOptions, SqliteStore, Synchronous, fsm};
use tempfile::TempDir;

const EVENTS: usize = 1_000;

/// The pre-drawn event sequence: indexes into each machine's events.
fn sequence(kinds: u64) -> Vec<u8> {
    let mut rng = fastrand_like(0x5eed);
    (0..EVENTS).map(|_| (rng() % kinds) as u8).collect()
}

/// A tiny xorshift, so the sequence is the same on every run without another dependency.
fn fastrand_like(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Polls a future that is ready at once (it never awaits), without an executor. Always
/// inlined, as an `.await` on such a future is inlined into the `async fn` around it.
#[inline(always)]
fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("this future was expected to be ready at once"),
    }
}

// ---------------------------------------------------------------------------------------------
// The turnstile

fsm! {
    Turnstile {
        *Locked + Coin = Unlocked,
        Locked + Push = Locked,
        Unlocked + Push = Locked,
        Unlocked + Coin = Unlocked,
    }
}

mod hand {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum State {
        Locked,
        Unlocked,
    }
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Event {
        Coin,
        Push,
    }
    #[inline]
    pub(crate) fn next(state: State, event: Event) -> Option<State> {
        match (state, event) {
            (State::Locked, Event::Coin) => Some(State::Unlocked),
            (State::Locked, Event::Push) => Some(State::Locked),
            (State::Unlocked, Event::Push) => Some(State::Locked),
            (State::Unlocked, Event::Coin) => Some(State::Unlocked),
        }
    }
}

mod sm_turnstile {
    smlang::statemachine! {
        name: Turnstile,
        derive_states: [Debug, Clone, Copy],
        derive_events: [Clone, Copy],
        transitions: {
            *Locked + Coin = Unlocked,
            Locked + Push = Locked,
            Unlocked + Push = Locked,
            Unlocked + Coin = Unlocked,
        },
    }
    pub(crate) struct Ctx;
    impl TurnstileStateMachineContext for Ctx {}
}

mod rf_turnstile {
    rust_fsm::state_machine! {
        #[derive(Debug, Clone, Copy)]
        pub turnstile(Locked)
        Locked => {
            Coin => Unlocked,
            Push => Locked
        },
        Unlocked => {
            Push => Locked,
            Coin => Unlocked
        }
    }
}

mod st_turnstile {
    use statig::blocking::*;

    pub(crate) enum Event {
        Coin,
        Push,
    }

    #[derive(Default)]
    pub(crate) struct Turnstile;

    #[state_machine(initial = "State::locked()", state(derive(Debug, Clone, Copy)))]
    impl Turnstile {
        #[state]
        fn locked(event: &Event) -> Outcome<State> {
            match event {
                Event::Coin => Transition(State::unlocked()),
                Event::Push => Transition(State::locked()),
            }
        }
        #[state]
        fn unlocked(event: &Event) -> Outcome<State> {
            match event {
                Event::Push => Transition(State::locked()),
                Event::Coin => Transition(State::unlocked()),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The 10-state ring

fsm! {
    Ten {
        *S0 + Next = S1, S1 + Next = S2, S2 + Next = S3, S3 + Next = S4, S4 + Next = S5,
        S5 + Next = S6, S6 + Next = S7, S7 + Next = S8, S8 + Next = S9, S9 + Next = S0,
        S0 + Back = S9, S1 + Back = S0, S2 + Back = S1, S3 + Back = S2, S4 + Back = S3,
        S5 + Back = S4, S6 + Back = S5, S7 + Back = S6, S8 + Back = S7, S9 + Back = S8,
        _ + Reset = S0,
    }
}

mod hand_ten {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum State {
        S0,
        S1,
        S2,
        S3,
        S4,
        S5,
        S6,
        S7,
        S8,
        S9,
    }
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Event {
        Next,
        Back,
        Reset,
    }
    /// A `match` over the 30 pairs, as one writes it by hand. `#[inline]`, so that it is
    /// inlined into the timed loop like every other contender's transition (without it, LLVM
    /// kept it out of line once the loop had a function of its own).
    #[inline]
    pub(crate) fn next(state: State, event: Event) -> Option<State> {
        use Event::*;
        use State::*;
        Some(match (state, event) {
            (S0, Next) => S1,
            (S1, Next) => S2,
            (S2, Next) => S3,
            (S3, Next) => S4,
            (S4, Next) => S5,
            (S5, Next) => S6,
            (S6, Next) => S7,
            (S7, Next) => S8,
            (S8, Next) => S9,
            (S9, Next) => S0,
            (S0, Back) => S9,
            (S1, Back) => S0,
            (S2, Back) => S1,
            (S3, Back) => S2,
            (S4, Back) => S3,
            (S5, Back) => S4,
            (S6, Back) => S5,
            (S7, Back) => S6,
            (S8, Back) => S7,
            (S9, Back) => S8,
            (_, Reset) => S0,
        })
    }
}

mod sm_ten {
    smlang::statemachine! {
        name: Ten,
        derive_states: [Debug, Clone, Copy],
        derive_events: [Clone, Copy],
        transitions: {
            *S0 + Next = S1, S1 + Next = S2, S2 + Next = S3, S3 + Next = S4, S4 + Next = S5,
            S5 + Next = S6, S6 + Next = S7, S7 + Next = S8, S8 + Next = S9, S9 + Next = S0,
            S0 + Back = S9, S1 + Back = S0, S2 + Back = S1, S3 + Back = S2, S4 + Back = S3,
            S5 + Back = S4, S6 + Back = S5, S7 + Back = S6, S8 + Back = S7, S9 + Back = S8,
            _ + Reset = S0,
        },
    }
    pub(crate) struct Ctx;
    impl TenStateMachineContext for Ctx {}
}

mod rf_ten {
    rust_fsm::state_machine! {
        #[derive(Debug, Clone, Copy)]
        pub ten(S0)
        S0 => { Next => S1, Back => S9, Reset => S0 },
        S1 => { Next => S2, Back => S0, Reset => S0 },
        S2 => { Next => S3, Back => S1, Reset => S0 },
        S3 => { Next => S4, Back => S2, Reset => S0 },
        S4 => { Next => S5, Back => S3, Reset => S0 },
        S5 => { Next => S6, Back => S4, Reset => S0 },
        S6 => { Next => S7, Back => S5, Reset => S0 },
        S7 => { Next => S8, Back => S6, Reset => S0 },
        S8 => { Next => S9, Back => S7, Reset => S0 },
        S9 => { Next => S0, Back => S8, Reset => S0 }
    }
}

mod st_ten {
    use statig::blocking::*;

    pub(crate) enum Event {
        Next,
        Back,
        Reset,
    }

    #[derive(Default)]
    pub(crate) struct Ten;

    /// One state of the ring: `Next` and `Back` to its neighbours, `Reset` to `s0`.
    fn ring(event: &Event, next: State, back: State) -> Outcome<State> {
        match event {
            Event::Next => Transition(next),
            Event::Back => Transition(back),
            Event::Reset => Transition(State::s0()),
        }
    }

    #[state_machine(initial = "State::s0()", state(derive(Debug, Clone, Copy)))]
    impl Ten {
        #[state]
        fn s0(event: &Event) -> Outcome<State> {
            ring(event, State::s1(), State::s9())
        }
        #[state]
        fn s1(event: &Event) -> Outcome<State> {
            ring(event, State::s2(), State::s0())
        }
        #[state]
        fn s2(event: &Event) -> Outcome<State> {
            ring(event, State::s3(), State::s1())
        }
        #[state]
        fn s3(event: &Event) -> Outcome<State> {
            ring(event, State::s4(), State::s2())
        }
        #[state]
        fn s4(event: &Event) -> Outcome<State> {
            ring(event, State::s5(), State::s3())
        }
        #[state]
        fn s5(event: &Event) -> Outcome<State> {
            ring(event, State::s6(), State::s4())
        }
        #[state]
        fn s6(event: &Event) -> Outcome<State> {
            ring(event, State::s7(), State::s5())
        }
        #[state]
        fn s7(event: &Event) -> Outcome<State> {
            ring(event, State::s8(), State::s6())
        }
        #[state]
        fn s8(event: &Event) -> Outcome<State> {
            ring(event, State::s9(), State::s7())
        }
        #[state]
        fn s9(event: &Event) -> Outcome<State> {
            ring(event, State::s0(), State::s8())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// In memory

/// Runs one contender over its events: `step` applies one event to the machine (or state) `m`.
/// Never inlined, so every contender's loop is compiled alike, in a function of its own with
/// its transition inlined into it and nothing else in it. With `OPAQUE`, the machine goes
/// through `black_box` after every event, so no transition can be skipped (the turnstile's next
/// state depends on the event alone: without it the optimizer keeps only the last event's).
///
/// The machine goes through by value (`m = black_box(m)`: stored where the optimizer must
/// assume it is read and changed, and read back), not as `black_box(&mut m)`, which also
/// stored the pointer itself to the stack slot next to the machine on every event. That second
/// store made the turnstile's loop take one cycle an event or two depending on the stack's
/// position modulo 64 (slow when the two slots straddle a cache line: one position in four,
/// which ASLR and each contender's call path chose), so identical machine code measured 0.6
/// to 1.5 µs and statig's, with its stack elsewhere, 0.60× or 1.4× the others.
#[inline(never)]
fn drive<const OPAQUE: bool, M, E>(
    mut m: M,
    events: &mut Vec<E>,
    mut step: impl FnMut(&mut M, E),
) -> M {
    for e in events.drain(..) {
        step(&mut m, e);
        if OPAQUE {
            m = black_box(m);
        }
    }
    m
}

/// The contenders of one group, all run on `seq` and checked against `expected`.
struct Contenders<'a> {
    group: BenchmarkGroup<'a, WallTime>,
    seq: &'a [u8],
    /// The hand-written `match`'s final state, which every contender must end in.
    expected: String,
    /// Each contender's timed call, for [`Contenders::finish`]: makes `PER_SAMPLE` event
    /// vectors (not timed), then times `drive` over each.
    samplers: Vec<(String, Sampler<'a>)>,
}

/// One contender's sampler: the time of `PER_SAMPLE` calls of its `drive`.
type Sampler<'a> = Box<dyn FnMut() -> Duration + 'a>;

/// `drive` calls timed together in one sample of [`Contenders::finish`].
const PER_SAMPLE: usize = 8;

impl<'a> Contenders<'a> {
    fn new(group: BenchmarkGroup<'a, WallTime>, seq: &'a [u8], expected: String) -> Self {
        Contenders {
            group,
            seq,
            expected,
            samplers: Vec::new(),
        }
    }

    /// Ends the group. With `SAGAFLOW_FSM_ROUNDS=n`, then times the contenders in turn, one
    /// sample of each per round (the first contender of a round rotates), `n` rounds, and
    /// prints each one's median against the hand-written `match`'s. Criterion times one
    /// contender after the other, a few seconds each, so on a shared machine a change of load
    /// between two of them is a change of their ratio; taken in turn, every contender sees the
    /// same load. The calls are the very `drive` instances criterion times.
    fn finish(mut self, group: &str) {
        self.group.finish();
        let Some(rounds) = std::env::var("SAGAFLOW_FSM_ROUNDS")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return;
        };
        let n = self.samplers.len();
        let mut times = vec![Vec::with_capacity(rounds); n];
        for round in 0..rounds {
            for k in 0..n {
                let i = (round + k) % n;
                times[i].push((self.samplers[i].1)());
            }
        }
        let medians: Vec<f64> = times
            .iter_mut()
            .map(|t| {
                t.sort();
                t[t.len() / 2].as_secs_f64() * 1e9 / PER_SAMPLE as f64
            })
            .collect();
        println!("{group}, interleaved: median of {rounds} rounds, {PER_SAMPLE} runs a sample");
        for ((name, _), ns) in self.samplers.iter().zip(&medians) {
            println!("  {name:<24} {ns:>9.1} ns  {:.2}x", ns / medians[0]);
        }
    }

    /// Checks one contender, then times it: `make` turns an index of the sequence into the
    /// contender's own event, `init` makes its machine (or state), `step` applies one event,
    /// `state` names the state it is in.
    ///
    /// The events are made into a vector of the contender's event type before the timer
    /// starts: every contender gets the same events, which the optimizer cannot know, and the
    /// timed loop ([`drive`]) only reads the next one and hands it over by value. (Making each
    /// event from its index inside the timed loop, as this file once did, timed the index-to-
    /// event `match` too, and its code depends on the order of the event enum's variants: for
    /// `Next, Back, Reset` LLVM wrote the event into the low byte of the register that held
    /// the previous event's jump target, chaining every event to the one before, while smlang's
    /// and rust-fsm's alphabetical `Back, Next, Reset` did not.) The check runs the very
    /// function that is timed.
    fn run<const OPAQUE: bool, M, E>(
        &mut self,
        name: &str,
        make: impl Fn(u8) -> E + Copy + 'a,
        init: impl Fn() -> M + Copy + 'a,
        step: impl FnMut(&mut M, E) + Copy + 'a,
        state: impl Fn(&M) -> String,
    ) where
        M: 'a,
        E: 'a,
    {
        let seq = self.seq;
        let events = move || seq.iter().map(|&k| make(k)).collect::<Vec<_>>();
        let end = drive::<OPAQUE, _, _>(init(), &mut events(), step);
        assert_eq!(
            state(&end).to_lowercase(),
            self.expected.to_lowercase(),
            "{name} ends where the hand-written match does"
        );
        self.group.bench_function(name, |b| {
            b.iter_batched_ref(
                events,
                |events| black_box(drive::<OPAQUE, _, _>(init(), events, step)),
                BatchSize::SmallInput,
            )
        });
        self.samplers.push((
            name.to_string(),
            Box::new(move || {
                let mut batch: [Vec<E>; PER_SAMPLE] = std::array::from_fn(|_| events());
                let started = Instant::now();
                for events in &mut batch {
                    black_box(drive::<OPAQUE, _, _>(init(), events, step));
                }
                started.elapsed()
            }),
        ));
    }
}

fn hand_t(k: u8) -> hand::Event {
    if k == 0 {
        hand::Event::Coin
    } else {
        hand::Event::Push
    }
}
fn ours_t(k: u8) -> TurnstileEvent {
    if k == 0 {
        TurnstileEvent::Coin
    } else {
        TurnstileEvent::Push
    }
}
fn sm_t(k: u8) -> sm_turnstile::TurnstileEvents {
    if k == 0 {
        sm_turnstile::TurnstileEvents::Coin
    } else {
        sm_turnstile::TurnstileEvents::Push
    }
}
fn rf_t(k: u8) -> rf_turnstile::turnstile::Input {
    if k == 0 {
        rf_turnstile::turnstile::Input::Coin
    } else {
        rf_turnstile::turnstile::Input::Push
    }
}
fn st_t(k: u8) -> st_turnstile::Event {
    if k == 0 {
        st_turnstile::Event::Coin
    } else {
        st_turnstile::Event::Push
    }
}

fn turnstile(c: &mut Criterion) {
    let seq = sequence(2);
    let expected = seq.iter().fold(hand::State::Locked, |s, &k| {
        hand::next(s, hand_t(k)).expect("defined")
    });
    let mut group = c.benchmark_group("turnstile");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let mut contenders = Contenders::new(group, &seq, format!("{expected:?}"));
    contenders.run::<true, _, _>(
        "hand_written_match",
        hand_t,
        || hand::State::Locked,
        |m, e| *m = hand::next(*m, e).expect("defined"),
        |m| format!("{m:?}"),
    );
    contenders.run::<true, _, _>(
        "sagaflow_next",
        ours_t,
        || TurnstileState::Locked,
        |m, e| *m = Turnstile::next(m, e).expect("defined"),
        |m| m.name().to_string(),
    );
    contenders.run::<true, _, _>(
        "sagaflow_machine_fire",
        ours_t,
        Turnstile::machine,
        |m, e| {
            now(m.fire(&mut (), e)).expect("defined");
        },
        |m| m.state_name().to_string(),
    );
    contenders.run::<true, _, _>(
        "sagaflow_machine_step",
        ours_t,
        Turnstile::machine,
        |m, e| {
            m.step(e).expect("defined");
        },
        |m| m.state_name().to_string(),
    );
    contenders.run::<true, _, _>(
        "smlang",
        sm_t,
        || sm_turnstile::TurnstileStateMachine::new(sm_turnstile::Ctx),
        |m, e| {
            m.process_event(e).expect("defined");
        },
        |m| format!("{:?}", m.state()),
    );
    contenders.run::<true, _, _>(
        "rust_fsm",
        rf_t,
        rf_turnstile::turnstile::StateMachine::new,
        |m, e| {
            m.consume(&e).expect("defined");
        },
        |m| format!("{:?}", m.state()),
    );
    contenders.run::<true, _, _>(
        "statig",
        st_t,
        || statig::blocking::IntoStateMachineExt::state_machine(st_turnstile::Turnstile),
        |m, e| m.handle(&e),
        |m| format!("{:?}", m.state()),
    );
    contenders.finish("turnstile");
}

fn hand_10(k: u8) -> hand_ten::Event {
    match k {
        0 => hand_ten::Event::Next,
        1 => hand_ten::Event::Back,
        _ => hand_ten::Event::Reset,
    }
}
fn ours_10(k: u8) -> TenEvent {
    match k {
        0 => TenEvent::Next,
        1 => TenEvent::Back,
        _ => TenEvent::Reset,
    }
}
fn sm_10(k: u8) -> sm_ten::TenEvents {
    match k {
        0 => sm_ten::TenEvents::Next,
        1 => sm_ten::TenEvents::Back,
        _ => sm_ten::TenEvents::Reset,
    }
}
fn rf_10(k: u8) -> rf_ten::ten::Input {
    match k {
        0 => rf_ten::ten::Input::Next,
        1 => rf_ten::ten::Input::Back,
        _ => rf_ten::ten::Input::Reset,
    }
}
fn st_10(k: u8) -> st_ten::Event {
    match k {
        0 => st_ten::Event::Next,
        1 => st_ten::Event::Back,
        _ => st_ten::Event::Reset,
    }
}

fn ten_states(c: &mut Criterion) {
    let seq = sequence(3);
    let expected = seq.iter().fold(hand_ten::State::S0, |s, &k| {
        hand_ten::next(s, hand_10(k)).expect("defined")
    });
    let mut group = c.benchmark_group("ten_states");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let mut contenders = Contenders::new(group, &seq, format!("{expected:?}"));
    contenders.run::<false, _, _>(
        "hand_written_match",
        hand_10,
        || hand_ten::State::S0,
        |m, e| *m = hand_ten::next(*m, e).expect("defined"),
        |m| format!("{m:?}"),
    );
    contenders.run::<false, _, _>(
        "sagaflow_next",
        ours_10,
        || TenState::S0,
        |m, e| *m = Ten::next(m, e).expect("defined"),
        |m| m.name().to_string(),
    );
    contenders.run::<false, _, _>(
        "sagaflow_machine_fire",
        ours_10,
        Ten::machine,
        |m, e| {
            now(m.fire(&mut (), e)).expect("defined");
        },
        |m| m.state_name().to_string(),
    );
    contenders.run::<false, _, _>(
        "sagaflow_machine_step",
        ours_10,
        Ten::machine,
        |m, e| {
            m.step(e).expect("defined");
        },
        |m| m.state_name().to_string(),
    );
    contenders.run::<false, _, _>(
        "smlang",
        sm_10,
        || sm_ten::TenStateMachine::new(sm_ten::Ctx),
        |m, e| {
            m.process_event(e).expect("defined");
        },
        |m| format!("{:?}", m.state()),
    );
    contenders.run::<false, _, _>(
        "rust_fsm",
        rf_10,
        rf_ten::ten::StateMachine::new,
        |m, e| {
            m.consume(&e).expect("defined");
        },
        |m| format!("{:?}", m.state()),
    );
    contenders.run::<false, _, _>(
        "statig",
        st_10,
        || statig::blocking::IntoStateMachineExt::state_machine(st_ten::Ten),
        |m, e| m.handle(&e),
        |m| format!("{:?}", m.state()),
    );
    contenders.finish("ten_states");
}

fn in_memory(c: &mut Criterion) {
    turnstile(c);
    ten_states(c);
}

// ---------------------------------------------------------------------------------------------
// Persisted

/// A fresh temporary directory on the repository's disk: under `CARGO_TARGET_DIR` if set,
/// else the workspace's `target/`.
fn scratch() -> TempDir {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&root).expect("the target directory");
    tempfile::Builder::new()
        .prefix("sagaflow-fsm-")
        .tempdir_in(root)
        .expect("a scratch directory")
}

fn sync_name(sync: Synchronous) -> &'static str {
    match sync {
        Synchronous::Full => "FULL",
        _ => "NORMAL",
    }
}

/// `iters` transitions of one persisted turnstile on a fresh file; opening it is not timed.
async fn persisted_timed(sync: Synchronous, iters: u64) -> Duration {
    let dir = scratch();
    let store = SqliteStore::open(
        dir.path().join("fsm.db"),
        SqliteOptions::default().synchronous(sync),
    )
    .expect("opens");
    let mut m = Turnstile::create(&store, "turnstile")
        .await
        .expect("created");
    let started = Instant::now();
    for i in 0..iters {
        let e = if i % 2 == 0 {
            TurnstileEvent::Coin
        } else {
            TurnstileEvent::Push
        };
        m.fire(&mut (), e).await.expect("stored");
    }
    let elapsed = started.elapsed();
    assert_eq!(m.version(), iters);
    drop(m);
    drop(store);
    elapsed
}

/// `iters` reads of a machine through the store's writer thread: the hand-off to that thread
/// and back, with no write, which every persisted transition pays once.
async fn round_trip_timed(iters: u64) -> Duration {
    let dir = scratch();
    let store = SqliteStore::open(
        dir.path().join("fsm.db"),
        SqliteOptions::default().synchronous(Synchronous::Normal),
    )
    .expect("opens");
    Turnstile::create(&store, "turnstile")
        .await
        .expect("created");
    let started = Instant::now();
    for _ in 0..iters {
        store.load_machine("turnstile").await.expect("reads");
    }
    started.elapsed()
}

/// A bare rusqlite connection on a fresh file with the store's pragmas and the same two tables.
struct Bare {
    conn: rusqlite::Connection,
    _dir: TempDir,
}

impl Bare {
    fn open(sync: Synchronous) -> Bare {
        let dir = scratch();
        let conn = rusqlite::Connection::open(dir.path().join("bare.db")).expect("bare opens");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .expect("WAL");
        assert!(mode.eq_ignore_ascii_case("wal"), "journal_mode {mode}");
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;
             CREATE TABLE m (id TEXT NOT NULL PRIMARY KEY, state TEXT NOT NULL,
                             version INTEGER NOT NULL, at INTEGER NOT NULL) STRICT;
             CREATE TABLE log (id TEXT NOT NULL REFERENCES m (id), seq INTEGER NOT NULL,
                               from_state TEXT NOT NULL, event TEXT NOT NULL,
                               to_state TEXT NOT NULL, at INTEGER NOT NULL,
                               PRIMARY KEY (id, seq)) STRICT, WITHOUT ROWID;
             CREATE TABLE rows (n INTEGER NOT NULL PRIMARY KEY, v TEXT NOT NULL) STRICT;
             INSERT INTO m VALUES ('t', '\"Locked\"', 0, 0);",
            sync_name(sync)
        ))
        .expect("pragmas and tables");
        Bare { conn, _dir: dir }
    }

    /// What a persisted transition writes, by hand: the fenced update and the log row.
    fn transition(&self, version: i64) {
        self.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE m SET state = ?1, version = ?2, at = ?3 WHERE id = 't' AND version = ?4",
            )
            .expect("prepares")
            .execute(("\"Unlocked\"", version + 1, version, version))
            .expect("update");
        assert_eq!(changed, 1);
        self.conn
            .prepare_cached("INSERT INTO log VALUES ('t', ?1, 'Locked', 'Coin', 'Unlocked', ?2)")
            .expect("prepares")
            .execute((version + 1, version))
            .expect("insert");
        self.conn.execute_batch("COMMIT").expect("commit");
    }

    /// The bare commit of `durable.rs`: one small row in a transaction of its own.
    fn commit_one(&self, n: i64) {
        self.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        self.conn
            .prepare_cached("INSERT INTO rows (n, v) VALUES (?1, '1')")
            .expect("prepares")
            .execute([n])
            .expect("insert");
        self.conn.execute_batch("COMMIT").expect("commit");
    }
}

fn bare_timed(sync: Synchronous, iters: u64, same_sql: bool) -> Duration {
    let bare = Bare::open(sync);
    let started = Instant::now();
    for i in 0..iters as i64 {
        if same_sql {
            bare.transition(i);
        } else {
            bare.commit_one(i);
        }
    }
    started.elapsed()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn persisted(c: &mut Criterion) {
    let rt = runtime();
    // The check: a machine's version and log after a few transitions, and the bare SQL.
    rt.block_on(async {
        let dir = scratch();
        let store = SqliteStore::open(dir.path().join("check.db"), SqliteOptions::default())
            .expect("opens");
        let mut m = Turnstile::create(&store, "t").await.expect("created");
        for e in [
            TurnstileEvent::Coin,
            TurnstileEvent::Push,
            TurnstileEvent::Coin,
        ] {
            m.fire(&mut (), e).await.expect("stored");
        }
        let again = Turnstile::load(&store, "t")
            .await
            .expect("loads")
            .expect("exists");
        assert_eq!((again.version(), again.state_name()), (3, "Unlocked"));
        assert_eq!(again.history().await.expect("log").len(), 3);
        println!("persisted check: 3 transitions stored, and logged");
    });
    let bare = Bare::open(Synchronous::Full);
    for v in 0..3 {
        bare.transition(v);
    }
    drop(bare);

    let mut group = c.benchmark_group("persisted");
    group.throughput(Throughput::Elements(1));
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let name = sync_name(sync).to_lowercase();
        group.bench_function(format!("sagaflow_fire_{name}"), |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                tokio::spawn(persisted_timed(sync, iters))
                    .await
                    .expect("the timed loop ends")
            });
        });
        group.bench_function(format!("bare_same_sql_{name}"), |b| {
            b.iter_custom(|iters| bare_timed(sync, iters, true));
        });
        group.bench_function(format!("bare_commit_{name}"), |b| {
            b.iter_custom(|iters| bare_timed(sync, iters, false));
        });
    }
    group.bench_function("writer_round_trip", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            tokio::spawn(round_trip_timed(iters))
                .await
                .expect("the timed loop ends")
        });
    });
    group.finish();
}

criterion_group! {
    name = memory;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = in_memory
}
criterion_group! {
    name = durable;
    config = Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = persisted
}
criterion_main!(memory, durable);
