use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        Opened + Closse = Closed,
        event Close,
    }
}

fn main() {}
