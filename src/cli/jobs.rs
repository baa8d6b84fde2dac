//! Job commands: `enqueue`, `jobs`, `job`, `workers`, `cancel`. They work
//! on the data directory directly, or through the daemon that holds it.

use clap::Args;

use crate::api::{
    parse_job_id, CancelKind, Control, ControlError, EnqueueRequest, JobField, JobsPage, JobsQuery,
    Request, MAX_PAGE,
};
use crate::job::{JobCtx, JobStatus};

use super::args::{parse_duration, parse_json};
use super::connect::{call, Need};
use super::{output, CliError, Global};

/// `troupe enqueue`.
#[derive(Debug, Args)]
pub(super) struct EnqueueArgs {
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

impl EnqueueArgs {
    /// The flags as the control API's request.
    fn request(self) -> Result<EnqueueRequest, CliError> {
        let args = parse_json("--args", &self.args).map_err(CliError::Usage)?;
        let ctx = match &self.ctx {
            None => None,
            Some(text) => {
                let value = parse_json("--ctx", text).map_err(CliError::Usage)?;
                if !value.is_object() {
                    return Err(CliError::Usage(
                        "invalid --ctx: must be a JSON object".into(),
                    ));
                }
                Some(
                    serde_json::from_value::<JobCtx>(value)
                        .map_err(|e| CliError::Usage(format!("invalid --ctx: {e}")))?,
                )
            }
        };
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let request = EnqueueRequest {
            args: Some(args),
            ctx,
            delay_ms: self.delay.map(millis),
            priority: Some(self.priority),
            max_attempts: Some(self.max_attempts),
            unique_key: self.unique_key,
            timeout_ms: self.timeout.map(millis),
            ..EnqueueRequest::new(self.worker)
        };
        request.validate()?;
        Ok(request)
    }
}

/// `troupe jobs`.
#[derive(Debug, Args)]
pub(super) struct JobsArgs {
    /// Only jobs with this status.
    #[arg(long)]
    status: Option<JobStatus>,
    /// Only jobs of this worker.
    #[arg(long)]
    worker: Option<String>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Also list these fields, left out otherwise (`args`, `result`,
    /// comma-separated; `troupe job ID` shows everything).
    #[arg(long, value_delimiter = ',', value_parser = JobField::parse)]
    fields: Vec<JobField>,
    /// Redraw the list every second until interrupted.
    #[arg(long)]
    watch: bool,
}

pub(super) fn enqueue(global: &Global, args: EnqueueArgs) -> Result<(), CliError> {
    let config = global.load_config()?;
    let request = args.request()?;
    let enqueued = call(global, &config, Need::Store, async |c| {
        c.enqueue(request).await
    })?;
    if global.json {
        return output::json(&enqueued);
    }
    println!("{}", enqueued.job.id);
    if !enqueued.new {
        eprintln!(
            "(a job with that unique key is already {})",
            enqueued.job.status
        );
    }
    Ok(())
}

pub(super) fn list(global: &Global, args: JobsArgs) -> Result<(), CliError> {
    if args.limit == 0 {
        return Err(CliError::Usage("--limit must be at least 1".into()));
    }
    let config = global.load_config()?;
    let query = JobsQuery {
        status: args.status,
        worker: args.worker,
        limit: None,
        cursor: None,
        fields: args.fields,
    };
    let show = |jobs: &JobsPage| {
        if global.json {
            output::json(&jobs.listed())
        } else {
            output::job_table(&jobs.jobs)
        }
    };
    loop {
        // Connected anew each time: a watch must not hold the data
        // directory, or keep talking to a daemon that has stopped.
        let query = query.clone();
        let jobs = call(global, &config, Need::Store, async |c| {
            newest(c, query, args.limit).await
        })?;
        if !args.watch {
            return show(&jobs);
        }
        // Follow progress: redraw every second until interrupted.
        print!("\x1b[2J\x1b[H");
        show(&jobs)?;
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// The newest `limit` jobs matching `query`, as one page, asked for in
/// pages of at most [`MAX_PAGE`] (the daemon also ends a page early when
/// its jobs are large).
async fn newest(
    control: &dyn Control,
    mut query: JobsQuery,
    limit: usize,
) -> Result<JobsPage, ControlError> {
    let mut all = JobsPage {
        jobs: Vec::new(),
        next_cursor: None,
        omitted: query.omitted(),
    };
    while all.jobs.len() < limit {
        query.limit = Some((limit - all.jobs.len()).min(MAX_PAGE));
        let page = control.jobs(query.clone()).await?;
        all.jobs.extend(page.jobs);
        all.next_cursor = page.next_cursor;
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    Ok(all)
}

pub(super) fn show(global: &Global, id: &str) -> Result<(), CliError> {
    let id = parse_job_id(id)?;
    let config = global.load_config()?;
    let job = call(global, &config, Need::Store, async |c| c.job(id).await)?;
    if global.json {
        output::json(&job)
    } else {
        output::job_detail(&job)
    }
}

/// `troupe job ID --follow`: its events until it ends; through the
/// daemon, or with the runtime run here (which runs the job).
pub(super) fn follow(global: &Global, id: &str) -> Result<(), CliError> {
    let id = parse_job_id(id)?;
    let config = global.load_config()?;
    let json = global.json;
    call(global, &config, Need::Runtime, async |c| {
        super::follow::follow(c, id, json).await
    })?
    .into_result()
}

pub(super) fn workers(global: &Global) -> Result<(), CliError> {
    let config = global.load_config()?;
    let answer = call(global, &config, Need::Store, async |c| c.workers().await)?;
    if global.json {
        output::json(&answer.workers)
    } else {
        output::worker_table(&answer.workers)
    }
}

pub(super) fn cancel(global: &Global, id: &str) -> Result<(), CliError> {
    let id = parse_job_id(id)?;
    let config = global.load_config()?;
    let answer = call(global, &config, Need::Store, async |c| c.cancel(id).await)?;
    if global.json {
        return output::json(&answer);
    }
    let said = match answer.outcome {
        CancelKind::Cancelled => "cancelled",
        CancelKind::Requested => "cancel requested (it ends cancelled when its run stops)",
        CancelKind::AlreadyEnded => "already ended",
    };
    println!("{}: {said} (status {})", answer.job.id, answer.job.status);
    Ok(())
}
