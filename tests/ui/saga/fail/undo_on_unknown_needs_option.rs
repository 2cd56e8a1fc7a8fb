use sagaflow::prelude::*;

async fn migrate(_: &StepContext, _: &u32) -> Result<u8, StepError> { Ok(1) }
async fn rollback(_: &StepContext, _: &u32, _version: &u8) -> Result<(), StepError> { Ok(()) }

saga! {
    Db(u32) {
        migrate / rollback;
        migrate: undo_on_unknown;
    }
}

fn main() {}
