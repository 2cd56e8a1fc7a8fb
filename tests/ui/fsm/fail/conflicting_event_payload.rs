use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Lock(u32) = Locked(u32),
        Locked + Unlock = Opened,
        Opened + Lock(u64) = Locked,
    }
}

fn main() {}
