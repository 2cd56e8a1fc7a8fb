//! The generated code relies on none of the user's names: shadowing `core`, `std`'s prelude
//! types and the facade's own names changes nothing.
#![allow(dead_code, non_camel_case_types)]

mod core {}
struct String;
struct Send;
struct Future;
struct Clone;
type Option = ();
type Result = ();
struct Fsm;
struct Machine;
struct Serialize;
struct serde;

sagaflow::fsm! {
    Hygienic {
        *Idle + Go(u8) [ready] / start = Busy(u8),
        Busy(u8) + Done = Idle,
        _ + Stop = Stopped,
        state Busy(u8) { entry = enter_busy, exit = leave_busy },
        state Stopped { final },
    }
}

struct Ctx;

impl HygienicContext for Ctx {
    async fn ready(&mut self, event: &u8) -> bool {
        *event > 0
    }
    async fn start(&mut self, event: u8) -> std::result::Result<u8, sagaflow::ActionError> {
        Ok(event * 2)
    }
    async fn enter_busy(&mut self, _state: &u8) -> std::result::Result<(), sagaflow::ActionError> {
        Ok(())
    }
    async fn leave_busy(&mut self, _state: &u8) -> std::result::Result<(), sagaflow::ActionError> {
        Ok(())
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut m = Hygienic::machine();
        m.fire(&mut Ctx, HygienicEvent::Go(21)).await.unwrap();
        assert!(matches!(m.state(), HygienicState::Busy(42)));
        m.fire(&mut Ctx, HygienicEvent::Stop).await.unwrap();
        assert!(m.is_final());
    });
}
