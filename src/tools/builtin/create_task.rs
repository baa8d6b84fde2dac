//! The `create_task` tool: a follow-up task for this agent or another one.
//!
//! An agent task is a job whose worker is the agent (`workerName` = agent
//! id, args `{"prompt":…}`), so this enqueues one through the job engine.
//! The target must be a registered worker of category `agent`. The new
//! task inherits the user and conversation, and its ctx names the parent
//! task (`parentJobId`), the agent that asked (`requestedBy`) and its depth
//! (`depth`: the parent's plus one). A repeated call creates no second
//! task; see [`jobs`](super::jobs).
//!
//! Two limits of the agents' configs are checked here (the third,
//! `maxTasksPerTask`, by the task loop, which counts what its task created):
//!
//! - `maxTaskDepth` (the caller's): a task at that depth creates no more
//!   tasks. The depth is in the job record, so a chain cannot grow across
//!   restarts either. Costs nothing.
//! - `maxQueuedTasks` (the target's): past that many queued tasks of the
//!   target agent, no more are created for it. Costs one read of the job
//!   counts (an in-memory index in sled) per call. Calls running at the
//!   same moment may pass it together, so the queue can exceed it by the
//!   calls in flight at most. A repeat of a call that already created its
//!   task is not refused.
//!
//! Result: `{"ok":true,"data":{"created":true,"jobId":…,"agentId":…}}`
//! (`created` is false when a repeat found the task already made).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};

use crate::engine::{WorkerCategory, WorkerEngine};
use crate::job::{EnqueueOptions, JobCtx, JobId, JobStatus};
use crate::names::{CREATE_TASK_TOOL, CTX_DEPTH, MAX_QUEUED_TASKS, MAX_TASK_DEPTH};
use crate::store::IdempotencyStore;
use crate::tools::{Policies, ToolContext, ToolError, TypedTool};

use super::jobs::{engine_error, enqueue_once, store_error, JobRequest};

/// The longest delay a model may ask for (30 days).
pub(crate) const MAX_DELAY_SECONDS: u64 = 30 * 24 * 3600;

/// Arguments of `create_task`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateTaskArgs {
    /// What the task should do, as instructions to the agent.
    #[schemars(length(min = 1))]
    pub prompt: String,
    /// The agent to give it to; defaults to yourself.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Start no sooner than this many seconds from now.
    #[serde(default)]
    #[schemars(range(max = 2592000))]
    pub delay_seconds: Option<u64>,
}

/// What `create_task` answers: the task's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskCreated {
    /// False when a repeat of the call found the task made before.
    pub created: bool,
    /// The task's job.
    pub job_id: JobId,
    /// The agent it was given to.
    pub agent_id: String,
}

/// The `create_task` tool.
pub(crate) struct CreateTaskTool {
    engine: WorkerEngine,
    registry: Option<Arc<dyn IdempotencyStore>>,
    policies: Arc<Policies>,
}

impl CreateTaskTool {
    /// Creates tasks through `engine`, once per call thanks to `registry`,
    /// within the limits of `policies`.
    pub(crate) fn new(
        engine: WorkerEngine,
        registry: Option<Arc<dyn IdempotencyStore>>,
        policies: Arc<Policies>,
    ) -> Self {
        CreateTaskTool {
            engine,
            registry,
            policies,
        }
    }

    /// The depth of the task `ctx`'s task would create, unless that is
    /// beyond the caller's `maxTaskDepth`.
    fn child_depth(&self, ctx: &ToolContext) -> Result<u32, ToolError> {
        let max = self.policies.of(&ctx.agent_id).max_task_depth;
        let depth = ctx.depth.saturating_add(1);
        if depth <= max {
            return Ok(depth);
        }
        let message = format!(
            "this task is at depth {} of a chain of tasks creating tasks, and agent `{}` may \
             create tasks down to depth {max} ({MAX_TASK_DEPTH} = {max}). Do the work in this \
             task instead.",
            ctx.depth, ctx.agent_id
        );
        Err(self.policies.refuse(
            &ctx.agent_id,
            ToolError::limit_reached(MAX_TASK_DEPTH, message),
        ))
    }

