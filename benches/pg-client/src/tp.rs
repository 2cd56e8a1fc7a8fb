//! tokio-postgres, on one connection of its own and through deadpool-postgres.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::{try_join_all, try_join4};
use tokio::sync::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::Result;
use crate::group::{BatchWriter, Write};
use crate::schema::{BUMP, BUMP_UNNEST, INSERT, UPSERT, UPSERT_UNNEST, next_step};

/// The connection's settings: `synchronous_commit = off` when `durable` is false.
pub(crate) fn config(url: &str, durable: bool) -> Result<Config> {
    let mut config: Config = url.parse()?;
    if !durable {
        config.options("-c synchronous_commit=off");
    }
    Ok(config)
}

/// One connection; its driver runs on a task of its own, as tokio-postgres asks.
pub(crate) async fn connect(config: &Config) -> Result<Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("a tokio-postgres connection ended: {error}");
        }
    });
    Ok(client)
}

/// The three statements, prepared once (named) on one connection.
#[derive(Clone)]
pub(crate) struct Prepared {
    upsert: Statement,
    bump: Statement,
    insert: Statement,
}

impl Prepared {
    pub(crate) async fn on(client: &Client) -> Result<Self> {
        Ok(Self {
            upsert: client.prepare(UPSERT).await?,
            bump: client.prepare(BUMP).await?,
            insert: client.prepare(INSERT).await?,
        })
    }
}

fn one_row(run: &str, updated: u64) -> Result<()> {
    if updated == 1 {
        Ok(())
    } else {
        Err(format!("run {run}: the checkpoint's UPDATE changed {updated} rows, not 1").into())
    }
}

/// tokio-postgres on one connection of its own, prepared statements.
pub(crate) struct Single {
    client: Mutex<Client>,
    prepared: Prepared,
}

impl Single {
    pub(crate) async fn connect(config: &Config) -> Result<Self> {
        let client = connect(config).await?;
        let prepared = Prepared::on(&client).await?;
        Ok(Self {
            client: Mutex::new(client),
            prepared,
        })
    }

    /// BEGIN; upsert; update; COMMIT: four round trips, through `Client::transaction`.
    pub(crate) async fn checkpoint(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        tx.execute(&self.prepared.upsert, &[&run, &step, &output])
            .await?;
        one_row(run, tx.execute(&self.prepared.bump, &[&run, &step]).await?)?;
        tx.commit().await?;
        Ok(())
    }

    /// The same four statements sent at once and awaited together: one round trip. If the
    /// upsert or the update fails the transaction is aborted and the server answers COMMIT with
    /// ROLLBACK, so nothing is half written; the error comes back from `try_join4`.
    pub(crate) async fn checkpoint_pipelined(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        let client = self.client.lock().await;
        let (_, _, updated, _) = try_join4(
            client.batch_execute("BEGIN"),
            client.execute(&self.prepared.upsert, &[&run, &step, &output]),
            client.execute(&self.prepared.bump, &[&run, &step]),
            client.batch_execute("COMMIT"),
        )
        .await?;
        one_row(run, updated)
    }

    /// The checkpoint with unnamed statements whose parameter types are given
    /// (`execute_typed`): what works through PgBouncer in transaction mode.
    pub(crate) async fn checkpoint_unnamed(&self, run: &str) -> Result<()> {
        let mut client = self.client.lock().await;
        checkpoint_unnamed(&mut client, run).await
    }

    /// The single-row INSERT, autocommit.
    pub(crate) async fn insert(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        let client = self.client.lock().await;
        client
            .execute(&self.prepared.insert, &[&run, &step, &output])
            .await?;
        Ok(())
    }
}

/// The checkpoint with `execute_typed`: no named statement, one round trip a statement.
pub(crate) async fn checkpoint_unnamed(client: &mut Client, run: &str) -> Result<()> {
    let (step, output) = next_step();
    let tx = client.transaction().await?;
    tx.execute_typed(
        UPSERT,
        &[
            (&run, Type::TEXT),
            (&step, Type::TEXT),
            (&output, Type::TEXT),
        ],
    )
    .await?;
    one_row(
        run,
        tx.execute_typed(BUMP, &[(&run, Type::TEXT), (&step, Type::TEXT)])
            .await?,
    )?;
    tx.commit().await?;
    Ok(())
}

/// The single-row INSERT with `execute_typed`.
pub(crate) async fn insert_unnamed(client: &Client, run: &str) -> Result<()> {
    let (step, output) = next_step();
    client
        .execute_typed(
            INSERT,
            &[
                (&run, Type::TEXT),
                (&step, Type::TEXT),
                (&output, Type::TEXT),
            ],
        )
        .await?;
    Ok(())
}

