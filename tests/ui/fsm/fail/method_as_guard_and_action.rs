use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open [check] = Opened,
        Opened + Close / check = Closed,
    }
}

fn main() {}
