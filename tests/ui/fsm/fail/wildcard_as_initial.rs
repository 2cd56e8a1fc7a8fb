use sagaflow::fsm;

fsm! {
    Door {
        *_ + Open = Opened,
        Opened + Close = Opened,
    }
}

fn main() {}