/// Many tasks on one shared `Client`: tokio-postgres pipelines their statements on the one
/// connection. Only autocommit statements can share it this way: a transaction needs the
/// connection to itself.
pub(crate) struct Shared {
    client: Client,
    prepared: Prepared,
}

impl Shared {
    pub(crate) async fn connect(config: &Config) -> Result<Self> {
        let client = connect(config).await?;
        let prepared = Prepared::on(&client).await?;
        Ok(Self { client, prepared })
    }

    pub(crate) async fn insert(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        self.client
            .execute(&self.prepared.insert, &[&run, &step, &output])
            .await?;
        Ok(())
    }
}

/// tokio-postgres through deadpool-postgres: a pool of `size`, `prepare_cached` statements, the
/// `Fast` recycling (no query when a connection goes back to the pool).
pub(crate) struct Deadpool {
    pool: Pool,
}

impl Deadpool {
    pub(crate) fn new(config: Config, size: usize) -> Result<Self> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = Manager::from_config(config, NoTls, manager_config);
        Ok(Self {
            pool: Pool::builder(manager).max_size(size).build()?,
        })
    }

    pub(crate) async fn checkpoint(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        let mut client = self.pool.get().await?;
        let upsert = client.prepare_cached(UPSERT).await?;
        let bump = client.prepare_cached(BUMP).await?;
        let tx = client.transaction().await?;
        tx.execute(&upsert, &[&run, &step, &output]).await?;
        one_row(run, tx.execute(&bump, &[&run, &step]).await?)?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn insert(&self, run: &str) -> Result<()> {
        let (step, output) = next_step();
        let client = self.pool.get().await?;
        let insert = client.prepare_cached(INSERT).await?;
        client.execute(&insert, &[&run, &step, &output]).await?;
        Ok(())
    }

    /// The checkpoint with `execute_typed` on a pooled connection (PgBouncer-safe).
    pub(crate) async fn checkpoint_unnamed(&self, run: &str) -> Result<()> {
        let mut client = self.pool.get().await?;
        checkpoint_unnamed(&mut client, run).await
    }
}

/// The group-commit writer on one tokio-postgres connection: BEGIN, the batch, COMMIT.
/// `unnest` false: two statements a queued write, all of them pipelined at once; true: the
/// whole batch as two statements over arrays.
pub(crate) struct GroupWriter {
    client: Client,
    prepared: Prepared,
    upsert_unnest: Statement,
    bump_unnest: Statement,
    unnest: bool,
}

impl GroupWriter {
    pub(crate) async fn connect(config: &Config, unnest: bool) -> Result<Self> {
        let client = connect(config).await?;
        let prepared = Prepared::on(&client).await?;
        let upsert_unnest = client.prepare(UPSERT_UNNEST).await?;
        let bump_unnest = client.prepare(BUMP_UNNEST).await?;
        Ok(Self {
            client,
            prepared,
            upsert_unnest,
            bump_unnest,
            unnest,
        })
    }
}

impl BatchWriter for GroupWriter {
    async fn commit(&mut self, batch: &[Write]) -> Result<()> {
        let tx = self.client.transaction().await?;
        if self.unnest {
            let runs: Vec<&str> = batch.iter().map(|w| w.run.as_str()).collect();
            let steps: Vec<&str> = batch.iter().map(|w| w.step.as_str()).collect();
            let outputs: Vec<&str> = batch.iter().map(|w| w.output.as_str()).collect();
            tx.execute(&self.upsert_unnest, &[&runs, &steps, &outputs])
                .await?;
            let updated = tx.execute(&self.bump_unnest, &[&runs, &steps]).await?;
            if updated != batch.len() as u64 {
                return Err(format!("a batch of {} updated {updated} runs", batch.len()).into());
            }
        } else {
            let upserts = batch.iter().map(|w| {
                let params: [&(dyn ToSql + Sync); 3] = [&w.run, &w.step, &w.output];
                let tx = &tx;
                let statement = &self.prepared.upsert;
                async move { tx.execute(statement, &params).await }
            });
            let bumps = batch.iter().map(|w| {
                let params: [&(dyn ToSql + Sync); 2] = [&w.run, &w.step];
                let tx = &tx;
                let statement = &self.prepared.bump;
                async move { tx.execute(statement, &params).await.map(|n| (n, &w.run)) }
            });
            let (_, updated) =
                futures_util::future::try_join(try_join_all(upserts), try_join_all(bumps)).await?;
            for (n, run) in updated {
                one_row(run, n)?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
