//! Sagas on sagaflow's durable engine: when a step fails for good, the steps that completed
//! are undone, newest first.
//!
//! A saga is a workflow whose steps may each declare a compensation. Its run is a forward run
//! on the [`Engine`](sagaflow_core::runtime::Engine); if that run stops short (a step failed
//! after its retries, the saga was cancelled, or its deadline passed), the saga runs the
//! compensations of the steps that completed, in reverse order of completion (parallel
//! branches included), each a durable step with its own retry policy. A compensation that
//! runs out of retries leaves the saga [`Stuck`](SagaOutcome::Stuck), its error kept, until
//! an operator retries it, skips it, or abandons the saga. A step marked as the pivot is the
//! point of no return: every step after it is retried until it succeeds.
//!
//! Use it through the `saga!` macro of the `sagaflow` crate; [`SagaBuilder`] is what the macro
//! expands to, and can be used by hand.
//!
//! # Guarantees
//!
//! - Each compensation that completed runs once, even across crashes: compensations run as
//!   the steps of a run of their own (a *round*), checkpointed like any step. One that a
//!   crash interrupted runs again, so compensations, like steps, should be idempotent.
//! - What is undone, and in which order, is read from the store (the forward run's steps and
//!   event log), never from a process's memory: a process that takes a saga up after a crash
//!   undoes exactly what the crashed one would have.
//! - A step that started but did not complete is undone only if its compensation was declared
//!   safe on an unknown outcome ([`SagaBuilder::undo_on_unknown`]); it then receives `None`
//!   for the output.

mod builder;
mod definition;
mod driver;
mod error;
mod inner;
pub mod naming;
mod plan;
mod queues;
pub mod requests;
mod status;
mod takeover;

pub use builder::SagaBuilder;
pub use definition::SagaDefinition;
pub use driver::{RecoveredSagas, SagaHandle, SagaOutcome};
pub use error::{SagaDefinitionError, SagaError};
pub use requests::OperatorAction;
pub use status::{RoundStanding, SagaStatus};
