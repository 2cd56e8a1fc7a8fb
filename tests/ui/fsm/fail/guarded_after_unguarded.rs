use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        Closed + Open [unlocked] = Opened,
        Opened + Close = Closed,
    }
}

fn main() {}
