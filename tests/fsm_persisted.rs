//! Persisted machines: versions, the transition log, failures that write nothing, two tasks
//! racing on one machine, and a restart that restores a machine without running its entry
//! action again. What any store with machines must do runs on both the SQLite store and the
//! in-memory one and PostgreSQL (`on_both_stores!`); what only a file can show, on SQLite.
#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sagaflow::{
    ActionError, MachineError, MachineStore, MemoryStore, PersistedMachine, SqliteEngine,
    SqliteOptions, SqliteStore, fsm,
};

fsm! {
    /// An order's lifecycle.
    pub Order {
        *Cart + Checkout(u64) [in_stock] = Placed(u64),
        Placed(u64) + Pay / charge = Paid(u64),
        Placed + Cancel = Cancelled,
        Paid + Ship = Shipped,
        state Paid(u64) { entry = send_receipt },
        state Shipped { final },
        state Cancelled { final },
    }
}

/// Counts entry actions (shared across tasks), and fails on demand.
/// Runs the check `$name` (generic over the store) as three tests: on a SQLite database in
/// memory, on the in-memory store, and on PostgreSQL (a schema of its own on the server named
/// by `SAGAFLOW_PG_URL`; see [`pg_store`]).
macro_rules! on_both_stores {
    ($(#[$flavor:meta])* $name:ident) => {
        mod $name {
            use super::*;

            $(#[$flavor])*
            async fn sqlite() {
                super::$name(SqliteStore::in_memory().unwrap()).await;
            }

            $(#[$flavor])*
            async fn memory() {
                super::$name(Arc::new(MemoryStore::new())).await;
            }

            $(#[$flavor])*
            async fn postgres() {
                let Some(store) = super::pg_store().await else {
                    return;
                };
                super::$name(store).await;
            }
        }
    };
}

/// A PostgreSQL store in a schema of its own on the server the tests run on
/// (`sagaflow_postgres::testing`), or `None` when there is none (and `CI` is not set).
async fn pg_store() -> Option<sagaflow_postgres::PgStore> {
    sagaflow_postgres::testing::store("fsm").await
}

on_both_stores!(
    #[tokio::test]
    a_machine_is_stored_with_its_version_and_every_transition_is_logged
);
on_both_stores!(
    #[tokio::test]
    a_refused_guard_or_failed_action_writes_nothing
);
on_both_stores!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    the_loser_of_a_race_reloads_and_goes_on
);
on_both_stores!(
    #[tokio::test]
    many_machines_share_one_database_and_types_are_not_mixed_up
);

#[derive(Clone, Default)]
struct Shop {
    receipts: Arc<AtomicU32>,
    charges: Arc<AtomicU32>,
    out_of_stock: bool,
    card_declined: bool,
}

impl OrderContext for Shop {
    async fn in_stock(&mut self, _items: &u64) -> bool {
        !self.out_of_stock
    }
    async fn charge(&mut self, state: &u64) -> Result<u64, ActionError> {
        tokio::task::yield_now().await;
        self.charges.fetch_add(1, Ordering::SeqCst);
        if self.card_declined {
            return Err(ActionError::new("card declined"));
        }
        Ok(*state * 100)
    }
    async fn send_receipt(&mut self, _cents: &u64) -> Result<(), ActionError> {
        self.receipts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn a_machine_is_stored_with_its_version_and_every_transition_is_logged<
    S: MachineStore + Clone + 'static,
>(
    store: S,
) {
    let mut shop = Shop::default();
    let mut order = Order::create(&store, "order-1").await.unwrap();
    assert_eq!((order.state_name(), order.version()), ("Cart", 0));
    order
        .fire(&mut shop, OrderEvent::Checkout(3))
        .await
        .unwrap();
    order.fire(&mut shop, OrderEvent::Pay).await.unwrap();
    assert!(matches!(order.state(), OrderState::Paid(300)));
    assert_eq!(order.version(), 2);

    // What the database holds, read through another handle.
    let again = Order::load(&store, "order-1").await.unwrap().unwrap();
    assert!(matches!(again.state(), OrderState::Paid(300)));
    assert_eq!(again.version(), 2);
    let log = again.history().await.unwrap();
    let rows: Vec<_> = log
        .iter()
        .map(|t| (t.seq, t.from.as_str(), t.event.as_str(), t.to.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (1, "Cart", "Checkout", "Placed"),
            (2, "Placed", "Pay", "Paid")
        ]
    );
    assert!(log[0].at > 0 && log[0].at <= log[1].at);

    // The id is the idempotency key; `create` refuses it, `open` returns it.
    let err = Order::create(&store, "order-1").await.unwrap_err();
    assert!(
        matches!(err, MachineError::AlreadyExists { version: 2, .. }),
        "{err}"
    );
    assert_eq!(Order::open(&store, "order-1").await.unwrap().version(), 2);
    assert!(Order::load(&store, "order-2").await.unwrap().is_none());
}

async fn a_refused_guard_or_failed_action_writes_nothing<S: MachineStore + Clone + 'static>(
    store: S,
) {
    let mut order = Order::open(&store, "o").await.unwrap();
    let mut shop = Shop {
        out_of_stock: true,
        ..Shop::default()
    };
    let err = order
        .fire(&mut shop, OrderEvent::Checkout(1))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "machine `o`: Order: guard `in_stock` refused `Checkout` in `Cart`"
    );
    shop.out_of_stock = false;
    order
        .fire(&mut shop, OrderEvent::Checkout(1))
        .await
        .unwrap();
    shop.card_declined = true;
    let err = order.fire(&mut shop, OrderEvent::Pay).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "machine `o`: Order: action `charge` failed on `Pay` in `Placed`: card declined"
    );
    assert!(err.transition().is_some());
    assert!(matches!(order.state(), OrderState::Placed(1)));
    assert_eq!(order.version(), 1);
    let stored = Order::load(&store, "o").await.unwrap().unwrap();
    assert!(matches!(stored.state(), OrderState::Placed(1)));
    assert_eq!(stored.version(), 1);
    assert_eq!(stored.history().await.unwrap().len(), 1);
    assert_eq!(shop.receipts.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_racing_on_one_machine_make_exactly_one_transition_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("race.db"), SqliteOptions::default()).unwrap();
    for round in 0..25 {
        let id = format!("order-{round}");
        let mut order = Order::create(&store, &id).await.unwrap();
        order
            .fire(&mut Shop::default(), OrderEvent::Checkout(2))
            .await
            .unwrap();
        // Both tasks read version 1, then both try to leave `Placed`: one pays, one cancels.
        let a = Order::load(&store, &id).await.unwrap().unwrap();
        let b = Order::load(&store, &id).await.unwrap().unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let race = |mut m: PersistedMachine<Order>, event: OrderEvent| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let result = m.fire(&mut Shop::default(), event).await.map(|s| s.name());
                (result, m.version())
            })
        };
        let ta = race(a, OrderEvent::Pay);
        let tb = race(b, OrderEvent::Cancel);
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        let (winner, loser) = match (&ra.0, &rb.0) {
            (Ok(_), Err(e)) => (ra.0.as_ref().unwrap(), e),
            (Err(e), Ok(_)) => (rb.0.as_ref().unwrap(), e),
            other => panic!("round {round}: expected one winner, got {other:?}"),
        };
        assert!(loser.is_conflict(), "round {round}: {loser}");
        assert!(
            matches!(
                loser,
                MachineError::Conflict {
                    expected: 1,
                    found: Some(2),
                    ..
                }
            ),
            "{loser}"
        );
        assert!(loser.to_string().contains("lost the race"), "{loser}");
        // The loser's handle did not move.
        assert!(ra.1 == 1 || rb.1 == 1);
        let stored = Order::load(&store, &id).await.unwrap().unwrap();
        assert_eq!(stored.version(), 2);
        assert_eq!(stored.state_name(), *winner);
        let log = stored.history().await.unwrap();
        assert_eq!(log.len(), 2, "round {round}: one log row per version");
        assert_eq!(log[1].to, *winner);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_race_like_two_processes() {
    // Two stores are two connections with two writer threads, as two processes would have.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let one = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let two = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let mut wins = [0_u32; 2];
    for round in 0..10 {
        let id = format!("m-{round}");
        Order::create(&one, &id).await.unwrap();
        let a = Order::load(&one, &id).await.unwrap().unwrap();
        let b = Order::load(&two, &id).await.unwrap().unwrap();
        let fire = |mut m: PersistedMachine<Order>, items: u64| {
            tokio::spawn(async move {
                m.fire(&mut Shop::default(), OrderEvent::Checkout(items))
                    .await
                    .map(|_| items)
            })
        };
        let (ra, rb) = (fire(a, 1), fire(b, 2));
        let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
        assert!(ra.is_ok() != rb.is_ok(), "round {round}: {ra:?} {rb:?}");
        let winner = match (&ra, &rb) {
            (Ok(items), Err(e)) | (Err(e), Ok(items)) => {
                assert!(e.is_conflict(), "{e}");
                *items
            }
            _ => unreachable!(),
        };
        wins[usize::try_from(winner - 1).unwrap()] += 1;
        // Both stores now read the winner's state, version 1, one log row.
        for store in [&one, &two] {
            let m = Order::load(store, &id).await.unwrap().unwrap();
            assert!(matches!(m.state(), OrderState::Placed(n) if *n == winner));
            assert_eq!(m.version(), 1);
            assert_eq!(m.history().await.unwrap().len(), 1);
        }
    }
    assert_eq!(wins[0] + wins[1], 10);
}

async fn the_loser_of_a_race_reloads_and_goes_on<S: MachineStore + Clone + 'static>(store: S) {
    let mut a = Order::create(&store, "x").await.unwrap();
    let mut b = Order::load(&store, "x").await.unwrap().unwrap();
    let mut shop = Shop::default();
    a.fire(&mut shop, OrderEvent::Checkout(1)).await.unwrap();
    let err = b
        .fire(&mut shop, OrderEvent::Checkout(5))
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(b.version(), 0);
    b.reload().await.unwrap();
    assert!(matches!(b.state(), OrderState::Placed(1)));
    b.fire(&mut shop, OrderEvent::Cancel).await.unwrap();
    assert_eq!(b.version(), 2);
}

