//! What is checked rather than timed: LISTEN/NOTIFY with each client, and which ways of sending
//! statements survive PgBouncer in transaction mode.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::Result;
use crate::measure::{Op, op};
use crate::{sqlx08, sqlx09, tp};

/// Tasks, and checkpoints per task, of each PgBouncer check; run ids `bouncer-{i}`.
pub(crate) const BOUNCER_TASKS: usize = 8;
pub(crate) const BOUNCER_ROUNDS: usize = 25;

/// LISTEN on one tokio-postgres connection, whose messages are read with
/// `Connection::poll_message`; NOTIFY from another; the notification must come back.
pub(crate) async fn tokio_postgres_listen_notify(config: &Config, channel: &str) -> Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notes, mut received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if notes.send(note).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    eprintln!("the listening connection ended: {error}");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    let sender = tp::connect(config).await?;
    let payload = "tokio-postgres-payload";
    sender
        .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await?;
    let note = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .map_err(|_| format!("no notification on {channel} within 5 s"))?
        .ok_or("the listening connection ended before the notification")?;
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

/// A `Single`'s worth of tokio-postgres connections, each task its own, so that PgBouncer
/// hands each client's transactions to whichever server connection is free.
struct TpClients {
    clients: Vec<tp::Single>,
}

impl TpClients {
    fn pick(&self, run: &str) -> &tp::Single {
        let i = run
            .trim_start_matches("bouncer-")
            .parse::<usize>()
            .unwrap_or(0);
        &self.clients[i % self.clients.len()]
    }
    async fn checkpoint(&self, run: &str) -> Result<()> {
        self.pick(run).checkpoint(run).await
    }
    async fn checkpoint_unnamed(&self, run: &str) -> Result<()> {
        self.pick(run).checkpoint_unnamed(run).await
    }
    async fn insert(&self, run: &str) -> Result<()> {
        self.pick(run).insert(run).await
    }
}

/// An unnamed autocommit INSERT on a shared client.
struct TpUnnamedInsert {
    clients: Vec<tokio_postgres::Client>,
}

impl TpUnnamedInsert {
    async fn insert(&self, run: &str) -> Result<()> {
        let i = run
            .trim_start_matches("bouncer-")
            .parse::<usize>()
            .unwrap_or(0);
        tp::insert_unnamed(&self.clients[i % self.clients.len()], run).await
    }
}

/// An error and its sources: tokio-postgres's own message is only "db error".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text += &format!(": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Waits at most 10 s for `future`.
async fn within<T>(what: &str, future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .map_err(|_| format!("{what}: no answer within 10 s"))?
}

/// `url` with its database replaced by `sagaflow_mode{k}`. `run.sh`'s PgBouncer sends every
/// database name to the server's `test`, each name with a pool of its own: the statements one
/// mode leaves prepared on the server connections cannot trouble the next mode.
fn mode_url(url: &str, k: usize) -> Result<String> {
    let (base, _) = url
        .rsplit_once('/')
        .ok_or_else(|| format!("{url}: no database name"))?;
    Ok(format!("{base}/sagaflow_mode{k}"))
}

