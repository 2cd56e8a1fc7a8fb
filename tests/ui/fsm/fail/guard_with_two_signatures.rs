use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open [allowed] = Opened,
        Opened + Close(u8) [allowed] = Closed,
    }
}

fn main() {}
