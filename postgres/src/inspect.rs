//! Reading a sagaflow schema read-only, as tools do (the `sagaflow` command line on a
//! `postgres://` URL): a [`PgInspector`] creates nothing, migrates nothing and takes no lease;
//! its session is read-only (`default_transaction_read_only`), so the server refuses any write.
//! Each read is one statement, one snapshot: replicas may write meanwhile, and the next read
//! sees their commits.
//!
//! It reads the schema as its version says (`schema_version`), and refuses one that is newer
//! than this sagaflow, one that does not exist and one without sagaflow's tables, naming the
//! server by its URL without the password (and the schema, where it is not the default). With
//! the store, this is the one place that knows the tables.
//!
//! ```no_run
//! use sagaflow_core::runtime::store::inspect::Inspect as _;
//! use sagaflow_postgres::inspect::PgInspector;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let db = PgInspector::connect("postgres://postgres@127.0.0.1:5432/test", "sagaflow").await?;
//! for run in db.runs().await? {
//!     println!("{} {} {}", run.run_id, run.workflow, run.status);
//! }
//! # Ok(())
//! # }
//! ```

use sagaflow_core::runtime::error::StoreError;
use sagaflow_core::runtime::store::inspect::{
    EventRow, Inspect, InspectError, Machine, Run, Step, Transition, json_or_text,
};
use sagaflow_core::runtime::store::replicas::Replicas;
use sagaflow_core::runtime::store::{QueueStanding, Queues};
use tokio_postgres::{Client, Row};

use crate::error::describe;
use crate::schema::SCHEMA_VERSION;
use crate::session::{Param, Session};
use crate::{COMMITTED_WAIT, PgOptions, connect, options};

/// A sagaflow schema on a PostgreSQL server, opened read-only.
pub struct PgInspector {
    client: Client,
    /// How statements go: read-only transactions of their own behind a pooler.
    session: Session,
    /// The server's URL without its password, and the schema where it is not the default.
    database: String,
    /// The schema's version: from 7 its log is numbered by transaction, so that a reader
    /// reads only below the horizon (see `reads::events`); from 8 queued runs keep their start.
    version: i64,
}

impl std::fmt::Debug for PgInspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgInspector")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// A store error (from parsing the URL, connecting) as the inspector's.
fn from_store(database: &str, error: StoreError) -> InspectError {
    match error {
        StoreError::Open { path, message } => InspectError::Backend {
            database: path,
            message,
        },
        other => InspectError::Backend {
            database: database.to_owned(),
            message: other.to_string(),
        },
    }
}

impl PgInspector {
    /// Connects to the server at `url` (a URL or key=value pairs, as
    /// [`PgStore::connect`](crate::PgStore::connect) takes) in a read-only session, and checks
    /// that `schema` holds sagaflow's tables at a version this code reads.
    ///
    /// Errors: [`InspectError::Backend`] for a URL that does not parse, a server that cannot
    /// be reached or a schema name sagaflow does not use; [`InspectError::NotSagaflow`] for a
    /// schema that does not exist or has no sagaflow tables; [`InspectError::TooNew`] for one
    /// written by a newer sagaflow. Each names the URL without its password.
    pub async fn connect(url: &str, schema: &str) -> Result<PgInspector, InspectError> {
        let config = options::parse(url).map_err(|e| from_store(url, e))?;
        let label = options::label(&config);
        let default = PgOptions::default();
        let database = if schema == default.schema {
            label
        } else {
            format!("{label} (schema {schema})")
        };
        options::check_schema(&database, schema).map_err(|e| from_store(&database, e))?;
        let mut config = config;
        if config.get_application_name().is_none() {
            config.application_name("sagaflow inspect");
        }
        let options = default.schema(schema);
        let mut config = connect::configure(config, &options);
        let session = Session::read_only(&config, &options);
        if !session.pooled() {
            let read_only = match config.get_options() {
                Some(set) => format!("{set} -c default_transaction_read_only=on"),
                None => "-c default_transaction_read_only=on".to_owned(),
            };
            config.options(read_only);
        }
        let client = connect::connect(&config, &database)
            .await
            .map_err(|e| from_store(&database, e))?;
        let mut inspector = PgInspector {
            client,
            session,
            database,
            version: 0,
        };
        inspector.version = inspector.check_schema(schema).await?;
        Ok(inspector)
    }

