//! Test support shared by the facade's integration tests.

#![allow(dead_code, unreachable_pub)] // each test file uses part of it

pub mod twenty;