/// `BOUNCER_TASKS` tasks, each `BOUNCER_ROUNDS` checkpoints (and as many bare inserts) through
/// PgBouncer (transaction mode, fewer server connections than clients), for each mode; a mode
/// passes if every transaction commits. Returns one line per mode.
pub(crate) async fn through_pgbouncer(url: &str) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut report = |label: &str, outcome: String| {
        let line = format!("{label}: {outcome}");
        eprintln!("  {line}");
        lines.push(line);
    };
    let tp_clients = |k: usize| async move {
        let config: Config = mode_url(url, k)?.parse()?;
        within("tokio-postgres connect and prepare", async {
            let mut clients = Vec::new();
            for _ in 0..BOUNCER_TASKS {
                clients.push(tp::Single::connect(&config).await?);
            }
            Ok(Arc::new(TpClients { clients }))
        })
        .await
    };

    match tp_clients(0).await {
        Ok(named) => report(
            "tokio-postgres, prepared (named) statements",
            both(&op!(named, checkpoint), &op!(named, insert)).await,
        ),
        Err(error) => report(
            "tokio-postgres, prepared (named) statements",
            format!("FAIL ({})", chain(&*error)),
        ),
    }
    match tp_clients(1).await {
        Ok(unnamed) => report(
            "tokio-postgres, `execute_typed` (unnamed statements)",
            format!(
                "checkpoint {}",
                hammer(&op!(unnamed, checkpoint_unnamed)).await
            ),
        ),
        Err(error) => report(
            "tokio-postgres, `execute_typed`",
            format!("FAIL ({})", chain(&*error)),
        ),
    }
    let config: Config = mode_url(url, 2)?.parse()?;
    let unnamed = within("tokio-postgres connect", async {
        let mut clients = Vec::new();
        for _ in 0..BOUNCER_TASKS {
            clients.push(tp::connect(&config).await?);
        }
        Ok(Arc::new(TpUnnamedInsert { clients }))
    })
    .await?;
    report(
        "tokio-postgres, `execute_typed` (unnamed statements)",
        format!("autocommit INSERT {}", hammer(&op!(unnamed, insert)).await),
    );
    let deadpool = Arc::new(tp::Deadpool::new(
        mode_url(url, 3)?.parse()?,
        BOUNCER_TASKS,
    )?);
    report(
        "deadpool-postgres, `prepare_cached`",
        both(&op!(deadpool, checkpoint), &op!(deadpool, insert)).await,
    );
    let deadpool = Arc::new(tp::Deadpool::new(
        mode_url(url, 4)?.parse()?,
        BOUNCER_TASKS,
    )?);
    report(
        "deadpool-postgres, `execute_typed`",
        format!(
            "checkpoint {}",
            hammer(&op!(deadpool, checkpoint_unnamed)).await
        ),
    );

    let size = u32::try_from(BOUNCER_TASKS)?;
    let ways = [
        ("statement cache on (the default)", true, true),
        ("`statement_cache_capacity(0)`", false, true),
        ("`.persistent(false)` on every query", true, false),
    ];
    for (i, (way, cache, persistent)) in ways.into_iter().enumerate() {
        let label = format!("sqlx 0.8, {way}");
        let options = sqlx08::Options {
            cache,
            persistent,
            ..sqlx08::Options::defaults(size)
        };
        match within(
            "sqlx 0.8 connect",
            sqlx08::Sqlx::connect(&mode_url(url, 5 + i)?, options),
        )
        .await
        {
            Ok(pool) => {
                let pool = Arc::new(pool);
                report(
                    &label,
                    both(&op!(pool, checkpoint), &op!(pool, insert)).await,
                );
                pool.close().await;
            }
            Err(error) => report(&label, format!("FAIL ({})", chain(&*error))),
        }
    }
    for (i, (way, cache, persistent)) in ways.into_iter().enumerate() {
        let label = format!("sqlx 0.9, {way}");
        let options = sqlx09::Options {
            cache,
            persistent,
            ..sqlx09::Options::defaults(size)
        };
        match within(
            "sqlx 0.9 connect",
            sqlx09::Sqlx::connect(&mode_url(url, 8 + i)?, options),
        )
        .await
        {
            Ok(pool) => {
                let pool = Arc::new(pool);
                report(
                    &label,
                    both(&op!(pool, checkpoint), &op!(pool, insert)).await,
                );
                pool.close().await;
            }
            Err(error) => report(&label, format!("FAIL ({})", chain(&*error))),
        }
    }
    Ok(lines)
}

/// The checkpoint, then the autocommit INSERT.
async fn both(checkpoint: &Op, insert: &Op) -> String {
    format!(
        "checkpoint {}; autocommit INSERT {}",
        hammer(checkpoint).await,
        hammer(insert).await
    )
}

/// Runs `op` `BOUNCER_ROUNDS` times on each of `BOUNCER_TASKS` tasks at once; "ok (N)" or the
/// first error and how many succeeded.
async fn hammer(op: &Op) -> String {
    let tasks: Vec<_> = (0..BOUNCER_TASKS)
        .map(|i| {
            let op = Arc::clone(op);
            tokio::spawn(async move {
                let run: Arc<str> = Arc::from(format!("bouncer-{i}"));
                let mut done = 0;
                for _ in 0..BOUNCER_ROUNDS {
                    match tokio::time::timeout(Duration::from_secs(10), op(Arc::clone(&run))).await
                    {
                        Ok(Ok(())) => done += 1,
                        Ok(Err(error)) => return (done, Some(chain(&*error))),
                        Err(_) => return (done, Some("timed out after 10 s".to_owned())),
                    }
                }
                (done, None)
            })
        })
        .collect();
    let mut done = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok((n, error)) => {
                done += n;
                if first_error.is_none() {
                    first_error = error;
                }
            }
            Err(error) => first_error = first_error.or(Some(error.to_string())),
        }
    }
    match first_error {
        None => format!("ok ({done} of {})", BOUNCER_TASKS * BOUNCER_ROUNDS),
        Some(error) => format!(
            "FAIL ({done} of {} committed; first error: {error})",
            BOUNCER_TASKS * BOUNCER_ROUNDS
        ),
    }
}
