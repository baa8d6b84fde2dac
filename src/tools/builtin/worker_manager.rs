//! The `worker_manager` tool, as the seed defines it: lets an agent see the
//! registered workers and the job table.
//!
//! `{"action":"list_workers"}` → `{"ok":true,"data":[{name, description,
//! category, concurrency}…]}`; `{"action":"list_jobs","status"?,"worker"?,
//! "limit"?}` → `{"ok":true,"data":[job…]}`, newest first, each job in the
//! seed's shape without its `result` (which can be large; the id finds it).
//!
//! A job done for another user than the task's (or for no user, when the
//! task has one) is listed with its `args`, `ctx` and `error` redacted
//! (`null`, and `"redacted": true`): they hold that user's prompts. The
//! agent's config may grant more (`users`, see
//! [`policy`](crate::tools::policy)).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{WorkerEngine, WorkerInfo};
use crate::job::{Job, JobCtx, JobId, JobStatus};
use crate::names::WORKER_MANAGER_TOOL;
use crate::store::ListQuery;
use crate::tools::{Policies, ToolContext, ToolError, ToolPolicy, TypedTool};

use super::jobs::engine_error;

/// How many jobs `list_jobs` returns when no limit is given.
pub(crate) const DEFAULT_JOB_LIMIT: usize = 20;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WorkerAction {
    /// List the registered workers.
    ListWorkers,
    /// List jobs, newest first.
    ListJobs,
}

/// A job status to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StatusFilter {
    /// Waiting to run.
    Queued,
    /// Running now.
    Running,
    /// Ended with a result.
    Completed,
    /// Ended with an error.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl StatusFilter {
    /// The job status it filters on.
    fn job_status(self) -> JobStatus {
        match self {
            StatusFilter::Queued => JobStatus::Queued,
            StatusFilter::Running => JobStatus::Running,
            StatusFilter::Completed => JobStatus::Completed,
            StatusFilter::Failed => JobStatus::Failed,
            StatusFilter::Cancelled => JobStatus::Cancelled,
        }
    }
}

/// Arguments of `worker_manager`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct WorkerManagerArgs {
    /// `list_workers` or `list_jobs`.
    pub action: WorkerAction,
    /// `list_jobs` only: only jobs with this status.
    #[serde(default)]
    pub status: Option<StatusFilter>,
    /// `list_jobs` only: only jobs of this worker.
    #[serde(default)]
    pub worker: Option<String>,
    /// `list_jobs` only: at most this many jobs (default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

/// What `worker_manager` answers: a list, of workers or of jobs by action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum WorkerManagerOutput {
    /// `list_workers`: the registered workers.
    Workers(Vec<WorkerInfo>),
    /// `list_jobs`: jobs, newest first.
    Jobs(Vec<JobSummary>),
}

/// A job as `list_jobs` shows it: the seed's shape without its `result`
/// (which can be large; the id finds it); another user's job without its
/// `args`, `ctx` and `error` either.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobSummary {
    /// The job.
    pub id: JobId,
    /// Its worker.
    pub worker_name: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Attempts started.
    pub attempt: u32,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its args (`null` when redacted).
    pub args: Value,
    /// Its ctx (`null` when redacted).
    pub ctx: Option<JobCtx>,
    /// The last attempt's error, if any (`null` when redacted).
    pub error: Option<String>,
    /// Whether `args`, `ctx` and `error` were left out: the job is another
    /// user's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

impl JobSummary {
    /// `job` as a task done for `user` may see it under `policy`.
    fn of(job: Job, user: Option<&str>, policy: &ToolPolicy) -> Self {
        let visible = policy.sees_user(user, job.ctx.user_id.as_deref());
        JobSummary {
            id: job.id,
            worker_name: job.worker_name,
            status: job.status,
            attempt: job.attempt,
            created_at: job.created_at,
            updated_at: job.updated_at,
            args: if visible { job.args } else { Value::Null },
            ctx: visible.then_some(job.ctx),
            error: job.error.filter(|_| visible),
            redacted: !visible,
        }
    }
}

/// The `worker_manager` tool.
pub(crate) struct WorkerManagerTool {
    engine: WorkerEngine,
    policies: Arc<Policies>,
}

impl WorkerManagerTool {
    /// Reads workers and jobs from `engine`, other users' jobs redacted
    /// unless `policies` grant them.
    pub(crate) fn new(engine: WorkerEngine, policies: Arc<Policies>) -> Self {
        WorkerManagerTool { engine, policies }
    }
}

#[async_trait]
impl TypedTool for WorkerManagerTool {
    type Args = WorkerManagerArgs;
    type Output = WorkerManagerOutput;
    type Error = ToolError;

    fn name(&self) -> &str {
        WORKER_MANAGER_TOOL
    }

    fn description(&self) -> &str {
        "Inspect the job engine. action \"list_workers\" lists the registered workers; \
         action \"list_jobs\" lists recent jobs, optionally filtered by status and worker."
    }

    async fn run(
        &self,
        args: WorkerManagerArgs,
        ctx: ToolContext,
    ) -> Result<WorkerManagerOutput, ToolError> {
        match args.action {
            WorkerAction::ListWorkers => {
                Ok(WorkerManagerOutput::Workers(self.engine.list_workers()))
            }
            WorkerAction::ListJobs => {
                let query = ListQuery {
                    status: args.status.map(StatusFilter::job_status),
                    worker: args.worker,
                    limit: args
                        .limit
                        .and_then(|l| usize::try_from(l).ok())
                        .unwrap_or(DEFAULT_JOB_LIMIT),
                    cursor: None,
                };
                let page = self.engine.list_jobs(&query).await.map_err(engine_error)?;
                let policy = self.policies.of(&ctx.agent_id);
                let user = ctx.user_id.as_deref();
                let jobs = page
                    .jobs
                    .into_iter()
                    .map(|job| JobSummary::of(job, user, policy))
                    .collect();
                Ok(WorkerManagerOutput::Jobs(jobs))
            }
        }
    }
}
