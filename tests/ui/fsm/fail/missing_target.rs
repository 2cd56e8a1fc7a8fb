use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open,
        Opened + Close = Closed,
    }
}

fn main() {}