#[tokio::test]
async fn a_restart_restores_the_machine_without_running_its_entry_action_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagaflow.db");
    let shop = Shop::default();
    {
        // The service's store, with its engine on it: runs and machines in one file.
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let engine = store.engine();
        let mut order = Order::create(&store, "order-9").await.unwrap();
        let mut s = shop.clone();
        order.fire(&mut s, OrderEvent::Checkout(4)).await.unwrap();
        order.fire(&mut s, OrderEvent::Pay).await.unwrap();
        assert_eq!(shop.receipts.load(Ordering::SeqCst), 1);
        // The process ends: everything is dropped and the file released.
        drop(engine);
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let mut order = Order::load(&store, "order-9").await.unwrap().unwrap();
    assert!(matches!(order.state(), OrderState::Paid(400)));
    assert_eq!(order.version(), 2);
    assert_eq!(
        shop.receipts.load(Ordering::SeqCst),
        1,
        "loading does not run `send_receipt` again"
    );
    let mut s = shop.clone();
    order.fire(&mut s, OrderEvent::Ship).await.unwrap();
    assert!(order.is_final());
    assert_eq!(shop.receipts.load(Ordering::SeqCst), 1);
    assert_eq!(order.history().await.unwrap().len(), 3);
    assert!(order.mermaid().ends_with("    class Shipped current\n"));
}

