//! The `troupe` command line: job, task, memory, pause and status
//! commands, and `troupe run`, the engine until SIGINT or SIGTERM.
//!
//! A command builds its request ([`crate::api`]) from its flags, calls the
//! [`Control`](crate::api::Control) that reaches the data (a daemon's API,
//! or the data directory itself: chosen once, in `connect.rs`), and
//! renders the answer as text or, with `--json`, as the answer's JSON.
//!
//! Every command takes `--data-dir` (default `./troupe-data`, or
//! `$TROUPE_DATA_DIR`) and `--json`. The daemon's token is never a flag
//! (`token.rs`). Errors are one line on stderr naming the
//! problem, with exit code 1 (2 for a malformed command line).

mod agents;
mod approvals;
mod args;
mod connect;
mod demo;
mod follow;
mod jobs;
mod migrate;
mod output;
mod run;
mod secrets;
mod status;
mod telemetry;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Troupe runs LLM agents as supervised actors, with a durable job queue.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// The data directory (sled store).
    #[arg(
        long,
        global = true,
        env = "TROUPE_DATA_DIR",
        default_value = "./troupe-data"
    )]
    pub data_dir: PathBuf,
    /// The config file (providers, agents, schedules).
    #[arg(long, global = true, env = "TROUPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// A running daemon's control API (e.g. http://127.0.0.1:7700). Without
    /// it, a daemon holding the data directory is found by itself.
    #[arg(long, global = true, env = "TROUPE_SERVER")]
    pub server: Option<String>,
    /// Refused: a token on the command line shows in process listings (the
    /// token comes from TROUPE_HTTP_TOKEN, the config, or the data
    /// directory). The value is dropped unread.
    #[arg(
        long,
        global = true,
        hide = true,
        num_args = 0..=1,
        default_missing_value = "",
        value_parser = |_: &str| Ok::<_, String>(Refused)
    )]
    token: Option<Refused>,
}

/// A flag that is refused; what was given with it is not kept.
#[derive(Debug, Clone, Copy)]
struct Refused;

impl Global {
    /// The config file's contents, or the empty config when none is given.
    pub(crate) fn load_config(&self) -> Result<crate::config::TroupeConfig, CliError> {
        match &self.config {
            Some(path) => Ok(crate::config::TroupeConfig::load(path)?),
            None => Ok(crate::config::TroupeConfig::default()),
        }
    }

    /// The data directory: `--data-dir` or `$TROUPE_DATA_DIR` when given,
    /// else the config's `store.dataDir`, else `./troupe-data`.
    pub(crate) fn data_dir_for(&self, config: &crate::config::TroupeConfig) -> PathBuf {
        let explicit = std::env::var_os("TROUPE_DATA_DIR").is_some()
            || std::env::args_os()
                .any(|a| a == "--data-dir" || a.to_string_lossy().starts_with("--data-dir="));
        if explicit || self.config.is_none() {
            self.data_dir.clone()
        } else {
            config.store.data_dir.clone()
        }
    }
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
        /// Print its events as they happen, until it ends (with no
        /// daemon, the runtime runs here meanwhile).
        #[arg(long)]
        follow: bool,
    },
    /// List the registered workers.
    Workers,
    /// Cancel a job (queued: at once; running: its work is stopped).
    Cancel {
        /// The job id.
        id: String,
    },
    /// List the tool calls waiting for a person's approval.
    Approvals,
    /// Approve a tool call: its task resumes and runs it once.
    Approve(approvals::ApproveArgs),
    /// Deny a tool call: the model gets the reason as the call's error.
    Deny(approvals::DenyArgs),
    /// Run the engine until SIGINT or SIGTERM, then drain and exit.
    Run(run::RunArgs),
    /// Give an agent a task (prints its job id, or its result with --wait).
    Task(agents::TaskArgs),
    /// List an agent's memories.
    Memories(agents::MemoriesArgs),
    /// Show a conversation's messages.
    Conversation {
        /// The conversation id.
        id: String,
    },
    /// Run the demo: agents with tools, memory and a scheduled compaction.
    Demo(demo::DemoArgs),
    /// Stop claiming jobs (all, or one worker or agent); durable.
    Pause(status::PauseArgs),
    /// Claim jobs again (all, or one worker or agent).
    Resume(status::PauseArgs),
    /// One screen: workers, agents, queue, running jobs, providers, spend.
    Status,
    /// Provider API keys stored encrypted in the data directory.
    Secrets(secrets::SecretsArgs),
    /// The nodes sharing a PostgreSQL store (alive or gone).
    Nodes,
    /// Bring the PostgreSQL schema to this build's version (nodes do it
    /// at start unless `migrate = false`); with --from sled:DIR, copy a
    /// sled store into it and check the counts.
    Migrate(migrate::MigrateArgs),
}

/// Parses the command line, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.global.token.is_some() {
        eprintln!("error: {}", token::flag_refused());
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Enqueue(args) => jobs::enqueue(&cli.global, args),
        Command::Jobs(args) => jobs::list(&cli.global, args),
        Command::Job { id, follow: false } => jobs::show(&cli.global, &id),
        Command::Job { id, follow: true } => jobs::follow(&cli.global, &id),
        Command::Workers => jobs::workers(&cli.global),
        Command::Cancel { id } => jobs::cancel(&cli.global, &id),
        Command::Approvals => approvals::list(&cli.global),
        Command::Approve(args) => approvals::approve(&cli.global, args),
        Command::Deny(args) => approvals::deny(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Task(args) => agents::task(&cli.global, args),
        Command::Memories(args) => agents::memories(&cli.global, args),
        Command::Conversation { id } => agents::conversation(&cli.global, &id),
        Command::Demo(args) => demo::run(&cli.global, args),
        Command::Pause(args) => status::pause(&cli.global, args, true),
        Command::Resume(args) => status::pause(&cli.global, args, false),
        Command::Status => status::status(&cli.global),
        Command::Secrets(args) => secrets::run(&cli.global, args),
        Command::Nodes => status::nodes(&cli.global),
        Command::Migrate(args) => migrate::migrate(&cli.global, args),
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
pub(crate) enum CliError {
    /// A flag or argument value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The engine or store refused.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The config file is refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The runtime refused.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// The control API refused or failed (locally or at the daemon).
    #[error(transparent)]
    Control(#[from] crate::api::ControlError),
    /// `troupe migrate --from` was refused, or its copy does not match
    /// its source.
    #[error("{0}")]
    Migrate(String),
    /// Writing output failed.
    #[error("could not write output: {0}")]
    Io(#[from] std::io::Error),
}
