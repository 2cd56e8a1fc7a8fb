use sagaflow::fsm;

fsm! {
    Door {
        Closed + Open = Opened,
        Opened + Close = Closed,
    }
}

fn main() {}
