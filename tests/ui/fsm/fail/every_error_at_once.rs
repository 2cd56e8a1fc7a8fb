use sagaflow::fsm;

fsm! {
    Door {
        *Closed + Open = Opened,
        *Opened + Close = Closd,
        Closed + Open = Closed,
        Jammed + Kick = Closed,
        state Opened { final, final },
        event Knock,
    }
}

fn main() {}
