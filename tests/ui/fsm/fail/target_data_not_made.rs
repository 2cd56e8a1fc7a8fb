use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Lock = Locked(u32),
        Locked + Unlock = Closed,
    }
}

fn main() {}
