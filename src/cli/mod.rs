//! The `troupe` command line: job commands on the data directory, and
//! `troupe run`, the engine until SIGINT or SIGTERM.
//!
//! Every command takes `--data-dir` (default `./troupe-data`, or
//! `$TROUPE_DATA_DIR`) and `--json`. Errors are one line on stderr naming the
//! problem, with exit code 1 (2 for a malformed command line).

mod args;
mod jobs;
mod output;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use args::{parse_duration, parse_json};

/// Troupe runs LLM agents as supervised actors, with a durable job queue.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The data directory (sled store).
    #[arg(
        long,
        global = true,
        env = "TROUPE_DATA_DIR",
        default_value = "./troupe-data"
    )]
    pub data_dir: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Queue a job for a worker; prints its id.
    Enqueue(jobs::EnqueueArgs),
    /// List jobs, newest first.
    Jobs(jobs::JobsArgs),
    /// Show one job.
    Job {
        /// The job id.
        id: String,
    },
    /// List the registered workers.
    Workers,
    /// Cancel a job (queued: at once; running: its work is stopped).
    Cancel {
        /// The job id.
        id: String,
    },
    /// Run the engine until SIGINT or SIGTERM, then drain and exit.
    Run(run::RunArgs),
}

/// Parses the command line, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Enqueue(args) => jobs::enqueue(&cli.global, args),
        Command::Jobs(args) => jobs::list(&cli.global, args),
        Command::Job { id } => jobs::show(&cli.global, &id),
        Command::Workers => jobs::workers(&cli.global),
        Command::Cancel { id } => jobs::cancel(&cli.global, &id),
        Command::Run(args) => run::run(&cli.global, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A command's failure: one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag or argument value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The engine or store refused.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Writing output failed.
    #[error("could not write output: {0}")]
    Io(#[from] std::io::Error),
}
