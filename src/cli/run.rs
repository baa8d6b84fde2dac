//! `troupe run`: the runtime in the foreground until SIGINT or SIGTERM, or
//! until its store fails.
//!
//! # How it stops
//!
//! On SIGINT or SIGTERM (or `--exit-when-idle`) it drains and exits 0. When
//! the store fails (a write could not be made durable: a full disk, a flush
//! that never ends), it drains what it can and exits non-zero, so a service
//! manager restarts it on a store opened afresh; nothing acknowledged is
//! lost, since an acknowledged write was durable. Stopping is bounded: a
//! second signal ends the process at once, and so does the stop outlasting
//! the drain timeout by [`STOP_MARGIN`].

use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{signal, Signal, SignalKind};

use std::sync::Arc;

use crate::api::{ControlError, LocalControl};
use crate::engine::DrainReport;
use crate::engine::EngineConfig;
use crate::http::{ControlServer, HttpConfig, HttpError, DEFAULT_ADDR};
use crate::runtime::Troupe;
use crate::store::prelude::*;
use crate::store::StoreError;

use super::args::parse_duration;
use super::connect::{remove_daemon_file, write_daemon_file};
use super::{CliError, Global};

/// `troupe run`.
#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// How long running jobs may take to finish at shutdown before they are
    /// stopped and queued again (default: the config's, else 30s).
    #[arg(long, value_parser = parse_duration)]
    drain_timeout: Option<Duration>,
    /// Jobs of one worker that may run at once (default: the config's, else 16).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Exit (after draining) once no job is queued or running: for batch runs.
    #[arg(long)]
    exit_when_idle: bool,
    /// Log lines for people (`text`, the default) or one JSON object per line
    /// (`json`); `RUST_LOG` chooses what is logged.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serve the control API and metrics on this address (default: the
    /// config's `[http] addr`, else 127.0.0.1:7700). Beyond loopback
    /// `[http] allowedHosts` is required.
    #[arg(long, value_name = "ADDR", conflicts_with = "no_http")]
    http: Option<String>,
    /// Do not serve the control API.
    #[arg(long)]
    no_http: bool,
    /// Bearer token for the control API (overrides `[http] token`). Read
    /// from the environment only, so it does not show in process listings.
    #[arg(skip = std::env::var("TROUPE_HTTP_TOKEN").ok())]
    http_token: Option<String>,
}

pub(super) fn run(global: &Global, args: RunArgs) -> Result<(), CliError> {
    let config = global.load_config()?;
    // Kept to the end: dropping it sends the last traces.
    let _telemetry = super::telemetry::init(args.log_format, &config.telemetry)?;
    if args.concurrency == Some(0) {
        return Err(CliError::Usage("--concurrency must be at least 1".into()));
    }
    let mut config = config;
    let dir = global.data_dir_for(&config);
    config.store.data_dir = dir.clone();
    let store = crate::runtime::open_store(&config.store)?;
    // Watched while the runtime runs: a failed store stops the daemon.
    let health = store.clone();
    let engine_config = EngineConfig {
        default_concurrency: args.concurrency.unwrap_or(config.engine.concurrency),
        drain_timeout: match args.drain_timeout {
            Some(d) => d,
            None => parse_duration(&config.engine.drain_timeout).map_err(CliError::Usage)?,
        },
        outage_allowance: config.engine.outage_allowance,
        ..EngineConfig::default()
    };
    let drain_timeout = engine_config.drain_timeout;
    let exit_when_idle = args.exit_when_idle;
    let http = http_config(&config, &args)?;
    let agents: Vec<_> = config.agents.iter().map(|a| a.id.clone()).collect();
    troupe_actors::run_system(async move {
        let troupe = Troupe::builder(config)
            .store_arc(store)
            .engine_config(engine_config)
            .start()
            .await?;
        let control = Arc::new(LocalControl::owning(troupe));
        // Handlers first: once the API answers, a SIGTERM must drain, not kill.
        let mut signals = Signals::new()?;
        let server = match serve(&control, http) {
            Ok(server) => server,
            Err(e) => {
                control.shutdown().await?;
                return Err(e);
            }
        };
        if let Some(server) = &server {
            write_daemon_file(&dir, &format!("http://{}", server.local_addr()));
        }
        tracing::info!(data_dir = %dir.display(), agents = ?agents, "troupe engine running; SIGINT or SIGTERM stops it");
        let idle = async {
            if !exit_when_idle {
                return std::future::pending().await;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if control.is_idle().await.unwrap_or(false) {
                    return "idle";
                }
            }
        };
        let (why, received, failure) = tokio::select! {
            signal = signals.next() => (signal, 1, None),
            why = idle => (why, 0, None),
            failure = store_failure(&health) => ("the store failed", 0, Some(failure)),
        };
        tracing::info!(reason = why, "stopping: draining running jobs");
        exit_after(drain_timeout + STOP_MARGIN);
        let stopping = async {
            if let Some(server) = &server {
                server.stop().await;
            }
            remove_daemon_file(&dir);
            control.shutdown().await
        };
        let stopped = signals.exit_on_second(stopping, received).await;
        // Stopped for another reason, the store may still have failed
        // meanwhile: that too asks for a restart.
        let failure = match failure {
            Some(failure) => Some(failure),
            None => failed(&health).await,
        };
        stopped_with(stopped, failure)
    })
}

