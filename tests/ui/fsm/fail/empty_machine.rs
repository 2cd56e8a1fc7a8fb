use sagaflow::fsm;

fsm! {
    Door {}
}

fn main() {}
