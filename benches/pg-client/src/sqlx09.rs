//! sqlx 0.9 (0.9.1): the newest; it needs Rust 1.94.

use ::sqlx09 as sqlx;

// The same source against each sqlx line, on purpose: each file's `sqlx` is another version.
#[allow(clippy::duplicate_mod)]
#[path = "sqlx_impl.rs"]
mod imp;

pub(crate) use imp::{Held, Options, Sqlx};
