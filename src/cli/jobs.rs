//! Job commands that work on the data directory directly: `enqueue`, `jobs`,
//! `job`, `workers`, `cancel`. They need no running engine; while a daemon
//! holds the directory they fail, naming it.

use std::sync::Arc;

use clap::Args;

use crate::engine::{EchoWorker, SleepWorker, Worker, WorkerInfo};
use crate::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus};
use crate::store::{CancelOutcome, ListQuery, SledConfig, SledStore, Store};

use super::args::{parse_duration, parse_json};
use super::{output, CliError, Global};

/// `troupe enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The worker to run the job.
    worker: String,
    /// The job's args, as JSON.
    #[arg(long, default_value = "{}")]
    args: String,
    /// The job's ctx, as a JSON object (userId, conversationId, source, …).
    #[arg(long)]
    ctx: Option<String>,
    /// Do not start before this long from now (e.g. 500ms, 5s, 2m).
    #[arg(long, value_parser = parse_duration)]
    delay: Option<std::time::Duration>,
    /// Higher runs first among ready jobs.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Attempts before the job ends failed.
    #[arg(long, default_value_t = crate::job::DEFAULT_MAX_ATTEMPTS)]
    max_attempts: u32,
    /// While a job with this key is queued or running, return it instead.
    #[arg(long)]
    unique_key: Option<String>,
    /// Longest time one attempt may run (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<std::time::Duration>,
}

/// `troupe jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs with this status.
    #[arg(long)]
    status: Option<JobStatus>,
    /// Only jobs of this worker.
    #[arg(long)]
    worker: Option<String>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

/// The workers a data directory's engine runs. The diagnostic workers
/// always; agents and configured workers join them with the daemon config.
pub fn known_workers() -> Vec<Arc<dyn Worker>> {
    vec![Arc::new(EchoWorker), Arc::new(SleepWorker)]
}

fn open(global: &Global) -> Result<SledStore, CliError> {
    Ok(SledStore::open(SledConfig::new(&global.data_dir))?)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn parse_id(id: &str) -> Result<JobId, CliError> {
    JobId::parse_str(id).map_err(|e| CliError::Usage(format!("`{id}` is not a job id: {e}")))
}

pub(super) fn enqueue(global: &Global, args: EnqueueArgs) -> Result<(), CliError> {
    let workers = known_workers();
    if !workers.iter().any(|w| w.name() == args.worker) {
        let names: Vec<_> = workers.iter().map(|w| w.name().to_string()).collect();
        return Err(CliError::Usage(format!(
            "unknown worker `{}` (registered: {})",
            args.worker,
            names.join(", ")
        )));
    }
    let job_args = parse_json("--args", &args.args).map_err(CliError::Usage)?;
    let ctx = match &args.ctx {
        None => JobCtx::default(),
        Some(text) => {
            let value = parse_json("--ctx", text).map_err(CliError::Usage)?;
            if !value.is_object() {
                return Err(CliError::Usage(
                    "invalid --ctx: must be a JSON object".into(),
                ));
            }
            serde_json::from_value(value)
                .map_err(|e| CliError::Usage(format!("invalid --ctx: {e}")))?
        }
    };
    let mut options = EnqueueOptions::default()
        .priority(args.priority)
        .max_attempts(args.max_attempts);
    options.delay = args.delay;
    options.unique_key = args.unique_key;
    options.timeout = args.timeout;
    let job = Job::new(args.worker, job_args, ctx, &options, chrono::Utc::now())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let store = open(global)?;
    let outcome = runtime()?.block_on(store.insert(job))?;
    if global.json {
        output::json(&serde_json::json!({ "new": outcome.is_new(), "job": outcome.job() }))
    } else {
        println!("{}", outcome.job().id);
        if !outcome.is_new() {
            eprintln!(
                "(a job with that unique key is already {})",
                outcome.job().status
            );
        }
        Ok(())
    }
}

pub(super) fn list(global: &Global, args: JobsArgs) -> Result<(), CliError> {
    if args.limit == 0 {
        return Err(CliError::Usage("--limit must be at least 1".into()));
    }
    let store = open(global)?;
    let query = ListQuery {
        status: args.status,
        worker: args.worker,
        limit: args.limit,
        cursor: None,
    };
    let page = runtime()?.block_on(store.list(&query))?;
    if global.json {
        output::json(&page.jobs)
    } else {
        output::job_table(&page.jobs)
    }
}

pub(super) fn show(global: &Global, id: &str) -> Result<(), CliError> {
    let id = parse_id(id)?;
    let store = open(global)?;
    let job = runtime()?
        .block_on(store.get(id))?
        .ok_or_else(|| CliError::Usage(format!("no job with id {id}")))?;
    if global.json {
        output::json(&job)
    } else {
        output::job_detail(&job)
    }
}

pub(super) fn workers(global: &Global) -> Result<(), CliError> {
    let infos: Vec<WorkerInfo> = known_workers()
        .into_iter()
        .map(|w| WorkerInfo {
            name: w.name().to_string(),
            description: w.description().to_string(),
            category: w.category(),
            concurrency: crate::engine::EngineConfig::default().default_concurrency,
        })
        .collect();
    if global.json {
        output::json(&infos)
    } else {
        output::worker_table(&infos)
    }
}

pub(super) fn cancel(global: &Global, id: &str) -> Result<(), CliError> {
    let id = parse_id(id)?;
    let store = open(global)?;
    let outcome = runtime()?.block_on(store.cancel(id)).map_err(|e| match e {
        crate::store::StoreError::JobNotFound { .. } => {
            CliError::Usage(format!("no job with id {id}"))
        }
        other => CliError::Store(other),
    })?;
    let (what, job) = match &outcome {
        CancelOutcome::Cancelled(job) => ("cancelled", job),
        CancelOutcome::Requested(job) => (
            "cancel requested (it ends cancelled when its run stops)",
            job,
        ),
        CancelOutcome::AlreadyEnded(job) => ("already ended", job),
    };
    if global.json {
        output::json(
            &serde_json::json!({ "outcome": what.split(' ').next().unwrap_or(what), "job": job }),
        )
    } else {
        println!("{}: {what} (status {})", job.id, job.status);
        Ok(())
    }
}