    /// Refuses a new task for `target` while it has `maxQueuedTasks`
    /// queued, unless this call (its idempotency `key`) already created
    /// its task.
    async fn check_queue(
        &self,
        target: &str,
        key: &str,
        ctx: &ToolContext,
    ) -> Result<(), ToolError> {
        let cap = self.policies.of(target).max_queued_tasks;
        let counts = self.engine.counts().await.map_err(engine_error)?;
        let queued = counts.worker(target, JobStatus::Queued);
        if queued < cap {
            return Ok(());
        }
        if let Some(registry) = &self.registry {
            if registry.get_key(key).await.map_err(store_error)?.is_some() {
                return Ok(());
            }
        }
        let message = format!(
            "agent `{target}` has {queued} queued tasks, as many as its config allows \
             ({MAX_QUEUED_TASKS} = {cap}). Do the work in this task, or ask again after some \
             of them have run."
        );
        Err(self.policies.refuse(
            &ctx.agent_id,
            ToolError::limit_reached(MAX_QUEUED_TASKS, message),
        ))
    }

    fn agents(&self) -> Vec<String> {
        self.engine
            .list_workers()
            .into_iter()
            .filter(|w| w.category == WorkerCategory::Agent)
            .map(|w| w.name)
            .collect()
    }
}

#[async_trait]
impl TypedTool for CreateTaskTool {
    type Args = CreateTaskArgs;
    type Output = TaskCreated;
    type Error = ToolError;

    fn name(&self) -> &str {
        CREATE_TASK_TOOL
    }

    fn description(&self) -> &str {
        "Create a follow-up task for yourself or another agent (agentId). The task runs \
         later with the given prompt, in the same conversation and for the same user. \
         Returns the new task's job id."
    }

    async fn run(&self, args: CreateTaskArgs, ctx: ToolContext) -> Result<TaskCreated, ToolError> {
        if args.prompt.trim().is_empty() {
            return Err(ToolError::invalid_argument("/prompt", "must not be empty"));
        }
        let depth = self.child_depth(&ctx)?;
        let target = args.agent_id.unwrap_or_else(|| ctx.agent_id.clone());
        let agents = self.agents();
        if !agents.contains(&target) {
            return Err(ToolError::invalid_argument(
                "/agentId",
                format!(
                    "no agent `{target}`; agents: {}",
                    if agents.is_empty() {
                        "none".to_string()
                    } else {
                        agents.join(", ")
                    }
                ),
            ));
        }
        let key = format!("{CREATE_TASK_TOOL}:{}", ctx.idempotency_key());
        self.check_queue(&target, &key, &ctx).await?;
        let mut options = EnqueueOptions::default();
        if let Some(secs) = args.delay_seconds.filter(|s| *s > 0) {
            options = options.delay(Duration::from_secs(secs.min(MAX_DELAY_SECONDS)));
        }
        let mut extra = Map::new();
        extra.insert("parentJobId".into(), json!(ctx.job_id));
        extra.insert("requestedBy".into(), json!(ctx.agent_id));
        extra.insert(CTX_DEPTH.into(), json!(depth));
        let job_ctx = JobCtx {
            user_id: ctx.user_id.clone(),
            conversation_id: ctx.conversation_id.clone(),
            source: Some(format!("tool:{CREATE_TASK_TOOL}")),
            extra,
        };
        let enqueued = enqueue_once(
            &self.engine,
            self.registry.as_ref(),
            JobRequest {
                key,
                worker: target.clone(),
                args: json!({ "prompt": args.prompt }),
                ctx: job_ctx,
                options,
            },
        )
        .await?;
        Ok(TaskCreated {
            created: enqueued.created,
            job_id: enqueued.job_id,
            agent_id: target,
        })
    }
}
