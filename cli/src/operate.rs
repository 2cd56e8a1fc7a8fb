//! The commands that write: `retry`, `skip`, `abandon`, `cancel` (saga requests) and
//! `signal`. Each checks the file read-only first (so that a missing file is not created and
//! a foreign database is not migrated), then writes through `SqliteStore` and the saga
//! request API: the request is a durable signal that the process running the saga acts on.

use std::io::Write;
use std::path::Path;

use sagaflow_core::runtime::{RunId, SignalStore};
use sagaflow_saga::SagaError;
use sagaflow_saga::requests::{self, OperatorAction};
use sagaflow_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

use crate::commands::Out;
use crate::db::{self, Db, InspectError};
use crate::error::CliError;
use crate::render;

/// What to ask of a saga.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ask {
    Operator(OperatorAction),
    Cancel,
}

fn store(path: &Path) -> Result<SqliteStore, CliError> {
    SqliteStore::open(path, SqliteOptions::default()).map_err(|e| CliError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(CliError::Io)?;
    Ok(runtime.block_on(future))
}

/// `sagaflow retry|skip|abandon|cancel RUN`. A round's id stands for its saga.
pub(crate) fn request(
    path: &Path,
    run_id: &str,
    ask: Ask,
    out: &Out,
    w: &mut impl Write,
) -> Result<(), CliError> {
    let db = Db::open(path)?;
    let run = db.run(run_id)?;
    let saga_id = db::saga_of(&run);
    if let Ask::Cancel = ask {
        let forward = db.run(&saga_id)?;
        if forward.finished() || forward.status == "parked" {
            return Err(CliError::Refused {
                path: path.to_owned(),
                run: saga_id,
                message: format!("it is {}, there is nothing to cancel", forward.status),
            });
        }
    }
    drop(db);
    let store = store(path)?;
    let id = RunId::from(saga_id.as_str());
    let made = block_on(async {
        match ask {
            Ask::Operator(action) => requests::request(&store, &id, action).await,
            Ask::Cancel => requests::request_cancel(&store, &id).await,
        }
    })?;
    let made = made.map_err(|e| refused(path, &saga_id, ask, e))?;
    let verb = match ask {
        Ask::Operator(action) => action.as_str(),
        Ask::Cancel => "cancel",
    };
    if !made {
        return Err(CliError::Refused {
            path: path.to_owned(),
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

fn refused(path: &Path, run: &str, ask: Ask, error: SagaError) -> CliError {
    let message = match (&error, ask) {
        (SagaError::NotStuck { status, .. }, Ask::Operator(action)) => format!(
            "it is not a stuck saga (it is {status}), so there is nothing to {}",
            action.as_str()
        ),
        (SagaError::NotFound { .. }, _) => {
            return CliError::Read(InspectError::UnknownRun {
                database: path.display().to_string(),
                run: run.to_owned(),
            });
        }
        _ => error.to_string(),
    };
    CliError::Refused {
        path: path.to_owned(),
        run: run.to_owned(),
        message,
    }
}

/// `sagaflow signal RUN NAME JSON`.
pub(crate) fn signal(
    path: &Path,
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
    let db = Db::open(path)?;
    let run = db.run(run_id)?;
    drop(db);
    let store = store(path)?;
    let id = RunId::from(run_id);
    // Stored as compact JSON, as `Engine::signal` stores a payload.
    let json = value.to_string();
    let delivered =
        block_on(store.deliver_signal(&id, name, &json))?.map_err(|e| CliError::Write {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if !delivered {
        return Err(CliError::Refused {
            path: path.to_owned(),
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
