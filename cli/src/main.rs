//! The `sagaflow` command line: see, draw and operate the runs in a sagaflow database, a SQLite
//! file or a schema on a PostgreSQL server (`--db postgres://...`).
//!
//! The commands that only read open the database read-only, through the store-neutral read
//! capability each store crate implements (a service may be writing meanwhile: WAL on a
//! file, MVCC on a server, lets the reader see the last commit); the ones that write go
//! through the store, the saga request API and the retention policy (`prune`). No SQL here.
//! Exit codes: 0 done, 1 an error
//! (printed on stderr, naming the file or the server's URL without its password, and the run
//! or machine), 2 a command line that does not parse.

mod commands;
mod db;
mod draw;
mod error;
mod operate;
mod prune;
mod queues;
mod render;
mod replicas;
mod stats;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sagaflow_saga::OperatorAction;

use crate::commands::{Out, RunFilter};
use crate::db::Target;
use crate::draw::Format;
use crate::error::CliError;
use crate::operate::Ask;

/// See, draw and operate the runs, sagas and state machines in a sagaflow database: a SQLite
/// file, or a schema on a PostgreSQL server.
#[derive(Debug, Parser)]
#[command(name = "sagaflow", version, about, max_term_width = 100)]
struct Cli {
    /// The database: a SQLite file, or a PostgreSQL server's URL
    /// (`postgres://user:password@host:5432/db`; errors name it without the password).
    #[arg(long, env = "SAGAFLOW_DB", global = true, value_name = "FILE|URL")]
    db: Option<PathBuf>,
    /// On PostgreSQL, the schema sagaflow's tables are in [default: sagaflow].
    #[arg(long, env = "SAGAFLOW_SCHEMA", global = true, value_name = "SCHEMA")]
    schema: Option<String>,
    /// Print JSON (for scripts) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List runs, oldest first (a saga's compensation rounds are shown with `--all`).
    Runs {
        /// Only runs with this status (a saga's, or its forward run's).
        #[arg(long, value_parser = [
            "running", "completed", "failed", "cancelled", "parked",
            "compensating", "compensated", "stuck", "abandoned",
        ])]
        status: Option<String>,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only runs started since: a duration back from now (30s, 15m, 2h, 7d) or a UTC date
        /// or time (2026-11-21, 2026-11-21T12:00:00Z).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Also list compensation rounds (`RUN~undoN`).
        #[arg(long)]
        all: bool,
    },
    /// A run's steps with status, attempts, durations and errors; a saga's compensation rounds.
    Show {
        /// The run's id.
        run: String,
    },
    /// A run's event log (with its compensation rounds').
    Events {
        /// The run's id.
        run: String,
        /// Keep printing new events as they are committed, until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
    /// Draw a run's graph, each step with its status.
    Graph {
        /// The run's id.
        run: String,
        /// How to draw it.
        #[arg(long, value_enum, default_value = "ascii")]
        format: Format,
    },
    /// The replicas heard from: host, process, version, when last heard from, the runs each
    /// holds and the workflows it runs; and the runs waiting for a version no live replica
    /// runs.
    Replicas,
    /// The queues: what waits on each, what runs, how long the oldest has waited, the runs
    /// started in the last minute, and the bounds the live replicas serving it set.
    Queues,
    /// List persisted state machines.
    Machines,
    /// A state machine's state and transition log.
    Machine {
        /// The machine's id.
        id: String,
    },
    /// List stuck sagas: their latest compensation failed for good.
    Stuck,
    /// Ask the process running a stuck saga to run its compensations again from the stuck one.
    Retry {
        /// The saga run's id.
        run: String,
    },
    /// Ask the process running a stuck saga to leave the stuck compensation and run the rest.
    Skip {
        /// The saga run's id.
        run: String,
    },
    /// Ask the process running a stuck saga to give up on it: no further compensation.
    Abandon {
        /// The saga run's id.
        run: String,
    },
    /// Ask the process running a saga to cancel it (and so compensate what it did).
    Cancel {
        /// The saga run's id.
        run: String,
    },
    /// Deliver a signal to a run (a step waiting for it resumes).
    Signal {
        /// The run's id.
        run: String,
        /// The signal's name.
        name: String,
        /// The payload, as JSON (`true`, `"text"`, `{"by": "ana"}`).
        payload: String,
    },
    /// Look for damage in a SQLite file (`PRAGMA integrity_check`, read-only); exit code 1 if
    /// any.
    ///
    /// On PostgreSQL, an error: the server checks its own pages (data checksums, amcheck).
    Check,
    /// Delete finished runs (with their steps, events and signals) under a retention policy,
    /// in batches of short transactions.
    ///
    /// Never a running or parked run; a saga's run only together with its compensation rounds,
    /// once compensated (a stuck saga stays). A failed or cancelled run of a saga that has no
    /// compensation round yet stays if the database holds rounds of that saga or `--saga`
    /// names it.
    Prune {
        /// Only runs that finished longer ago than this (30s, 15m, 2h, 7d, 2w).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Keep the newest N finished runs (of the statuses pruned).
        #[arg(long, value_name = "N")]
        keep: Option<u64>,
        /// Only runs that ended so, comma-separated [default: completed,failed,cancelled].
        #[arg(long, value_delimiter = ',', value_parser = ["completed", "failed", "cancelled"])]
        status: Vec<String>,
        /// A workflow that is a saga's: its failed and cancelled runs stay until compensated
        /// (repeatable).
        #[arg(long = "saga", value_name = "WORKFLOW")]
        sagas: Vec<String>,
        /// Runs deleted per transaction.
        #[arg(long, default_value_t = 500, value_name = "N")]
        batch: usize,
        /// List what would be pruned; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Success rate and duration percentiles per workflow and per step.
    Stats {
        /// Only this workflow.
        #[arg(long)]
        workflow: Option<String>,
    },
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let target = Target::new(cli.db.ok_or(CliError::NoDatabase)?, cli.schema)?;
    let out = Out {
        json: cli.json,
        colour: !cli.json && render::colours(),
    };
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    match cli.command {
        Command::Runs {
            status,
            workflow,
            since,
            all,
        } => {
            let since = since
                .map(|t| render::parse_since(&t, render::now_ms()))
                .transpose()?;
            let filter = RunFilter {
                status,
                workflow,
                since,
                all,
            };
            commands::runs(&*target.inspect().await?, &filter, &out, &mut w).await
        }
        Command::Show { run } => {
            commands::show(&*target.inspect().await?, &run, &out, &mut w).await
        }
        Command::Events { run, follow } => {
            commands::events(&*target.inspect().await?, &run, follow, &out, &mut w).await
        }
        Command::Graph { run, format } => {
            let db = target.inspect().await?;
            commands::graph(&*db, &run, format, &out, &mut w, &mut std::io::stderr()).await
        }
        Command::Replicas => replicas::replicas(&*target.inspect().await?, &out, &mut w).await,
        Command::Queues => queues::queues(&*target.inspect().await?, &out, &mut w).await,
        Command::Machines => commands::machines(&*target.inspect().await?, &out, &mut w).await,
        Command::Machine { id } => {
            commands::machine(&*target.inspect().await?, &id, &out, &mut w).await
        }
        Command::Stuck => commands::stuck(&*target.inspect().await?, &out, &mut w).await,
        Command::Retry { run } => {
            let ask = Ask::Operator(OperatorAction::Retry);
            operate::request(&target, &run, ask, &out, &mut w).await
        }
        Command::Skip { run } => {
            let ask = Ask::Operator(OperatorAction::Skip);
            operate::request(&target, &run, ask, &out, &mut w).await
        }
        Command::Abandon { run } => {
            let ask = Ask::Operator(OperatorAction::Abandon);
            operate::request(&target, &run, ask, &out, &mut w).await
        }
        Command::Cancel { run } => operate::request(&target, &run, Ask::Cancel, &out, &mut w).await,
        Command::Signal { run, name, payload } => {
            operate::signal(&target, &run, &name, &payload, &out, &mut w).await
        }
        Command::Check => commands::check(&*target.inspect().await?, &out, &mut w).await,
        Command::Prune {
            older_than,
            keep,
            status,
            sagas,
            batch,
            dry_run,
        } => {
            let args = prune::PruneArgs {
                older_than,
                keep,
                statuses: status,
                sagas,
                batch,
                dry_run,
            };
            prune::prune(&target, &args, &out, &mut w).await
        }
        Command::Stats { workflow } => {
            stats::stats(&*target.inspect().await?, workflow.as_deref(), &out, &mut w).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: the commands read and write one thing at a time; the PostgreSQL client and
    // `events --follow` need its timers and sockets.
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Io)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `sagaflow runs | head`: the reader has gone, which is not an error.
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "sagaflow: {error}");
            ExitCode::FAILURE
        }
    }
}
