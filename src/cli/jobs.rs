//! Job commands that work on the data directory directly: `enqueue`, `jobs`,
//! `job`, `workers`, `cancel`. They need no running engine; while a daemon
//! holds the directory they fail, naming it.

use std::sync::Arc;

use clap::Args;

use crate::engine::{EchoWorker, SleepWorker, Worker, WorkerInfo};
use crate::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus};
use crate::store::prelude::*;
use crate::store::{CancelOutcome, ListQuery};
use serde_json::json;

use super::args::{parse_duration, parse_json};
use super::remote::{open_target, Target};
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
    /// Redraw the list every second until interrupted.
    #[arg(long)]
    watch: bool,
}

/// The workers a data directory's engine runs. The diagnostic workers
/// always; agents and configured workers join them with the daemon config.
pub fn known_workers() -> Vec<Arc<dyn Worker>> {
    vec![Arc::new(EchoWorker), Arc::new(SleepWorker)]
}

/// Every worker name the daemon for `config` registers.
fn known_names(config: &crate::config::TroupeConfig) -> Vec<String> {
    let mut names: Vec<String> = known_workers()
        .iter()
        .map(|w| w.name().to_string())
        .collect();
    names.push("memory_compaction_worker".into());
    names.extend(config.agents.iter().map(|a| a.id.clone()));
    names
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(super) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
    let config = global.load_config()?;
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
    options.unique_key = args.unique_key.clone();
    options.timeout = args.timeout;
    let job = Job::new(
        args.worker.clone(),
        job_args,
        ctx,
        &options,
        chrono::Utc::now(),
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let (job, new) = match open_target(global, &global.data_dir_for(&config))? {
        Target::Local(store) => {
            let names = known_names(&config);
            if !names.contains(&args.worker) {
                return Err(CliError::Usage(format!(
                    "unknown worker `{}` (registered: {})",
                    args.worker,
                    names.join(", ")
                )));
            }
            let outcome = runtime()?.block_on(store.insert(job))?;
            let new = outcome.is_new();
            (outcome.into_job(), new)
        }
        Target::Remote(remote) => {
            let mut body = json!({
                "workerName": job.worker_name,
                "args": job.args,
                "ctx": job.ctx,
                "priority": job.priority,
                "maxAttempts": job.max_attempts,
            });
            if let Some(delay) = args.delay {
                body["delayMs"] = json!(delay.as_millis() as u64);
            }
            if let Some(key) = &job.unique_key {
                body["uniqueKey"] = json!(key);
            }
            if let Some(ms) = job.timeout_ms {
                body["timeoutMs"] = json!(ms);
            }
            let value = remote.post("/v1/jobs", body)?;
            let job: Job = serde_json::from_value(value["job"].clone())
                .or_else(|_| serde_json::from_value(value.clone()))
                .map_err(|e| CliError::Usage(format!("unexpected answer from the daemon: {e}")))?;
            (job, true)
        }
    };
    if global.json {
        output::json(&json!({ "new": new, "job": job }))
    } else {
        println!("{}", job.id);
        if !new {
            eprintln!("(a job with that unique key is already {})", job.status);
        }
        Ok(())
    }
}

pub(super) fn list(global: &Global, args: JobsArgs) -> Result<(), CliError> {
    if args.limit == 0 {
        return Err(CliError::Usage("--limit must be at least 1".into()));
    }
    let config = global.load_config()?;
    let show = |jobs: &[Job]| {
        if global.json {
            output::json(&jobs)
        } else {
            output::job_table(jobs)
        }
    };
    loop {
        let jobs: Vec<Job> = match open_target(global, &global.data_dir_for(&config))? {
            Target::Local(store) => {
                let query = ListQuery {
                    status: args.status,
                    worker: args.worker.clone(),
                    limit: args.limit,
                    cursor: None,
                };
                runtime()?.block_on(store.list_jobs(&query))?.jobs
            }
            Target::Remote(remote) => {
                let query = query_string(&[
                    ("status", args.status.map(|s| s.as_str().to_string())),
                    ("worker", args.worker.clone()),
                    ("limit", Some(args.limit.to_string())),
                ]);
                let value = remote.get(&format!("/v1/jobs{query}"))?;
                serde_json::from_value(value["jobs"].clone()).map_err(|e| {
                    CliError::Usage(format!("unexpected answer from the daemon: {e}"))
                })?
            }
        };
        if !args.watch {
            return show(&jobs);
        }
        // Follow progress: redraw every second until interrupted.
        print!("\x1b[2J\x1b[H");
        show(&jobs)?;
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

pub(super) fn show(global: &Global, id: &str) -> Result<(), CliError> {
    let id = parse_id(id)?;
    let config = global.load_config()?;
    let job = match open_target(global, &global.data_dir_for(&config))? {
        Target::Local(store) => runtime()?
            .block_on(store.get_job(id))?
            .ok_or_else(|| CliError::Usage(format!("no job with id {id}")))?,
        Target::Remote(remote) => serde_json::from_value(remote.get(&format!("/v1/jobs/{id}"))?)
            .map_err(|e| CliError::Usage(format!("unexpected answer from the daemon: {e}")))?,
    };
    if global.json {
        output::json(&job)
    } else {
        output::job_detail(&job)
    }
}

pub(super) fn workers(global: &Global) -> Result<(), CliError> {
    let config = global.load_config()?;
    let infos: Vec<WorkerInfo> = match global.server.as_deref() {
        Some(_) => match open_target(global, &global.data_dir_for(&config))? {
            Target::Remote(remote) => serde_json::from_value(
                remote.get("/v1/workers")?["workers"].clone(),
            )
            .map_err(|e| CliError::Usage(format!("unexpected answer from the daemon: {e}")))?,
            Target::Local(_) => Vec::new(),
        },
        None => {
            let concurrency = config.engine.concurrency;
            let mut infos: Vec<WorkerInfo> = known_workers()
                .into_iter()
                .map(|w| WorkerInfo {
                    name: w.name().to_string(),
                    description: w.description().to_string(),
                    category: w.category(),
                    concurrency,
                })
                .collect();
            infos.push(WorkerInfo {
                name: "memory_compaction_worker".into(),
                description: "Summarises an agent's memories into fewer summary memories.".into(),
                category: crate::engine::WorkerCategory::Memory,
                concurrency,
            });
            infos.extend(config.agents.iter().map(|a| WorkerInfo {
                name: a.id.clone(),
                description: a.name.clone(),
                category: crate::engine::WorkerCategory::Agent,
                concurrency: a.concurrency,
            }));
            infos
        }
    };
    if global.json {
        output::json(&infos)
    } else {
        output::worker_table(&infos)
    }
}

pub(super) fn cancel(global: &Global, id: &str) -> Result<(), CliError> {
    let id = parse_id(id)?;
    let config = global.load_config()?;
    let (what, job): (String, Job) = match open_target(global, &global.data_dir_for(&config))? {
        Target::Local(store) => {
            let outcome = runtime()?.block_on(store.cancel(id)).map_err(|e| match e {
                crate::store::StoreError::JobNotFound { .. } => {
                    CliError::Usage(format!("no job with id {id}"))
                }
                other => CliError::Store(other),
            })?;
            match outcome {
                CancelOutcome::Cancelled(job) => ("cancelled".into(), job),
                CancelOutcome::Requested(job) => ("requested".into(), job),
                CancelOutcome::AlreadyEnded(job) => ("alreadyEnded".into(), job),
            }
        }
        Target::Remote(remote) => {
            let value = remote.post(&format!("/v1/jobs/{id}/cancel"), json!({}))?;
            let job = serde_json::from_value(value["job"].clone())
                .map_err(|e| CliError::Usage(format!("unexpected answer from the daemon: {e}")))?;
            (
                value["outcome"].as_str().unwrap_or("unknown").to_string(),
                job,
            )
        }
    };
    if global.json {
        return output::json(&json!({ "outcome": what, "job": job }));
    }
    let said = match what.as_str() {
        "cancelled" => "cancelled",
        "requested" => "cancel requested (it ends cancelled when its run stops)",
        "alreadyEnded" => "already ended",
        other => other,
    };
    println!("{}: {said} (status {})", job.id, job.status);
    Ok(())
}
