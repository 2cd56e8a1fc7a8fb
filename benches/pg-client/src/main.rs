//! Issue 13: which async PostgreSQL client sagaflow should use, by measurement. tokio-postgres
//! (on one connection, and pooled by deadpool-postgres) against sqlx 0.8 and 0.9 (`PgPool`), on
//! the durable checkpoint's transaction and a bare INSERT, one caller and 100 tasks, beside
//! pgbench running the same statements; all alternated in one run, so the ratios hold even
//! when the machine is shared. Creates its own tables and drops them at the end.
//!
//! ```sh
//! cd benches/pg-client && cargo run --release   # ~3 min; markdown tables on stdout
//! ```
//!
//! `SAGAFLOW_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`) names the server;
//! `SAGAFLOW_PGBOUNCER_URL`, when set, a PgBouncer in transaction mode in front of it (see
//! `run.sh`); `SAGAFLOW_PG_BENCH_SCALE` (default 1) scales every timed length, for a quick try;
//! `SAGAFLOW_PG_CHECKS_ONLY` set runs the LISTEN/NOTIFY and PgBouncer checks alone.

mod checks;
mod group;
mod measure;
mod pgbench;
mod schema;
mod sqlx08;
mod sqlx09;
mod tp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use measure::{Cell, Concurrent, Group, Sequential, Shape, Unit, op, table};
use schema::TASKS;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The pool size of every pooled contender (and of pgbench's many-client runs).
const POOL: usize = 16;

struct Lengths {
    seq: Duration,
    seq_rounds: usize,
    conc: Duration,
    conc_rounds: usize,
    warmup: Duration,
    pgbench_insert: u32,
    pgbench_checkpoint: u32,
}

impl Lengths {
    fn scaled(scale: f64) -> Self {
        let ms = |ms: f64| Duration::from_secs_f64(ms * scale / 1000.0);
        let secs = |s: f64| ((s * scale).round() as u32).max(1);
        Self {
            seq: ms(250.0),
            seq_rounds: 12,
            conc: ms(750.0),
            conc_rounds: 6,
            warmup: ms(200.0),
            pgbench_insert: secs(10.0),
            pgbench_checkpoint: secs(5.0),
        }
    }
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let url = std::env::var("SAGAFLOW_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let bouncer = std::env::var("SAGAFLOW_PGBOUNCER_URL").ok();
    let scale = match std::env::var("SAGAFLOW_PG_BENCH_SCALE") {
        Ok(s) => s
            .parse::<f64>()
            .map_err(|e| format!("SAGAFLOW_PG_BENCH_SCALE={s}: {e}"))?,
        Err(_) => 1.0,
    };
    let lengths = Lengths::scaled(scale);
    let started = Instant::now();

    let durable = tp::config(&url, true)?;
    let admin = tp::connect(&durable).await?;
    println!("{}", machine(&admin).await?);
    schema::create(&admin).await?;

    let outcome = measure_all(&url, bouncer.as_deref(), &lengths).await;
    // The tables go whatever happened.
    let dropped = schema::drop_all(&admin).await;
    let report = outcome?;
    dropped?;
    println!("{report}");
    println!(
        "Whole run: {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    Ok(())
}

/// Every phase; returns the report.
async fn measure_all(url: &str, bouncer: Option<&str>, lengths: &Lengths) -> Result<String> {
    let mut report = String::new();
    let durable = tp::config(url, true)?;

    eprintln!("LISTEN/NOTIFY …");
    checks::tokio_postgres_listen_notify(&durable, "sagaflow_pgc_tp").await?;
    let listen08 = sqlx08::Sqlx::connect(url, sqlx08::Options::defaults(2)).await?;
    listen08.listen_notify("sagaflow_pgc_sqlx08").await?;
    listen08.close().await;
    let listen09 = sqlx09::Sqlx::connect(url, sqlx09::Options::defaults(2)).await?;
    listen09.listen_notify("sagaflow_pgc_sqlx09").await?;
    listen09.close().await;
    report += "LISTEN/NOTIFY: a notification sent with pg_notify came back with its payload on \
               tokio-postgres (`Connection::poll_message`), sqlx 0.8 and sqlx 0.9 (`PgListener`).\n\n";
    if std::env::var_os("SAGAFLOW_PG_CHECKS_ONLY").is_some() {
        if let Some(bouncer) = bouncer {
            report += &through_pgbouncer(bouncer).await?;
        }
        return Ok(report);
    }

    eprintln!("pgbench …");
    let scripts = pgbench::Scripts::write()?;
    let floors = pgbench_all(&scripts, url, lengths).await;
    scripts.remove();
    let floors = floors?;
    let pgbench_checkpoints = floors
        .iter()
        .filter(|(s, _)| matches!(s, pgbench::Script::Checkpoint))
        .map(|(_, o)| o.transactions)
        .sum();
    let pgbench_inserts = floors
        .iter()
        .filter(|(s, _)| matches!(s, pgbench::Script::Insert))
        .map(|(_, o)| o.transactions)
        .sum();

    eprintln!("one caller, synchronous_commit = on …");
    report += &sequential(url, true, lengths, &floors).await?;
    eprintln!("one caller, synchronous_commit = off …");
    report += &sequential(url, false, lengths, &floors).await?;

    eprintln!("{TASKS} tasks …");
    report += &concurrent(url, lengths, &floors).await?;
    report += "**pgbench (libpq), the same statements, `-M prepared`, one run each:**\n\n| command | transactions/s | latency average |\n| --- | --- | --- |\n";
    for (_, o) in &floors {
        report += &format!(
            "| `{}` | {:.0} | {:.0} µs |\n",
            o.command,
            o.tps,
            o.latency_ms * 1000.0
        );
    }
    report += "\n";

    if let Some(bouncer) = bouncer {
        report += &through_pgbouncer(bouncer).await?;
    }

    let admin = tp::connect(&durable).await?;
    report += &format!(
        "Check: {}.\n\n",
        schema::verify(&admin, pgbench_checkpoints, pgbench_inserts).await?
    );
    Ok(report)
}

async fn through_pgbouncer(bouncer: &str) -> Result<String> {
    eprintln!("PgBouncer (transaction mode) …");
    let mut report = format!(
        "**Through PgBouncer in transaction mode** ({} tasks at once, {} transactions each, on \
         fewer server connections than clients):\n\n",
        checks::BOUNCER_TASKS,
        checks::BOUNCER_ROUNDS
    );
    for line in checks::through_pgbouncer(bouncer).await? {
        report += &format!("- {line}\n");
    }
    Ok(report + "\n")
}

/// One caller, one transaction after the other.
async fn sequential(
    url: &str,
    sync_on: bool,
    lengths: &Lengths,
    floors: &[(pgbench::Script, pgbench::Outcome)],
) -> Result<String> {
    let config = tp::config(url, sync_on)?;
    let single = Arc::new(tp::Single::connect(&config).await?);
    let deadpool = Arc::new(tp::Deadpool::new(config.clone(), POOL)?);
    let size = POOL as u32;
    let base08 = sqlx08::Options {
        durable: sync_on,
        ..sqlx08::Options::defaults(size)
    };
    let base09 = sqlx09::Options {
        durable: sync_on,
        ..sqlx09::Options::defaults(size)
    };
    let sqlx08 = Arc::new(sqlx08::Sqlx::connect(url, base08).await?);
    let sqlx09 = Arc::new(sqlx09::Sqlx::connect(url, base09).await?);

    let held08 = Arc::new(sqlx08::Held::connect(url, base08).await?);
    let held09 = Arc::new(sqlx09::Held::connect(url, base09).await?);
    let noping = Arc::new(
        sqlx08::Sqlx::connect(
            url,
            sqlx08::Options {
                ping: false,
                ..base08
            },
        )
        .await?,
    );

    let seq = |label: &str, shape, op| -> Box<dyn Cell> {
        Box::new(Sequential {
            label: label.to_owned(),
            shape,
            op,
        })
    };
    // Cells 0–7: both settings of synchronous_commit; 8–15: `on` only.
    let mut cells: Vec<Box<dyn Cell>> = vec![
        seq(
            "tokio-postgres, one connection",
            Shape::Checkpoint,
            op!(single, checkpoint),
        ),
        seq(
            "tokio-postgres, one connection, the 4 statements pipelined",
            Shape::Checkpoint,
            op!(single, checkpoint_pipelined),
        ),
        seq(
            "sqlx 0.8, one `PgConnection` (no pool)",
            Shape::Checkpoint,
            op!(held08, checkpoint),
        ),
        seq(
            "sqlx 0.9, one `PgConnection` (no pool)",
            Shape::Checkpoint,
            op!(held09, checkpoint),
        ),
        seq(
            "tokio-postgres + deadpool-postgres (16)",
            Shape::Checkpoint,
            op!(deadpool, checkpoint),
        ),
        seq(
            "sqlx 0.8 PgPool (16)",
            Shape::Checkpoint,
            op!(sqlx08, checkpoint),
        ),
        seq(
            "sqlx 0.8 PgPool (16), `test_before_acquire(false)`",
            Shape::Checkpoint,
            op!(noping, checkpoint),
        ),
        seq(
            "sqlx 0.9 PgPool (16)",
            Shape::Checkpoint,
            op!(sqlx09, checkpoint),
        ),
    ];
    let mut extra08 = vec![noping];
    let mut extra09 = Vec::new();
    if sync_on {
        let unnamed08 = Arc::new(
            sqlx08::Sqlx::connect(
                url,
                sqlx08::Options {
                    persistent: false,
                    ..base08
                },
            )
            .await?,
        );
        let unnamed09 = Arc::new(
            sqlx09::Sqlx::connect(
                url,
                sqlx09::Options {
                    cache: false,
                    ..base09
                },
            )
            .await?,
        );
        cells.push(seq(
            "tokio-postgres, one connection, `execute_typed` (unnamed)",
            Shape::Checkpoint,
            op!(single, checkpoint_unnamed),
        ));
        cells.push(seq(
            "sqlx 0.8 PgPool (16), `.persistent(false)` (unnamed)",
            Shape::Checkpoint,
            op!(unnamed08, checkpoint),
        ));
        cells.push(seq(
            "sqlx 0.9 PgPool (16), statement cache 0 (unnamed)",
            Shape::Checkpoint,
            op!(unnamed09, checkpoint),
        ));
        cells.push(seq(
            "tokio-postgres, one connection",
            Shape::Insert,
            op!(single, insert),
        ));
        cells.push(seq(
            "tokio-postgres + deadpool-postgres (16)",
            Shape::Insert,
            op!(deadpool, insert),
        ));
        cells.push(seq(
            "sqlx 0.8 PgPool (16)",
            Shape::Insert,
            op!(sqlx08, insert),
        ));
        cells.push(seq(
            "sqlx 0.9 PgPool (16)",
            Shape::Insert,
            op!(sqlx09, insert),
        ));
        extra08.push(unnamed08);
        extra09.push(unnamed09);
    }
    let samples =
        measure::rounds(&mut cells, lengths.seq_rounds, lengths.seq, lengths.warmup).await?;
    let labels: Vec<String> = cells.iter().map(|c| c.label().to_owned()).collect();
    let rounds = format!(
        "{} rounds of {:.2} s a contender",
        lengths.seq_rounds,
        lengths.seq.as_secs_f64()
    );
    let mut out = String::new();
    if sync_on {
        out += &table(
            &format!(
                "One caller: the checkpoint (BEGIN; upsert; update; COMMIT), synchronous_commit = on ({rounds})"
            ),
            Unit::MicrosPerTx,
            &labels,
            &samples,
            &[0, 1, 8, 2, 3, 4, 5, 6, 9, 7, 10],
            0,
            &one_client_floor(floors, pgbench::Script::Checkpoint),
        );
        out += "\n";
        out += &table(
            &format!(
                "One caller: the single-row INSERT, autocommit, synchronous_commit = on ({rounds})"
            ),
            Unit::MicrosPerTx,
            &labels,
            &samples,
            &[11, 12, 13, 14],
            11,
            &one_client_floor(floors, pgbench::Script::Insert),
        );
    } else {
        out += &table(
            &format!(
                "One caller: the checkpoint, synchronous_commit = off: no wait for the WAL flush, so the client's own cost shows ({rounds})"
            ),
            Unit::MicrosPerTx,
            &labels,
            &samples,
            &[0, 1, 2, 3, 4, 5, 6, 7],
            0,
            &[],
        );
    }
    out += "\n";
    drop(cells);
    sqlx08.close().await;
    sqlx09.close().await;
    for pool in extra08 {
        pool.close().await;
    }
    for pool in extra09 {
        pool.close().await;
    }
    Ok(out)
}

/// pgbench's one-client figure for `script`, as µs per transaction.
fn one_client_floor(
    floors: &[(pgbench::Script, pgbench::Outcome)],
    script: pgbench::Script,
) -> Vec<(String, f64)> {
    floors
        .iter()
        .filter(|(s, o)| *s == script && o.command.contains("-c 1 "))
        .map(|(_, o)| (format!("`{}`", o.command), 1e6 / o.tps))
        .collect()
}

async fn pgbench_all(
    scripts: &pgbench::Scripts,
    url: &str,
    lengths: &Lengths,
) -> Result<Vec<(pgbench::Script, pgbench::Outcome)>> {
    use pgbench::Script::{Checkpoint, Insert};
    let mut floors = Vec::new();
    for (script, clients, jobs, seconds) in [
        (Insert, 1, 1, lengths.pgbench_insert),
        (Insert, POOL, 2, lengths.pgbench_insert),
        (Checkpoint, 1, 1, lengths.pgbench_checkpoint),
        (Checkpoint, POOL, 2, lengths.pgbench_checkpoint),
    ] {
        let outcome = scripts.run(url, script, clients, jobs, seconds).await?;
        eprintln!("  {}: {:.0} tps", outcome.command, outcome.tps);
        floors.push((script, outcome));
    }
    Ok(floors)
}

/// 100 tasks: pooled, pipelined on one connection, group commit.
async fn concurrent(
    url: &str,
    lengths: &Lengths,
    floors: &[(pgbench::Script, pgbench::Outcome)],
) -> Result<String> {
    let config = tp::config(url, true)?;
    let size = POOL as u32;
    let deadpool = Arc::new(tp::Deadpool::new(config.clone(), POOL)?);
    let sqlx08 = Arc::new(sqlx08::Sqlx::connect(url, sqlx08::Options::defaults(size)).await?);
    let sqlx09 = Arc::new(sqlx09::Sqlx::connect(url, sqlx09::Options::defaults(size)).await?);
    let shared = Arc::new(tp::Shared::connect(&config).await?);
    // Each group writer on a pool of its own, so the pools of 16 keep all 16.
    let writers08 = sqlx08::Sqlx::connect(url, sqlx08::Options::defaults(2)).await?;
    let writers09 = sqlx09::Sqlx::connect(url, sqlx09::Options::defaults(2)).await?;

    let conc = |label: &str, shape, op| -> Box<dyn Cell> {
        Box::new(Concurrent {
            label: label.to_owned(),
            shape,
            op,
            tasks: TASKS,
        })
    };
    let mut cells: Vec<Box<dyn Cell>> = vec![
        conc(
            "tokio-postgres + deadpool-postgres (16)",
            Shape::Checkpoint,
            op!(deadpool, checkpoint),
        ),
        conc(
            "sqlx 0.8 PgPool (16)",
            Shape::Checkpoint,
            op!(sqlx08, checkpoint),
        ),
        conc(
            "sqlx 0.9 PgPool (16)",
            Shape::Checkpoint,
            op!(sqlx09, checkpoint),
        ),
        Box::new(Group {
            label: "group commit, tokio-postgres, 2 statements a write, pipelined".into(),
            writer: tp::GroupWriter::connect(&config, false).await?,
            tasks: TASKS,
        }),
        Box::new(Group {
            label: "group commit, tokio-postgres, UNNEST (2 statements a batch)".into(),
            writer: tp::GroupWriter::connect(&config, true).await?,
            tasks: TASKS,
        }),
        Box::new(Group {
            label: "group commit, sqlx 0.8, 2 statements a write".into(),
            writer: writers08.writer(false).await?,
            tasks: TASKS,
        }),
        Box::new(Group {
            label: "group commit, sqlx 0.8, UNNEST".into(),
            writer: writers08.writer(true).await?,
            tasks: TASKS,
        }),
        Box::new(Group {
            label: "group commit, sqlx 0.9, 2 statements a write".into(),
            writer: writers09.writer(false).await?,
            tasks: TASKS,
        }),
        Box::new(Group {
            label: "group commit, sqlx 0.9, UNNEST".into(),
            writer: writers09.writer(true).await?,
            tasks: TASKS,
        }),
        conc(
            "tokio-postgres + deadpool-postgres (16)",
            Shape::Insert,
            op!(deadpool, insert),
        ),
        conc("sqlx 0.8 PgPool (16)", Shape::Insert, op!(sqlx08, insert)),
        conc("sqlx 0.9 PgPool (16)", Shape::Insert, op!(sqlx09, insert)),
        conc(
            "tokio-postgres, one shared connection, pipelined",
            Shape::Insert,
            op!(shared, insert),
        ),
    ];
    let samples = measure::rounds(
        &mut cells,
        lengths.conc_rounds,
        lengths.conc,
        lengths.warmup,
    )
    .await?;
    let labels: Vec<String> = cells.iter().map(|c| c.label().to_owned()).collect();
    let rounds = format!(
        "{} rounds of {:.2} s a contender",
        lengths.conc_rounds,
        lengths.conc.as_secs_f64()
    );
    let floor = |script: pgbench::Script, clients: &str| -> Vec<(String, f64)> {
        floors
            .iter()
            .filter(|(s, o)| *s == script && o.command.contains(clients))
            .map(|(_, o)| (format!("`{}`", o.command), o.tps))
            .collect()
    };
    let mut out = table(
        &format!("{TASKS} tasks: the checkpoint ({rounds})"),
        Unit::TxPerSec,
        &labels,
        &samples,
        &[0, 1, 2, 3, 4, 5, 6, 7, 8],
        0,
        &floor(pgbench::Script::Checkpoint, "-c 16"),
    );
    out += "\n";
    out += &table(
        &format!("{TASKS} tasks: the single-row INSERT, autocommit ({rounds})"),
        Unit::TxPerSec,
        &labels,
        &samples,
        &[9, 10, 11, 12],
        9,
        &[
            floor(pgbench::Script::Insert, "-c 16"),
            floor(pgbench::Script::Insert, "-c 1 "),
        ]
        .concat(),
    );
    out += "\n";
    // The group writers hold a connection each: `close` waits for every connection to return.
    drop(cells);
    sqlx08.close().await;
    sqlx09.close().await;
    writers08.close().await;
    writers09.close().await;
    Ok(out)
}

/// The machine and the server, as the README's section records them.
async fn machine(admin: &tokio_postgres::Client) -> Result<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "shared_buffers",
        "max_connections",
    ] {
        let row = admin.query_one(&format!("SHOW {name}"), &[]).await?;
        settings.push(format!("{name} = {}", row.get::<_, String>(0)));
    }
    Ok(format!(
        "Machine: nproc = {cores}; CPU: {model}; load average at the start: {}\nPostgreSQL: {}\n",
        loadavg(),
        settings.join(", ")
    ))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
