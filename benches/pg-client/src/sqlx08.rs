//! sqlx 0.8 (0.8.6): the newest line that builds with the workspace's MSRV, Rust 1.89.

use ::sqlx08 as sqlx;

// The same source against each sqlx line, on purpose: each file's `sqlx` is another version.
#[allow(clippy::duplicate_mod)]
#[path = "sqlx_impl.rs"]
mod imp;

pub(crate) use imp::{Held, Options, Sqlx};
