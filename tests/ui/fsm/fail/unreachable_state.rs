use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        Opened + Close = Closed,
        Locked + Unlock = Closed,
    }
}

fn main() {}
