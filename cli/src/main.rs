//! The `sagaflow` command line (in progress).

fn main() {}
