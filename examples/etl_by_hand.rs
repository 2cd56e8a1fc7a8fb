//! The workflow of `examples/etl.rs` written without the macro, with [`Builder`] directly:
//! this is what `workflow!` expands to, minus the spans that put rustc's errors on your code.
//!
//! Each step is added with `step_borrowing`, as the macro adds them: the step's function
//! borrows the attempt's context and its inputs (`&T`, `Option<&T>` for an optional one)
//! from the engine, and its future, boxed once by [`Call::new`], is the attempt's only
//! allocation. `Builder::step` takes a closure that owns them instead (`Arc<T>` each), for a
//! step written in place as an `async move` block.
//!
//! The names are given as the macro gives them, with [`Name::from_static`]: kept as written,
//! so a run's report clones them without touching a reference count that every run shares
//! (a plain `"extract"` works too, copied once into the definition).
//!
//! Run it with `cargo run --example etl_by_hand`.

use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::{Builder, Call, Definition, Name, RetryPolicy, StepOptions};

async fn extract(_: &StepContext, day: &u32) -> Result<Vec<i64>, StepError> {
    Ok((0..i64::from(*day)).map(|i| i * 7 % 11 - 3).collect())
}

async fn clean(_: &StepContext, rows: &[i64]) -> Result<Vec<i64>, StepError> {
    Ok(rows.iter().copied().filter(|r| *r >= 0).collect())
}

async fn audit(_: &StepContext, _: &[i64]) -> Result<usize, StepError> {
    Err(StepError::permanent("audit service unreachable"))
}

async fn load(_: &StepContext, rows: &[i64], audit: Option<&usize>) -> Result<String, StepError> {
    Ok(format!("loaded {} rows, audit {:?}", rows.len(), audit))
}

fn definition() -> Definition<u32, String> {
    let mut b = Builder::<u32>::new(Name::from_static("Etl"));
    let input = b.input();
    let retry = RetryPolicy {
        maximum_attempts: 5,
        initial_interval: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    let rows = b.step_borrowing(
        Name::from_static("extract"),
        StepOptions::new()
            .retry(retry)
            .timeout(Duration::from_secs(2)),
        (input,),
        None,
        |ctx, (day,)| Call::new(extract(ctx, day)),
    );
    let cleaned = b.step_borrowing(
        Name::from_static("clean"),
        StepOptions::new(),
        (rows,),
        None,
        |ctx, (rows,)| Call::new(clean(ctx, rows)),
    );
    let audited = b.step_borrowing(
        Name::from_static("audit"),
        StepOptions::new().on_error(OnError::Continue),
        (rows,),
        None,
        |ctx, (rows,)| Call::new(audit(ctx, rows)),
    );
    let loaded = b.step_borrowing(
        Name::from_static("load"),
        StepOptions::new(),
        (cleaned, audited.optional()),
        None,
        |ctx, (rows, audit)| Call::new(load(ctx, rows, audit)),
    );
    b.build_with_output(loaded)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::ephemeral();
    let report = engine
        .start(&definition(), "by-hand", 21)
        .await?
        .wait()
        .await?;
    for step in &report.steps {
        println!("{:<8} {:?}", step.name, step.status);
    }
    println!("{}", report.output);
    Ok(())
}
