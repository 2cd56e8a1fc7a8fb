//! The commands that write: `retry`, `skip`, `abandon`, `cancel` (saga requests) and
//! `signal`. Each checks the database read-only first (so that a missing file is not
//! created, a missing schema not made, and a foreign database not migrated), then writes
//! through the store (`SqliteStore` or `PgStore`) and the saga request API: the request is a
//! durable signal that the process running the saga acts on.

use std::io::Write;

use sagaflow_core::runtime::RunId;
use sagaflow_saga::SagaError;
use sagaflow_saga::requests::{self, OperatorAction};
use serde_json::json;

use crate::commands::Out;
use crate::db::{self, InspectError, Target};
use crate::error::CliError;
use crate::render;

/// What to ask of a saga.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ask {
    Operator(OperatorAction),
    Cancel,
}

/// `sagaflow retry|skip|abandon|cancel RUN`. A round's id stands for its saga.
pub(crate) async fn request(
    target: &Target,
    run_id: &str,
    ask: Ask,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let db = target.inspect().await?;
    let database = db.database().to_owned();
    let run = db.run(run_id).await?;
    let saga_id = db::saga_of(&run);
    if let Ask::Cancel = ask {
        let forward = db.run(&saga_id).await?;
        if forward.finished() || forward.status == "parked" {
            return Err(CliError::Refused {
                database,
                run: saga_id,
                message: format!("it is {}, there is nothing to cancel", forward.status),
            });
        }
    }
    drop(db);
    let store = target.store(&database).await?;
    let id = RunId::from(saga_id.as_str());
    let made = match ask {
        Ask::Operator(action) => requests::request(&*store, &id, action).await,
        Ask::Cancel => requests::request_cancel(&*store, &id).await,
    };
    let made = made.map_err(|e| refused(&database, &saga_id, ask, e))?;
    let verb = match ask {
        Ask::Operator(action) => action.as_str(),
        Ask::Cancel => "cancel",
    };
    if !made {
        return Err(CliError::Refused {
            database,
            run: saga_id,
            message: "a request was made for it already (one per stuck round, one \
                      cancellation): nothing changed"
                .to_owned(),
        });
    }
    if out.json {
        return render::json(
            w,
            &json!({"run_id": saga_id, "request": verb, "made": true}),
        );
    }
    writeln!(
        w,
        "asked to {verb} saga run `{saga_id}`: the process that runs the saga acts on it when \
         it serves requests; follow it with `sagaflow events {saga_id} --follow`"
    )?;
    Ok(())
}

fn refused(database: &str, run: &str, ask: Ask, error: SagaError) -> CliError {
    let message = match (&error, ask) {
        (SagaError::NotStuck { status, .. }, Ask::Operator(action)) => format!(
            "it is not a stuck saga (it is {status}), so there is nothing to {}",
            action.as_str()
        ),
        (SagaError::NotFound { .. }, _) => {
            return CliError::Read(InspectError::UnknownRun {
                database: database.to_owned(),
                run: run.to_owned(),
            });
        }
        _ => error.to_string(),
    };
    CliError::Refused {
        database: database.to_owned(),
        run: run.to_owned(),
        message,
    }
}

/// `sagaflow signal RUN NAME JSON`.
pub(crate) async fn signal(
    target: &Target,
    run_id: &str,
    name: &str,
    payload: &str,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let value: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| CliError::BadJson {
            run: run_id.to_owned(),
            name: name.to_owned(),
            message: e.to_string(),
        })?;
    let db = target.inspect().await?;
    let database = db.database().to_owned();
    let run = db.run(run_id).await?;
    drop(db);
    let store = target.store(&database).await?;
    let id = RunId::from(run_id);
    // Stored as compact JSON, as `Engine::signal` stores a payload.
    let json = value.to_string();
    let delivered = store
        .deliver_signal(&id, name, &json)
        .await
        .map_err(|e| CliError::Write {
            database: database.clone(),
            message: e.to_string(),
        })?;
    if !delivered {
        return Err(CliError::Refused {
            database,
            run: run_id.to_owned(),
            message: format!(
                "it had a signal `{name}` already (the first delivery wins): nothing changed"
            ),
        });
    }
    if out.json {
        return render::json(
            w,
            &json!({"run_id": run_id, "signal": name, "delivered": true}),
        );
    }
    let note = if run.finished() {
        format!(" (the run has {}: nothing will read it)", run.status)
    } else {
        String::new()
    };
    writeln!(w, "delivered signal `{name}` to run `{run_id}`{note}")?;
    Ok(())
}
