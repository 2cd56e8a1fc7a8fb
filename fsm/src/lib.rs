//! State machines on top of the sagaflow store. The runtime arrives with the `fsm!` macro; this crate holds its place in the layout.
