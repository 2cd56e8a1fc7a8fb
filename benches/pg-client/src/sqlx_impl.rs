//! One sqlx contender, compiled once for each sqlx line (`sqlx08.rs`, `sqlx09.rs` name it by
//! `#[path]`, each with its own `sqlx`): the same code against both versions.

use std::time::Duration;

use super::sqlx;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};
use tokio::sync::Mutex;

use crate::Result;
use crate::group::{BatchWriter, Write};
use crate::schema::{BUMP, BUMP_UNNEST, INSERT, UPSERT, UPSERT_UNNEST, next_step};

/// How the pool and its connections are set up. sqlx's defaults: `ping` and `cache` true.
#[derive(Clone, Copy)]
pub(crate) struct Options {
    /// `synchronous_commit = off` when false.
    pub(crate) durable: bool,
    /// `test_before_acquire`: a round trip to check a connection each time it is taken.
    pub(crate) ping: bool,
    /// The prepared-statement cache (`statement_cache_capacity(0)` when false). sqlx 0.9 then
    /// sends unnamed statements; sqlx 0.8 still names each one and prepares it anew every time.
    pub(crate) cache: bool,
    /// `Query::persistent`: false sends every statement unnamed, on both lines.
    pub(crate) persistent: bool,
    pub(crate) size: u32,
}

impl Options {
    pub(crate) fn defaults(size: u32) -> Self {
        Self {
            durable: true,
            ping: true,
            cache: true,
            persistent: true,
            size,
        }
    }
}

/// A `PgPool` and the statements it sends through `sqlx::query` (prepared and cached unless the
/// cache is off).
pub(crate) struct Sqlx {
    pool: PgPool,
    persistent: bool,
}

fn one_row(run: &str, updated: u64) -> Result<()> {
    if updated == 1 {
        Ok(())
    } else {
        Err(format!("run {run}: the checkpoint's UPDATE changed {updated} rows, not 1").into())
    }
}

fn connect_options(url: &str, options: Options) -> Result<PgConnectOptions> {
    let mut connect: PgConnectOptions = url.parse()?;
    if !options.durable {
        connect = connect.options([("synchronous_commit", "off")]);
    }
    if !options.cache {
        connect = connect.statement_cache_capacity(0);
    }
    Ok(connect)
}

/// One `PgConnection` of its own, no pool: the driver alone, beside tokio-postgres's one
/// connection. (A pooled connection costs more: sqlx pings it when it is taken, unless
/// `test_before_acquire(false)`, and always when it goes back, on a task it spawns.)
pub(crate) struct Held {
    conn: Mutex<PgConnection>,
}

impl Held {
    pub(crate) async fn connect(url: &str, options: Options) -> Result<Self> {
        let conn = PgConnection::connect_with(&connect_options(url, options)?).await?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) async fn checkpoint(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        let mut conn = self.conn.lock().await;
        let mut tx = conn.begin().await?;
        sqlx::query(UPSERT)
            .bind(run)
            .bind(&step)
            .bind(&output)
            .execute(&mut *tx)
            .await?;
        let bumped = sqlx::query(BUMP)
            .bind(run)
            .bind(&step)
            .execute(&mut *tx)
            .await?;
        one_row(run, bumped.rows_affected())?;
        tx.commit().await?;
        Ok(())
    }
}

impl Sqlx {
    pub(crate) async fn connect(url: &str, options: Options) -> Result<Self> {
        let connect = connect_options(url, options)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.size)
            .test_before_acquire(options.ping)
            .connect_with(connect)
            .await?;
        Ok(Self {
            pool,
            persistent: options.persistent,
        })
    }

    /// BEGIN; upsert; update; COMMIT on a connection taken from the pool.
    pub(crate) async fn checkpoint(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        let mut tx = self.pool.begin().await?;
        sqlx::query(UPSERT)
            .persistent(self.persistent)
            .bind(run)
            .bind(&step)
            .bind(&output)
            .execute(&mut *tx)
            .await?;
        let bumped = sqlx::query(BUMP)
            .persistent(self.persistent)
            .bind(run)
            .bind(&step)
            .execute(&mut *tx)
            .await?;
        one_row(run, bumped.rows_affected())?;
        tx.commit().await?;
        Ok(())
    }

    /// The single-row INSERT, autocommit, on the pool.
    pub(crate) async fn insert(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        sqlx::query(INSERT)
            .persistent(self.persistent)
            .bind(run)
            .bind(&step)
            .bind(&output)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A connection of the pool for a group-commit writer.
    pub(crate) async fn writer(&self, unnest: bool) -> Result<GroupWriter> {
        Ok(GroupWriter {
            conn: self.pool.acquire().await?,
            unnest,
            persistent: self.persistent,
        })
    }

    /// LISTEN on a `PgListener` made from the pool, NOTIFY through the pool, and wait for the
    /// notification to come back with its payload.
    pub(crate) async fn listen_notify(&self, channel: &str) -> Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(channel).await?;
        let payload = "sqlx-payload";
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .map_err(|_| format!("no notification on {channel} within 5 s"))??;
        if note.channel() != channel || note.payload() != payload {
            return Err(format!(
                "notification {}/{} on {channel}",
                note.channel(),
                note.payload()
            )
            .into());
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// The group-commit writer on one pooled sqlx connection: BEGIN, the batch, COMMIT. sqlx sends
/// one statement at a time on a connection, so `unnest` false costs two round trips a write.
pub(crate) struct GroupWriter {
    conn: PoolConnection<Postgres>,
    unnest: bool,
    persistent: bool,
}

impl BatchWriter for GroupWriter {
    async fn commit(&mut self, batch: &[Write]) -> Result<()> {
        let mut tx = self.conn.begin().await?;
        if self.unnest {
            let runs: Vec<&str> = batch.iter().map(|w| w.run.as_str()).collect();
            let steps: Vec<&str> = batch.iter().map(|w| w.step.as_str()).collect();
            let outputs: Vec<&str> = batch.iter().map(|w| w.output.as_str()).collect();
            sqlx::query(UPSERT_UNNEST)
                .persistent(self.persistent)
                .bind(&runs)
                .bind(&steps)
                .bind(&outputs)
                .execute(&mut *tx)
                .await?;
            let bumped = sqlx::query(BUMP_UNNEST)
                .persistent(self.persistent)
                .bind(&runs)
                .bind(&steps)
                .execute(&mut *tx)
                .await?;
            if bumped.rows_affected() != batch.len() as u64 {
                return Err(format!(
                    "a batch of {} updated {} runs",
                    batch.len(),
                    bumped.rows_affected()
                )
                .into());
            }
        } else {
            for w in batch {
                sqlx::query(UPSERT)
                    .persistent(self.persistent)
                    .bind(&w.run)
                    .bind(&w.step)
                    .bind(&w.output)
                    .execute(&mut *tx)
                    .await?;
                let bumped = sqlx::query(BUMP)
                    .persistent(self.persistent)
                    .bind(&w.run)
                    .bind(&w.step)
                    .execute(&mut *tx)
                    .await?;
                one_row(&w.run, bumped.rows_affected())?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
