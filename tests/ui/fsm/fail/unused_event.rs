use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        Opened + Close = Closed,
        event Kick,
    }
}

fn main() {}
