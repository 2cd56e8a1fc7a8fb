use std::rc::Rc;

use sagaflow::{ActionError, fsm};

fsm! {
    Door {
        *Closed + Open / log = Opened,
        Opened + Close = Closed,
    }
}

struct Ctx;

impl DoorContext for Ctx {
    async fn log(&mut self) -> Result<(), ActionError> {
        let not_send = Rc::new(1);
        tokio::task::yield_now().await;
        drop(not_send);
        Ok(())
    }
}

fn main() {}
