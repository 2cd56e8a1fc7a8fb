use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Lock(String) = Locked(u32),
        Locked + Unlock = Closed,
    }
}

fn main() {}
