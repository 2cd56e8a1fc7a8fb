//! An order as a `saga!`: charge the card, reserve the stock, ship. When shipping fails, the
//! reservation is released and the charge refunded, in that order.
//!
//! Run it with `cargo run --example order`: one order ships, the other cannot (the courier
//! does not deliver to its address) and is rolled back.

use std::time::Duration;

use sagaflow::SagaOutcome;
use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cart {
    customer: String,
    items: Vec<(String, u32)>,
    cents: u64,
    address: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    id: String,
    cents: u64,
    cart: Cart,
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
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The idempotency key makes a retried charge the same charge at the payment provider.
    let id = format!("ch_{}", ctx.idempotency_key().len() * 7919 % 100_000);
    println!(
        "  charge   {} cents to {} ({id})",
        cart.cents, cart.customer
    );
    Ok(Charge {
        id,
        cents: cart.cents,
        cart: cart.clone(),
    })
}

async fn refund(_: &StepContext, cart: &Cart, charge: &Charge) -> Result<(), StepError> {
    println!(
        "  refund   {} cents to {} ({})",
        charge.cents, cart.customer, charge.id
    );
    Ok(())
}

async fn reserve(_: &StepContext, charge: &Charge) -> Result<Reservation, StepError> {
    let count: u32 = charge.cart.items.iter().map(|(_, n)| n).sum();
    println!("  reserve  {count} item(s)");
    Ok(Reservation {
        id: format!("rs_{}", charge.id),
        address: charge.cart.address.clone(),
    })
}

async fn release(_: &StepContext, _: &Charge, reservation: &Reservation) -> Result<(), StepError> {
    println!("  release  reservation {}", reservation.id);
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

sagaflow::saga! {
    /// Charge, reserve, ship; undone newest first when a step fails.
    pub Order(Cart) -> Shipment {
        charge / refund -> reserve / release -> ship;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Sagas compensate from the outputs their steps stored: an engine on SQLite (in memory
    // here; `Engine::open(path)` for a file that survives a crash).
    let engine = Engine::open_in_memory()?;
    let orders = [
        ("order-1001", "Ada", "12 Rue de Rivoli, Paris"),
        ("order-1002", "Roald", "Amundsen-Scott Station, Antarctica"),
    ];
    for (id, customer, address) in orders {
        println!("{id} for {customer}:");
        let cart = Cart {
            customer: customer.to_owned(),
            items: vec![("kettle".to_owned(), 1), ("mug".to_owned(), 2)],
            cents: 4_990,
            address: address.to_owned(),
        };
        match Order::start(&engine, id, cart).await?.wait().await? {
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
