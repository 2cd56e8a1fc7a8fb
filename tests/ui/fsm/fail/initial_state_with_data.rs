use sagaflow::fsm;

fsm! {
    Counter {
        *Counting(u32) + Stop = Stopped,
        Stopped + Start(u32) = Counting,
    }
}

fn main() {}
