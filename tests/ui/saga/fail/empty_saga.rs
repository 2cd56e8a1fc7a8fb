use sagaflow::prelude::*;

saga! { pub Empty {} }

fn main() {}
