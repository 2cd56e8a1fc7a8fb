//! A soak under a retention policy: many runs through an engine whose automatic policy keeps
//! the newest finished runs, and the database's size at checkpoints, to show it level off.
//!
//! `cargo bench --bench retention` (not a criterion bench: it prints one line per checkpoint).
//! Settings from the environment: `SAGAFLOW_SOAK_STORE` (`sqlite`, default, or `postgres`,
//! the server from `SAGAFLOW_PG_URL`), `SAGAFLOW_SOAK_RUNS` (1,000,000), `SAGAFLOW_SOAK_EVERY`
//! (a checkpoint every this many runs, a tenth of the runs by default), `SAGAFLOW_SOAK_KEEP`
//! (finished runs the policy keeps, 20,000). Figures in `benches/README.md`.
//!
//! Size: on SQLite, the file's and its WAL's bytes, with the pages on the freelist (free
//! pages are used again by later writes; the file does not shrink). On PostgreSQL, the sum of
//! `pg_total_relation_size` over the schema's tables (with their indexes and TOAST): dead rows
//! take room until autovacuum marks it free for new rows. A server with `autovacuum = off`
//! (the local test server is so) never marks it: the bench then runs a plain `VACUUM` of the
//! schema's tables every 10,000 runs in its stead, and says so.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow::StepOptions;
use sagaflow::runtime::retention::RetentionPolicy;
use sagaflow::runtime::{Builder, Definition, Engine, StepError, Store};
use sagaflow_postgres::{PgOptions, PgStore};

/// Runs started at once.
const WAVE: usize = 200;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

/// Three steps, each with an output of about 100 bytes.
fn order() -> Definition<u64, String> {
    let mut b = Builder::<u64>::new("Order");
    let input = b.input();
    let reserve = b.step("reserve", StepOptions::new(), (input,), |_, (n,)| {
        let n = *n;
        async move {
            Ok::<_, StepError>(format!(
                "reserved item {n:>12} for the order; {}",
                "x".repeat(60)
            ))
        }
    });
    let charge = b.step("charge", StepOptions::new(), (reserve,), |_, (r,)| {
        let r = r.len();
        async move { Ok::<_, StepError>(format!("charged {r:>6} cents; {}", "y".repeat(80))) }
    });
    let ship = b.step("ship", StepOptions::new(), (charge,), |_, (c,)| {
        let c = c.len();
        async move { Ok::<_, StepError>(format!("shipped {c:>6}; {}", "z".repeat(88))) }
    });
    b.build_with_output(ship)
}

enum Measured {
    Sqlite(std::path::PathBuf),
    Postgres {
        client: tokio_postgres::Client,
        schema: String,
    },
}

impl Measured {
    /// On a server whose autovacuum is off, what it would do: a plain `VACUUM` of the schema's
    /// tables (which marks dead rows' room free for new rows, and shrinks nothing).
    async fn vacuum(&self) {
        if let Measured::Postgres { client, schema } = self {
            client
                .batch_execute(&format!(
                    "VACUUM \"{schema}\".runs, \"{schema}\".events, \"{schema}\".signals"
                ))
                .await
                .unwrap();
        }
    }

    /// Whether the server runs autovacuum (a file always reuses its free pages).
    async fn autovacuums(&self) -> bool {
        match self {
            Measured::Sqlite(_) => true,
            Measured::Postgres { client, .. } => {
                let row = client.query_one("SHOW autovacuum", &[]).await.unwrap();
                row.get::<_, String>(0) == "on"
            }
        }
    }

    /// Bytes, and a note on free room.
    async fn size(&self) -> (u64, String) {
        match self {
            Measured::Sqlite(path) => {
                let file = std::fs::metadata(path).map_or(0, |m| m.len());
                let wal = std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
                let conn = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                let pages: i64 = conn
                    .query_row("PRAGMA page_count", [], |r| r.get(0))
                    .unwrap();
                let free: i64 = conn
                    .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                    .unwrap();
                (
                    file + wal,
                    format!("file {file} B, WAL {wal} B, pages {pages}, free pages {free}"),
                )
            }
            Measured::Postgres { client, schema } => {
                let row = client
                    .query_one(
                        "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint,
                                COALESCE(sum(s.n_dead_tup), 0)::bigint
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                         WHERE n.nspname = $1 AND c.relkind = 'r'",
                        &[schema],
                    )
                    .await
                    .unwrap();
                let (bytes, dead): (i64, i64) = (row.get(0), row.get(1));
                (bytes.cast_unsigned(), format!("dead tuples {dead}"))
            }
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(soak());
}

async fn soak() {
    let runs = setting("SAGAFLOW_SOAK_RUNS", 1_000_000);
    let every = setting("SAGAFLOW_SOAK_EVERY", (runs / 10).max(1));
    let keep = setting("SAGAFLOW_SOAK_KEEP", 20_000);
    let on_pg = std::env::var("SAGAFLOW_SOAK_STORE").is_ok_and(|s| s == "postgres");
    let dir = tempfile::tempdir().unwrap();
    let (store, measured): (Arc<dyn Store>, Measured) = if on_pg {
        let url = std::env::var("SAGAFLOW_PG_URL").unwrap_or_else(|_| {
            "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned()
        });
        let schema = format!("soak_{}", std::process::id());
        let store = PgStore::connect(&url, PgOptions::default().schema(schema.as_str()))
            .await
            .unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        (Arc::new(store), Measured::Postgres { client, schema })
    } else {
        let path = dir.path().join("soak.db");
        let options = sagaflow::SqliteOptions::default().synchronous(sagaflow::Synchronous::Normal);
        let store = sagaflow::SqliteStore::open(&path, options).unwrap();
        (Arc::new(store), Measured::Sqlite(path))
    };
    let policy = RetentionPolicy::new()
        .keep(keep as u64)
        .every(Duration::from_millis(250));
    let engine = Engine::builder().store(store).retention(policy).build();
    let def = order();
    println!(
        "retention soak on {}: {runs} runs (3 steps, ~100-byte outputs), {WAVE} at once, \
         the newest {keep} finished runs kept, a pass every 250 ms",
        if on_pg {
            "PostgreSQL"
        } else {
            "SQLite (synchronous NORMAL)"
        }
    );
    let vacuum_by_hand = !measured.autovacuums().await;
    if vacuum_by_hand {
        println!(
            "the server's autovacuum is off: a plain VACUUM every 10000 runs stands in for it"
        );
    }
    let began = Instant::now();
    let mut done = 0;
    while done < runs {
        let wave = WAVE.min(runs - done);
        let handles = futures::future::join_all((done..done + wave).map(|i| {
            let (engine, def) = (engine.clone(), def.clone());
            async move {
                engine
                    .start(&def, format!("order-{i}"), i as u64)
                    .await
                    .unwrap()
            }
        }))
        .await;
        for handle in handles {
            handle.wait().await.unwrap();
        }
        done += wave;
        if vacuum_by_hand && done % 10_000 == 0 {
            measured.vacuum().await;
        }
        if done % every == 0 || done == runs {
            let (bytes, note) = measured.size().await;
            println!(
                "{done:>9} runs  {:>7.1} s  {:>8.1} MiB  ({note})",
                began.elapsed().as_secs_f64(),
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
    engine.shutdown(Duration::from_secs(5)).await;
    if let Measured::Postgres { client, schema } = &measured {
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    }
}
