use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        Opened + Close = Clsoed,
    }
}

fn main() {}
