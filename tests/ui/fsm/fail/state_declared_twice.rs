use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        Opened + Close = Closed,
        state Opened { entry = ring },
        state Opened { exit = silence },
    }
}

fn main() {}