/// SIGTERM and SIGINT, as one stream.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    /// Runs `stopping` to its end, unless signals reach two in all (with
    /// the `received` ones that began the stop): then the process exits at
    /// once.
    async fn exit_on_second<T>(
        &mut self,
        stopping: impl std::future::Future<Output = T>,
        mut received: u32,
    ) -> T {
        tokio::pin!(stopping);
        loop {
            let signal = tokio::select! {
                stopped = &mut stopping => return stopped,
                signal = self.next() => signal,
            };
            received += 1;
            if received > 1 {
                exit_now(signal);
            }
            tracing::info!(signal, "already stopping; a second signal exits at once");
        }
    }
}

/// What `troupe run` ends with: the store's failure, if it failed (a
/// restart is what it needs, whatever the drain did), else the drain's own
/// result.
fn stopped_with(
    stopped: Result<DrainReport, ControlError>,
    failure: Option<StoreError>,
) -> Result<(), CliError> {
    match (stopped, failure) {
        (Ok(report), None) => {
            tracing::info!(
                finished = report.running - report.requeued,
                requeued = report.requeued,
                "stopped"
            );
            Ok(())
        }
        (Err(e), None) => Err(e.into()),
        (stopped, Some(failure)) => {
            if let Err(e) = stopped {
                tracing::warn!(error = %e, "draining after the store failed");
            }
            tracing::error!(error = %failure, "stopped because the store failed: exiting non-zero for a restart");
            Err(failure.into())
        }
    }
}

/// How long a stop may outlast the drain timeout (the control API's grace,
/// a store write waiting out its flush timeout, the actors' stop) before the
/// process exits without finishing it.
const STOP_MARGIN: Duration = Duration::from_secs(45);

/// How often the daemon asks whether its store has failed.
const STORE_CHECK: Duration = Duration::from_millis(100);

/// Why the store failed, if it has (see [`StoreError::Failed`]); other
/// errors of the check are no reason to stop.
async fn failed(store: &Arc<dyn Store>) -> Option<StoreError> {
    match store.health().await {
        Err(failure @ StoreError::Failed { .. }) => Some(failure),
        Ok(()) | Err(_) => None,
    }
}

/// Resolves once the store has failed, with why.
async fn store_failure(store: &Arc<dyn Store>) -> StoreError {
    loop {
        match failed(store).await {
            Some(failure) => return failure,
            None => tokio::time::sleep(STORE_CHECK).await,
        }
    }
}

/// Ends the process, non-zero, if it is still running `after` from now: a
/// stop must end even when a job, a store write or an actor does not.
fn exit_after(after: Duration) {
    let spawned = std::thread::Builder::new()
        .name("troupe-stop-deadline".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::error!(
                waited = ?after,
                "stopping took too long (a job, a store write or an actor does not end): exiting now"
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no deadline on stopping: cannot start its thread");
    }
}

/// A second signal while stopping: exits at once, non-zero. What was
/// acknowledged is durable already; running jobs are recovered at the next
/// start.
fn exit_now(signal: &str) -> ! {
    tracing::warn!(signal, "second signal while stopping: exiting now");
    std::process::exit(1);
}

/// Serves the control API of `control` as `http` says (not at all with
/// `--no-http`). A default port already taken is no failure: the daemon
/// runs without its API, and says so.
fn serve(
    control: &Arc<LocalControl>,
    http: Option<(HttpConfig, bool)>,
) -> Result<Option<ControlServer>, CliError> {
    let Some((http, explicit)) = http else {
        return Ok(None);
    };
    match ControlServer::serve(control.clone(), http) {
        Ok(server) => Ok(Some(server)),
        Err(HttpError::Bind { addr, source }) if !explicit => {
            tracing::warn!(%addr, error = %source, "the default control API port is taken; running without the control API (give --http ADDR to choose one)");
            Ok(None)
        }
        Err(e) => Err(CliError::Usage(e.to_string())),
    }
}

/// The control API settings from the flags, the environment and the config,
/// and whether the address was given (not the default); `None` with
/// `--no-http`. Refuses an empty token.
fn http_config(
    config: &crate::config::TroupeConfig,
    args: &RunArgs,
) -> Result<Option<(HttpConfig, bool)>, CliError> {
    if args.no_http {
        return Ok(None);
    }
    let given = args.http.clone().or_else(|| config.http.addr.clone());
    let explicit = given.is_some();
    let addr = given.unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let token = super::token::for_daemon(args.http_token.as_deref(), config)?;
    Ok(Some((
        HttpConfig {
            addr,
            token,
            ..HttpConfig::from(&config.http)
        },
        explicit,
    )))
}

/// How `troupe run` writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with span fields (job id, agent, provider).
    Json,
}
