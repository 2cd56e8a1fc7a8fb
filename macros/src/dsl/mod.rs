//! The front end `workflow!` and `saga!` share (and `fsm!` its error collection and its
//! splitting of items): each macro is a thin layer over it.
//!
//! - [`header`]: `#[attrs] vis Name(Input) -> Output { .. }`, and the words of each macro;
//! - [`chain`]: statements split on `;`, chains of steps and groups, options statements;
//! - [`options`]: step options, their names (ours and Temporal's), the suggestions for a
//!   misspelt one, and their values; [`duration`]: durations and numbers; [`raw`]: an option
//!   as written, before either reads it;
//! - [`ctxt`]: the errors of one invocation, collected and reported together.

pub(crate) mod chain;
pub(crate) mod ctxt;
pub(crate) mod duration;
pub(crate) mod header;
pub(crate) mod options;
pub(crate) mod raw;
