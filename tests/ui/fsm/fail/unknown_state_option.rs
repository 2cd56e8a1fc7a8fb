use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        Opened + Close = Closed,
        state Opened { entri = ring },
    }
}

fn main() {}
