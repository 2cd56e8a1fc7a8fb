//! The saga of `examples/order.rs` written without the macro, with [`SagaBuilder`] directly:
//! this is what `saga!` expands to, minus the spans that put rustc's errors on your code.
//! Each `step / undo` pair is a `step` and an `undo` of its handle; a compensation receives
//! what its step received, and what it returned.
//!
//! Run it with `cargo run --example order_by_hand`.

use std::sync::{Arc, OnceLock};

use sagaflow::prelude::*;
use sagaflow::{SagaBuilder, SagaDefinition, SagaOutcome, StepOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cart {
    customer: String,
    cents: u64,
    address: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    id: String,
    cents: u64,
    address: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    id: String,
    address: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Shipment {
    tracking: String,
}

async fn charge(ctx: &StepContext, cart: &Cart) -> Result<Charge, StepError> {
    // The idempotency key is what a payment provider dedupes a retried charge on.
    println!(
        "  charge   {} cents ({})",
        cart.cents,
        ctx.idempotency_key()
    );
    Ok(Charge {
        id: format!("ch_{}", cart.customer.to_lowercase()),
        cents: cart.cents,
        address: cart.address.clone(),
    })
}

async fn refund(ctx: &StepContext, _: &Cart, charge: &Charge) -> Result<(), StepError> {
    // A compensation's key is the same in every round an operator retries.
    let key = ctx.idempotency_key();
    println!("  refund   {} cents of {} ({key})", charge.cents, charge.id);
    Ok(())
}

async fn reserve(_: &StepContext, charge: &Charge) -> Result<Reservation, StepError> {
    println!("  reserve  for {}", charge.id);
    Ok(Reservation {
        id: format!("rs_{}", charge.id),
        address: charge.address.clone(),
    })
}

async fn release(_: &StepContext, _: &Charge, reservation: &Reservation) -> Result<(), StepError> {
    println!("  release  {}", reservation.id);
    Ok(())
}

async fn ship(_: &StepContext, reservation: &Reservation) -> Result<Shipment, StepError> {
    if reservation.address.contains("Antarctica") {
        return Err(StepError::permanent(format!(
            "no courier delivers to {}",
            reservation.address
        )));
    }
    println!("  ship     to {}", reservation.address);
    Ok(Shipment {
        tracking: format!("TRK-{}", reservation.id),
    })
}

/// `charge / refund -> reserve / release -> ship`, built once, as `saga!` builds its
/// definition once in a `OnceLock`.
fn order() -> &'static SagaDefinition<Cart, Shipment> {
    static ORDER: OnceLock<SagaDefinition<Cart, Shipment>> = OnceLock::new();
    ORDER.get_or_init(|| {
        let mut b = SagaBuilder::<Cart>::new("Order");
        let cart = b.input();
        let charged = b.step(
            "charge",
            StepOptions::new(),
            (cart,),
            |ctx, (cart,)| async move { charge(&ctx, &cart).await },
        );
        // A compensation gets its step's inputs as its step got them, and its output as an
        // `Arc` (decoded from the store when the saga was taken up after a crash).
        b.undo(
            charged,
            "refund",
            StepOptions::new(),
            (cart,),
            |ctx, (cart,), charged: Arc<Charge>| async move { refund(&ctx, &cart, &charged).await },
        );
        let reserved = b.step(
            "reserve",
            StepOptions::new(),
            (charged,),
            |ctx, (charged,)| async move { reserve(&ctx, &charged).await },
        );
        b.undo(
            reserved,
            "release",
            StepOptions::new(),
            (charged,),
            |ctx, (charged,), reserved: Arc<Reservation>| async move {
                release(&ctx, &charged, &reserved).await
            },
        );
        let shipped = b.step(
            "ship",
            StepOptions::new(),
            (reserved,),
            |ctx, (reserved,)| async move { ship(&ctx, &reserved).await },
        );
        b.build_with_output(shipped)
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What `saga!` checks while it compiles, a hand-built saga checks when it is built.
    let problems = order().problems();
    if !problems.is_empty() {
        return Err(format!("the saga is invalid: {problems:?}").into());
    }
    let engine = Engine::open_in_memory()?;
    for (id, customer, address) in [
        ("order-2001", "Ada", "12 Rue de Rivoli, Paris"),
        ("order-2002", "Roald", "Amundsen-Scott Station, Antarctica"),
    ] {
        println!("{id} for {customer}:");
        let cart = Cart {
            customer: customer.to_owned(),
            cents: 4_990,
            address: address.to_owned(),
        };
        match order().start(&engine, id, cart).await?.wait().await? {
            SagaOutcome::Completed(report) => {
                println!("  => shipped, tracking {}\n", report.output.tracking);
            }
            SagaOutcome::Compensated { cause, undone, .. } => {
                println!("  => rolled back ({}): {cause}\n", undone.join(", then "));
            }
            other => println!("  => {other:?}\n"),
        }
    }
    Ok(())
}
