//! The database as the commands see it: where it is (a SQLite file, or a schema on a
//! PostgreSQL server), read through the store-neutral [`Inspect`] capability (each store crate
//! implements it read-only, and is the one place that knows its tables), written through the
//! store and the saga request API; and what makes a run part of a saga, by the saga crate's
//! own naming rules. No SQL here.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use sagaflow_core::runtime::store::inspect::{
    EventRow, Inspect, InspectError, Run, Step,
};
use sagaflow_core::runtime::{RunId, Store};
use sagaflow_postgres::inspect::PgInspector;
use sagaflow_postgres::{PgOptions, PgStore};
use sagaflow_saga::naming;
use sagaflow_sqlite::inspect::Inspector;
use sagaflow_sqlite::{SqliteOptions, SqliteStore};

use crate::error::CliError;

/// A database, whichever store wrote it.
pub(crate) type Db = dyn Inspect;

/// Where the database is: `--db` (or `SAGAFLOW_DB`) names a file, or a PostgreSQL server by
/// a URL that starts with `postgres://` or `postgresql://`; then `--schema` (or
/// `SAGAFLOW_SCHEMA`) names the schema, `sagaflow` by default, as `PgOptions` has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A SQLite file.
    File(PathBuf),
    /// A schema on a PostgreSQL server.
    Postgres {
        /// The server's URL, password included (never printed: errors name the URL without
        /// it).
        url: String,
        /// The schema sagaflow's tables are in.
        schema: String,
    },
}

impl Target {
    /// The database `db` names, with the schema `schema` for a server.
    pub(crate) fn new(db: PathBuf, schema: Option<String>) -> Result<Target, CliError> {
        let url = db
            .to_str()
            .filter(|text| text.starts_with("postgres://") || text.starts_with("postgresql://"));
        match (url, schema) {
            (Some(url), schema) => Ok(Target::Postgres {
                url: url.to_owned(),
                schema: schema.unwrap_or_else(|| PgOptions::default().schema),
            }),
            (None, None) => Ok(Target::File(db)),
            (None, Some(schema)) => Err(CliError::Usage(format!(
                "--schema `{schema}` (or SAGAFLOW_SCHEMA) names a PostgreSQL schema, but `{}` is \
                 a file: leave it out, or pass --db postgres://...",
                db.display()
            ))),
        }
    }

    /// The database, opened read-only: a file is not created, a schema not made, a foreign
    /// database not migrated.
    pub(crate) async fn inspect(&self) -> Result<Box<Db>, CliError> {
        Ok(match self {
            Target::File(path) => Box::new(Inspector::open(path)?),
            Target::Postgres { url, schema } => Box::new(PgInspector::connect(url, schema).await?),
        })
    }

    /// The store, to write through; `database` names it in errors. Open it only once
    /// [`inspect`](Self::inspect) has found a sagaflow database there: opening a store creates
    /// and migrates.
    pub(crate) async fn store(&self, database: &str) -> Result<Arc<dyn Store>, CliError> {
        let failed = |message: String| CliError::Write {
            database: database.to_owned(),
            message,
        };
        Ok(match self {
            Target::File(path) => Arc::new(
                SqliteStore::open(path, SqliteOptions::default())
                    .map_err(|e| failed(e.to_string()))?,
            ),
            Target::Postgres { url, schema } => {
                let options = PgOptions::default().schema(schema.as_str()).pool_size(1);
                Arc::new(
                    PgStore::connect(url, options)
                        .await
                        .map_err(|e| failed(e.to_string()))?,
                )
            }
        })
    }
}

/// The compensation rounds of saga run `run_id` (its round 1, 2, ...), oldest first.
pub(crate) async fn rounds(db: &Db, run_id: &str) -> Result<Vec<Run>, InspectError> {
    let saga = RunId::from(run_id);
    let mut rounds = Vec::new();
    for number in 1.. {
        match db.run(naming::round_id(&saga, number).as_str()).await {
            Ok(run) => rounds.push(run),
            Err(InspectError::UnknownRun { .. }) => break,
            Err(other) => return Err(other),
        }
    }
    Ok(rounds)
}

/// The rounds that ran the abandoning step: sagas an operator gave up on.
pub(crate) async fn abandoned_rounds(db: &Db) -> Result<HashSet<String>, InspectError> {
    Ok(db
        .runs_with_step(naming::ABANDON_STEP)
        .await?
        .into_iter()
        .collect())
}

/// The rounds of `run` among `by_id`, oldest first.
pub(crate) fn rounds_of<'a>(run: &Run, by_id: &HashMap<&str, &'a Run>) -> Vec<&'a Run> {
    let saga = RunId::from(run.run_id.as_str());
    (1..)
        .map_while(|n| by_id.get(naming::round_id(&saga, n).as_str()).copied())
        .collect()
}

/// The saga run a round belongs to; any other run stands for itself.
pub(crate) fn saga_of(run: &Run) -> String {
    match naming::saga_of_round(&RunId::from(run.run_id.as_str())) {
        Some(saga) if is_round(run) => saga.as_str().to_owned(),
        _ => run.run_id.clone(),
    }
}

/// The runs by id, for looking rounds up.
pub(crate) fn by_id(runs: &[Run]) -> HashMap<&str, &Run> {
    runs.iter().map(|r| (r.run_id.as_str(), r)).collect()
}

/// Whether `run` is a saga's compensation round.
pub(crate) fn is_round(run: &Run) -> bool {
    naming::is_round(&run.workflow, &run.run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_a_server_and_anything_else_a_file() {
        let target = |db: &str, schema: Option<&str>| {
            Target::new(PathBuf::from(db), schema.map(str::to_owned))
        };
        assert_eq!(
            target("postgres://app:pw@db/orders", None).ok(),
            Some(Target::Postgres {
                url: "postgres://app:pw@db/orders".to_owned(),
                schema: "sagaflow".to_owned(),
            })
        );
        assert_eq!(
            target("postgresql://db/orders", Some("billing")).ok(),
            Some(Target::Postgres {
                url: "postgresql://db/orders".to_owned(),
                schema: "billing".to_owned(),
            })
        );
        assert_eq!(
            target("./postgres://x.db", None).ok(),
            Some(Target::File(PathBuf::from("./postgres://x.db")))
        );
        assert_eq!(
            target("service.db", None).ok(),
            Some(Target::File(PathBuf::from("service.db")))
        );
        let refused = target("service.db", Some("billing")).err();
        assert!(
            matches!(&refused, Some(CliError::Usage(m)) if m.contains("`service.db` is a file")),
            "{refused:?}"
        );
    }
}
