use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open [unlocked] = Opened,
        Closed + Open [unlocked] = Closed,
        Opened + Close = Closed,
    }
}

fn main() {}
