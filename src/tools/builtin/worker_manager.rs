//! The `worker_manager` tool, as the seed defines it: lets an agent see the
//! registered workers and the job table.
//!
//! `{"action":"list_workers"}` → `{"ok":true,"data":[{name, description,
//! category, concurrency}…]}`; `{"action":"list_jobs","status"?,"worker"?,
//! "limit"?}` → `{"ok":true,"data":[job…]}`, newest first, each job in the
//! seed's shape without its `result` (which can be large; the id finds it).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::WorkerEngine;
use crate::job::{Job, JobStatus};
use crate::names::WORKER_MANAGER_TOOL;
use crate::store::ListQuery;
use crate::tools::{ToolContext, ToolError, TypedTool};

use super::jobs::engine_error;

/// How many jobs `list_jobs` returns when no limit is given.
pub const DEFAULT_JOB_LIMIT: usize = 20;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerAction {
    /// List the registered workers.
    ListWorkers,
    /// List jobs, newest first.
    ListJobs,
}

/// A job status to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
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

impl From<StatusFilter> for JobStatus {
    fn from(s: StatusFilter) -> Self {
        match s {
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
pub struct WorkerManagerArgs {
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

/// The `worker_manager` tool.
pub struct WorkerManagerTool {
    engine: WorkerEngine,
}

impl WorkerManagerTool {
    /// Reads workers and jobs from `engine`.
    pub fn new(engine: WorkerEngine) -> Self {
        WorkerManagerTool { engine }
    }
}

#[async_trait]
impl TypedTool for WorkerManagerTool {
    type Args = WorkerManagerArgs;

    fn name(&self) -> &str {
        WORKER_MANAGER_TOOL
    }

    fn description(&self) -> &str {
        "Inspect the job engine. action \"list_workers\" lists the registered workers; \
         action \"list_jobs\" lists recent jobs, optionally filtered by status and worker."
    }

    async fn run(&self, args: WorkerManagerArgs, _ctx: ToolContext) -> Result<Value, ToolError> {
        match args.action {
            WorkerAction::ListWorkers => Ok(json!({
                "ok": true,
                "data": self.engine.list_workers(),
            })),
            WorkerAction::ListJobs => {
                let query = ListQuery {
                    status: args.status.map(JobStatus::from),
                    worker: args.worker,
                    limit: args
                        .limit
                        .and_then(|l| usize::try_from(l).ok())
                        .unwrap_or(DEFAULT_JOB_LIMIT),
                    cursor: None,
                };
                let page = self.engine.list_jobs(&query).await.map_err(engine_error)?;
                let jobs: Vec<Value> = page.jobs.iter().map(job_summary).collect();
                Ok(json!({ "ok": true, "data": jobs }))
            }
        }
    }
}

fn job_summary(job: &Job) -> Value {
    json!({
        "id": job.id,
        "workerName": job.worker_name,
        "status": job.status,
        "attempt": job.attempt,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
        "args": job.args,
        "ctx": job.ctx,
        "error": job.error,
    })
}
