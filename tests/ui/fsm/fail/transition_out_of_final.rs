use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Break = Broken,
        Broken + Repair = Closed,
        state Broken { final },
    }
}

fn main() {}
