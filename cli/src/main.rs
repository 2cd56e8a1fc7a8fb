//! The `sagaflow` command line: see, draw and operate the runs in a sagaflow database file.
//!
//! The commands that only read open the file read-only (a service may be writing it at the
//! same time: WAL lets the reader see the last commit); the ones that write go through the
//! store and the saga request API. Exit codes: 0 done, 1 an error (printed on stderr, naming
//! the file, run or machine), 2 a command line that does not parse.

mod commands;
mod db;
mod draw;
mod error;
mod operate;
mod render;
mod stats;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sagaflow_saga::OperatorAction;

use crate::commands::{Out, RunFilter};
use crate::db::Db;
use crate::draw::Format;
use crate::error::CliError;
use crate::operate::Ask;

/// See, draw and operate the runs, sagas and state machines in a sagaflow database.
#[derive(Debug, Parser)]
#[command(name = "sagaflow", version, about, max_term_width = 100)]
struct Cli {
    /// The database file.
    #[arg(long, env = "SAGAFLOW_DB", global = true, value_name = "FILE")]
    db: Option<PathBuf>,
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
    /// Look for damage in the file (`PRAGMA integrity_check`, read-only); exit code 1 if any.
    Check,
    /// Success rate and duration percentiles per workflow and per step.
    Stats {
        /// Only this workflow.
        #[arg(long)]
        workflow: Option<String>,
    },
}

fn run(cli: Cli) -> Result<(), CliError> {
    let path = cli.db.ok_or(CliError::NoDatabase)?;
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
            commands::runs(&Db::open(&path)?, &filter, &out, &mut w)
        }
        Command::Show { run } => commands::show(&Db::open(&path)?, &run, &out, &mut w),
        Command::Events { run, follow } => {
            commands::events(&Db::open(&path)?, &run, follow, &out, &mut w)
        }
        Command::Graph { run, format } => commands::graph(
            &Db::open(&path)?,
            &run,
            format,
            &out,
            &mut w,
            &mut std::io::stderr(),
        ),
        Command::Machines => commands::machines(&Db::open(&path)?, &out, &mut w),
        Command::Machine { id } => commands::machine(&Db::open(&path)?, &id, &out, &mut w),
        Command::Stuck => commands::stuck(&Db::open(&path)?, &out, &mut w),
        Command::Retry { run } => request(&path, &run, Ask::Operator(OperatorAction::Retry), &out),
        Command::Skip { run } => request(&path, &run, Ask::Operator(OperatorAction::Skip), &out),
        Command::Abandon { run } => {
            request(&path, &run, Ask::Operator(OperatorAction::Abandon), &out)
        }
        Command::Cancel { run } => request(&path, &run, Ask::Cancel, &out),
        Command::Signal { run, name, payload } => {
            operate::signal(&path, &run, &name, &payload, &out, &mut w)
        }
        Command::Check => commands::check(&Db::open(&path)?, &out, &mut w),
        Command::Stats { workflow } => {
            stats::stats(&Db::open(&path)?, workflow.as_deref(), &out, &mut w)
        }
    }
}

fn request(path: &std::path::Path, run: &str, ask: Ask, out: &Out) -> Result<(), CliError> {
    operate::request(path, run, ask, out, &mut std::io::stdout().lock())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `sagaflow runs | head`: the reader has gone, which is not an error.
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "sagaflow: {error}");
            ExitCode::FAILURE
        }
    }
}
