use sagaflow::fsm;

fsm! {
    Order {
        *Cart + Checkout = Placed,
        Placed + Pay = Paid,
        Placed + Hold = OnHold,
        OnHold + Poke = OnHold,
        Paid + Ship = Shipped,
        state Shipped { final },
    }
}

fn main() {}
