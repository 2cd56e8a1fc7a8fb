use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open [unlocked && daytime] = Opened,
        Opened + Close = Closed,
    }
}

fn main() {}
