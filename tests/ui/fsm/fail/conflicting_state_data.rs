use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Lock(u32) = Locked(u32),
        Locked(String) + Unlock = Closed,
    }
}

fn main() {}
