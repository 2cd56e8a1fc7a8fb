//! Saga compensation on top of the sagaflow run engine. The saga runtime arrives with the `saga!` macro; this crate holds its place in the layout.