    /// Refuses a schema that does not exist, has no sagaflow tables, or is newer than this
    /// code; returns its version.
    async fn check_schema(&self, schema: &str) -> Result<i64, InspectError> {
        let found = self
            .one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
                 to_regclass(format('%I.schema_version', $1)) IS NOT NULL, \
                 (SELECT count(*) FROM pg_class c \
                  JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE n.nspname = $1 AND c.relname IN ('runs', 'steps', 'events') \
                  AND c.relkind IN ('r', 'v'))",
                &[&schema],
            )
            .await?;
        let (exists, versioned, tables): (bool, bool, i64) =
            (found.get(0), found.get(1), found.get(2));
        let not_sagaflow = |reason: String| InspectError::NotSagaflow {
            database: self.database.clone(),
            reason,
        };
        if !exists {
            return Err(not_sagaflow(format!("no schema `{schema}`")));
        }
        if !versioned {
            return Err(not_sagaflow(format!(
                "schema `{schema}` has no sagaflow tables"
            )));
        }
        // `compatible_from` by name, if it is there: a schema no code with the window has
        // migrated lacks it, and this reader must not add it.
        let found = self
            .one(
                "SELECT version, COALESCE((to_jsonb(v) ->> 'compatible_from')::bigint, 0) \
                 FROM schema_version v",
                &[],
            )
            .await?;
        let (version, compatible_from): (i64, i64) = (found.get(0), found.get(1));
        if version > SCHEMA_VERSION && !(1..=SCHEMA_VERSION).contains(&compatible_from) {
            return Err(InspectError::TooNew {
                database: self.database.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 || tables != 3 {
            return Err(not_sagaflow(format!(
                "schema `{schema}` at version {version}, without sagaflow's tables"
            )));
        }
        Ok(version)
    }

    fn err(&self, error: &tokio_postgres::Error) -> InspectError {
        InspectError::Backend {
            database: self.database.clone(),
            message: describe(error),
        }
    }

    async fn query(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<Row>, InspectError> {
        self.session
            .on(&self.client)
            .query(sql, params)
            .await
            .map_err(|e| self.err(&e))
    }

    /// Waits until every event of `run_ids` committed before the call is below the horizon
    /// (the transactions that took lower numbers ended), up to [`COMMITTED_WAIT`], as the
    /// store's own read of the log does: a run that another replica just ended shows its last
    /// events at once, not a moment later.
    async fn settle(&self, run_ids: &[String]) -> Result<(), InspectError> {
        let deadline = tokio::time::Instant::now() + COMMITTED_WAIT;
        loop {
            let row = self
                .opt(
                    "SELECT readable_below(), COALESCE(max(seq), 0) FROM events \
                     WHERE run_id = ANY($1)",
                    &[&run_ids],
                )
                .await?;
            let (horizon, latest) = row.map_or((0, 0), |row| (row.get::<_, i64>(0), row.get(1)));
            if horizon > latest || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    async fn opt(&self, sql: &str, params: &[&dyn Param]) -> Result<Option<Row>, InspectError> {
        self.session
            .on(&self.client)
            .query_opt(sql, params)
            .await
            .map_err(|e| self.err(&e))
    }

    async fn one(&self, sql: &str, params: &[&dyn Param]) -> Result<Row, InspectError> {
        self.session
            .on(&self.client)
            .query_one(sql, params)
            .await
            .map_err(|e| self.err(&e))
    }
}

const RUN: &str =
    "SELECT run_id, workflow, status, error, created_at, updated_at, parked FROM runs";
const STEP: &str =
    "SELECT name, status, attempts, error, started_at, finished_at, run_id FROM steps";
/// A run's graph: in its own row if the code before schema 11 created it, else stored once
/// for its workflow and fingerprint in `graphs`.
const GRAPH_SQL: &str = "SELECT COALESCE(r.graph, g.graph) FROM runs r \
     LEFT JOIN graphs g ON g.workflow = r.workflow AND g.fingerprint = r.graph_fingerprint \
     WHERE r.run_id = $1";
const MACHINE: &str =
    "SELECT machine_id, machine, state, version, created_at, updated_at FROM machines";

fn run_of(row: &Row) -> Run {
    let status: String = row.get(2);
    let parked: bool = row.get(6);
    Run {
        run_id: row.get(0),
        workflow: row.get(1),
        status: if status == "running" && parked {
            "parked".to_owned()
        } else {
            status
        },
        error: row.get(3),
        created_at: row.get(4),
        updated_at: row.get(5),
    }
}

fn step_of(row: &Row) -> Step {
    Step {
        name: row.get(0),
        status: row.get(1),
        attempts: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
        error: row.get(3),
        started_at: row.get(4),
        finished_at: row.get(5),
    }
}

fn machine_of(row: &Row) -> Machine {
    Machine {
        machine_id: row.get(0),
        machine: row.get(1),
        state: json_or_text(row.get(2)),
        version: row.get(3),
        created_at: row.get(4),
        updated_at: row.get(5),
    }
}

/// Each read one statement. [`Inspect::check`] is not for a server: PostgreSQL checks its own
/// pages (data checksums, the `amcheck` extension), which sagaflow does not stand in for.
#[async_trait::async_trait]
impl Inspect for PgInspector {
    fn database(&self) -> &str {
        &self.database
    }

    async fn runs(&self) -> Result<Vec<Run>, InspectError> {
        let sql = format!("{RUN} ORDER BY created_at, created_seq");
        Ok(self.query(&sql, &[]).await?.iter().map(run_of).collect())
    }

    async fn run(&self, run_id: &str) -> Result<Run, InspectError> {
        let sql = format!("{RUN} WHERE run_id = $1");
        match self.opt(&sql, &[&run_id]).await? {
            Some(row) => Ok(run_of(&row)),
            None => Err(InspectError::UnknownRun {
                database: self.database.clone(),
                run: run_id.to_owned(),
            }),
        }
    }

    async fn steps(&self, run_id: &str) -> Result<Vec<Step>, InspectError> {
        let sql = format!("{STEP} WHERE run_id = $1 ORDER BY first_seq");
        Ok(self
            .query(&sql, &[&run_id])
            .await?
            .iter()
            .map(step_of)
            .collect())
    }

    async fn all_steps(&self) -> Result<Vec<(String, Step)>, InspectError> {
        let sql = format!("{STEP} ORDER BY first_seq");
        Ok(self
            .query(&sql, &[])
            .await?
            .iter()
            .map(|row| (row.get(6), step_of(row)))
            .collect())
    }

    async fn runs_with_step(&self, step: &str) -> Result<Vec<String>, InspectError> {
        Ok(self
            .query(
                "SELECT run_id FROM steps WHERE name = $1 ORDER BY first_seq",
                &[&step],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    async fn signal(&self, run_id: &str, name: &str) -> Result<Option<String>, InspectError> {
        Ok(self
            .opt(
                "SELECT payload FROM signals WHERE run_id = $1 AND name = $2",
                &[&run_id, &name],
            )
            .await?
            .map(|row| row.get(0)))
    }

    async fn events(&self, run_ids: &[String], after: i64) -> Result<Vec<EventRow>, InspectError> {
        if self.version >= 7 {
            self.settle(run_ids).await?;
        }
        // From version 10 a row may log the next step's start too (`next_step`), numbered one
        // past it: read as two events, and the row at `after` read for its start.
        let rows = self
            .query(
                if self.version >= 10 {
                    "SELECT seq, run_id, at, kind, step, attempt, detail, next_step FROM events \
                     WHERE run_id = ANY($1) AND seq >= $2 AND seq < readable_below() ORDER BY seq"
                } else if self.version >= 7 {
                    "SELECT seq, run_id, at, kind, step, attempt, detail, NULL::text FROM events \
                     WHERE run_id = ANY($1) AND seq > $2 AND seq < readable_below() ORDER BY seq"
                } else {
                    "SELECT seq, run_id, at, kind, step, attempt, detail, NULL::text FROM events \
                     WHERE run_id = ANY($1) AND seq > $2 ORDER BY seq"
                },
                &[&run_ids, &after],
            )
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = EventRow {
                seq: row.get(0),
                run_id: row.get(1),
                at: row.get(2),
                kind: row.get(3),
                step: row.get(4),
                attempt: row.get::<_, Option<i32>>(5).map(i64::from),
                detail: row.get::<_, Option<String>>(6).map(json_or_text),
            };
            let start = row
                .get::<_, Option<String>>(7)
                .map(|next| EventRow::started_in(&event, next));
            if event.seq > after {
                events.push(event);
            }
            events.extend(start);
        }
        Ok(events)
    }

    async fn graph(&self, run_id: &str) -> Result<Option<String>, InspectError> {
        Ok(self
            .opt(
                if self.version >= 11 {
                    GRAPH_SQL
                } else {
                    "SELECT graph FROM runs WHERE run_id = $1"
                },
                &[&run_id],
            )
            .await?
            .and_then(|row| row.get(0)))
    }

    async fn machines(&self) -> Result<Vec<Machine>, InspectError> {
        let sql = format!("{MACHINE} ORDER BY machine_id");
        Ok(self
            .query(&sql, &[])
            .await?
            .iter()
            .map(machine_of)
            .collect())
    }

    async fn machine(&self, id: &str) -> Result<Machine, InspectError> {
        let sql = format!("{MACHINE} WHERE machine_id = $1");
        match self.opt(&sql, &[&id]).await? {
            Some(row) => Ok(machine_of(&row)),
            None => Err(InspectError::UnknownMachine {
                database: self.database.clone(),
                machine: id.to_owned(),
            }),
        }
    }

    async fn transitions(&self, id: &str) -> Result<Vec<Transition>, InspectError> {
        let rows = self
            .query(
                "SELECT seq, from_state, event, to_state, at FROM machine_transitions \
                 WHERE machine_id = $1 ORDER BY seq",
                &[&id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Transition {
                seq: row.get(0),
                from: row.get(1),
                event: row.get(2),
                to: row.get(3),
                at: row.get(4),
            })
            .collect())
    }

    async fn replicas(&self) -> Result<Replicas, InspectError> {
        let (now, replicas, runs) = crate::replicas::read(self.session.on(&self.client))
            .await
            .map_err(|e| self.err(&e))?;
        Ok(Replicas {
            now,
            replicas,
            runs,
        })
    }

    async fn queues(&self) -> Result<Queues, InspectError> {
        let now: i64 = self.one("SELECT now_ms()", &[]).await?.get(0);
        // Queues came with version 6, a queued run's start with 8.
        if self.version < 6 {
            return Ok(Queues {
                now,
                queues: Vec::new(),
            });
        }
        let started = if self.version >= 8 {
            "started_at"
        } else {
            "NULL::bigint"
        };
        let sql = format!(
            "SELECT queue, \
                 count(*) FILTER (WHERE status = 'running' AND NOT parked \
                     AND (owner IS NULL OR lease_expires IS NULL OR lease_expires <= $1)), \
                 count(*) FILTER (WHERE status = 'running' AND NOT parked \
                     AND owner IS NOT NULL AND lease_expires > $1), \
                 count(*) FILTER (WHERE status = 'running' AND parked), \
                 min(created_at) FILTER (WHERE status = 'running' AND NOT parked \
                     AND (owner IS NULL OR lease_expires IS NULL OR lease_expires <= $1)), \
                 count(*) FILTER (WHERE {started} > $1 - 60000) \
             FROM runs WHERE queue IS NOT NULL AND (status = 'running' OR {started} > $1 - 60000) \
             GROUP BY queue ORDER BY queue"
        );
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let queues = self
            .query(&sql, &[&now])
            .await?
            .iter()
            .map(|row| QueueStanding {
                queue: row.get(0),
                waiting: count(row.get(1)),
                running: count(row.get(2)),
                parked: count(row.get(3)),
                oldest_waiting_at: row.get(4),
                started_last_minute: count(row.get(5)),
            })
            .collect();
        Ok(Queues { now, queues })
    }

    async fn check(&self) -> Result<Vec<String>, InspectError> {
        Err(InspectError::Unsupported {
            database: self.database.clone(),
            message: "looking for damage reads a SQLite file's pages (`PRAGMA integrity_check`); \
                      a PostgreSQL server checks its own: data checksums (`initdb \
                      --data-checksums`) and the amcheck extension (`verify_heapam`, \
                      `bt_index_check`)"
                .to_owned(),
        })
    }
}
