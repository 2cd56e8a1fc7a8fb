use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        Opened + Close = Closed,
        Closed + Open = Closed,
    }
}

fn main() {}
