//! `troupe run`: the engine in the foreground until SIGINT or SIGTERM.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use crate::engine::{EngineConfig, Registration, WorkerEngine};
use crate::job::JobStatus;
use crate::store::{SledConfig, SledStore, Store};

use super::args::parse_duration;
use super::jobs::known_workers;
use super::{CliError, Global};

/// `troupe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// How long running jobs may take to finish at shutdown before they are
    /// stopped and queued again.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Jobs of one worker that may run at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Exit (after draining) once no job is queued or running: for batch runs.
    #[arg(long)]
    exit_when_idle: bool,
}

pub(super) fn run(global: &Global, args: RunArgs) -> Result<(), CliError> {
    init_logging();
    if args.concurrency == 0 {
        return Err(CliError::Usage("--concurrency must be at least 1".into()));
    }
    let store: Arc<dyn Store> = Arc::new(SledStore::open(SledConfig::new(&global.data_dir))?);
    let config = EngineConfig {
        default_concurrency: args.concurrency,
        drain_timeout: args.drain_timeout,
        ..EngineConfig::default()
    };
    troupe_actors::run_system(async move {
        let mut builder = WorkerEngine::builder(store.clone()).config(config);
        for worker in known_workers() {
            builder = builder.register(Registration::new(worker, args.concurrency));
        }
        let engine = builder.start()?;
        tracing::info!(data_dir = %global.data_dir.display(), "troupe engine running; SIGINT or SIGTERM stops it");
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let idle = async {
            if !args.exit_when_idle {
                return std::future::pending().await;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Ok(counts) = store.counts().await {
                    if counts.status(JobStatus::Queued) == 0
                        && counts.status(JobStatus::Running) == 0
                    {
                        return "idle";
                    }
                }
            }
        };
        let why = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
            why = idle => why,
        };
        tracing::info!(reason = why, "stopping: draining running jobs");
        let report = engine.shutdown().await?;
        tracing::info!(
            finished = report.running - report.requeued,
            requeued = report.requeued,
            "stopped"
        );
        Ok(())
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