fsm! {
    /// Another machine type, to share ids with.
    Lamp {
        *Off + Toggle = On,
        On + Toggle = Off,
    }
}

async fn many_machines_share_one_database_and_types_are_not_mixed_up<
    S: MachineStore + Clone + 'static,
>(
    store: S,
) {
    for i in 0..20 {
        let mut lamp = Lamp::open(&store, format!("lamp-{i}")).await.unwrap();
        for _ in 0..i {
            lamp.fire(&mut (), LampEvent::Toggle).await.unwrap();
        }
    }
    for i in 0..20 {
        let lamp = Lamp::load(&store, &format!("lamp-{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lamp.version(), i);
        assert_eq!(lamp.state_name(), if i % 2 == 0 { "Off" } else { "On" });
    }
    let ids = Lamp::ids(&store).await.unwrap();
    assert_eq!(ids.len(), 20);
    assert_eq!(ids[..3], ["lamp-0", "lamp-1", "lamp-10"], "in id order");
    assert!(Order::ids(&store).await.unwrap().is_empty());
    let err = Order::load(&store, "lamp-3").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "machine `lamp-3` is a `Lamp`, not a `Order`"
    );
}

#[tokio::test]
async fn a_stored_state_that_no_longer_decodes_is_an_error_naming_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        Order::create(&store, "o").await.unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE machines SET state = '\"Teleported\"' WHERE machine_id = 'o'",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let err = Order::load(&store, "o").await.unwrap_err();
    assert!(matches!(err, MachineError::Codec { .. }), "{err}");
    assert!(
        err.to_string().starts_with(
            "machine `o` (a `Order`): state does not decode: unknown variant `Teleported`"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_engine_hands_back_its_store_for_machines_in_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let engine = sagaflow::Engine::open_with(&path, SqliteOptions::default()).unwrap();
    assert!(engine.store_as::<MemoryStore>().is_none());
    let store = engine
        .store_as::<SqliteStore>()
        .expect("the engine's own SQLite store");
    assert_eq!(store.path(), path.to_str().unwrap());
    let mut lamp = Lamp::create(store, "hall").await.unwrap();
    lamp.fire(&mut (), LampEvent::Toggle).await.unwrap();
    drop(engine);
    // The machine went to the engine's file: another store on it finds the machine there.
    let again = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let lamp = Lamp::load(&again, "hall").await.unwrap().unwrap();
    assert_eq!((lamp.state_name(), lamp.version()), ("On", 1));
    // The ephemeral engine's store is an in-memory one.
    let ephemeral = sagaflow::Engine::ephemeral();
    assert!(ephemeral.store_as::<MemoryStore>().is_some());
}
