//! The `scheduler` tool, as the seed defines it: schedules background work,
//! today one kind, a memory compaction job for `memory_compaction_worker`.
//!
//! Args `{"kind":"memory_compaction","userId"?,"conversationId"?,"title"?,
//! "content"?}`; result `{"ok":true,"data":{"scheduled":true,"jobId":…,
//! "workerName":"memory_compaction_worker"}}`. A repeated call (same task,
//! step and call id) schedules nothing new and answers with the same job;
//! see [`jobs`](super::jobs) for the exact guarantee. A `userId` or
//! `conversationId` other than the task's is refused unless the agent's
//! config grants it (`users`, `conversations`; see
//! [`policy`](crate::tools::policy)).

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::engine::WorkerEngine;
use crate::job::{EnqueueOptions, JobCtx, JobId};
pub(crate) use crate::names::MEMORY_COMPACTION_WORKER;
use crate::names::SCHEDULER_TOOL;
use crate::store::IdempotencyStore;
use crate::tools::{Policies, ToolContext, ToolError, TypedTool};

use super::jobs::{enqueue_once, JobRequest};

/// What can be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ScheduleKind {
    /// Summarise the memories of this agent (and user) into fewer summary
    /// memories; the originals are archived.
    MemoryCompaction,
}

/// Arguments of `scheduler`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SchedulerArgs {
    /// What to schedule.
    pub kind: ScheduleKind,
    /// The user whose memories to compact; defaults to the task's user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The conversation the work relates to; defaults to the task's.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// A short title for the job.
    #[serde(default)]
    pub title: Option<String>,
    /// Notes for the job (e.g. what the compaction should keep).
    #[serde(default)]
    pub content: Option<String>,
}

/// What `scheduler` answers: the job it queued (or, for a repeated call,
/// found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Scheduled {
    /// Always true: a call either schedules (or finds) its job or fails.
    pub scheduled: bool,
    /// The job.
    pub job_id: JobId,
    /// The worker it runs on ([`MEMORY_COMPACTION_WORKER`]).
    pub worker_name: &'static str,
}

/// The `scheduler` tool.
pub(crate) struct SchedulerTool {
    engine: WorkerEngine,
    registry: Option<Arc<dyn IdempotencyStore>>,
    policies: Arc<Policies>,
}

impl SchedulerTool {
    /// Schedules through `engine`, once per call thanks to `registry` (the
    /// job's unique key alone guards only while the job is queued or
    /// running), for the users and conversations `policies` allow.
    pub(crate) fn new(
        engine: WorkerEngine,
        registry: Option<Arc<dyn IdempotencyStore>>,
        policies: Arc<Policies>,
    ) -> Self {
        SchedulerTool {
            engine,
            registry,
            policies,
        }
    }
}

#[async_trait]
impl TypedTool for SchedulerTool {
    type Args = SchedulerArgs;
    type Output = Scheduled;
    type Error = ToolError;

    fn name(&self) -> &str {
        SCHEDULER_TOOL
    }

    fn description(&self) -> &str {
        "Schedule background work. kind \"memory_compaction\" queues a job that \
         summarises your memories (of the given user, by default the current one) \
         into fewer summary memories. Returns the job id."
    }

    async fn run(&self, args: SchedulerArgs, ctx: ToolContext) -> Result<Scheduled, ToolError> {
        let ScheduleKind::MemoryCompaction = args.kind;
        if let Some(user) = &args.user_id {
            self.policies
                .check_user(&ctx, user, "compact the memories of")?;
        }
        if let Some(conversation) = &args.conversation_id {
            self.policies
                .check_conversation(&ctx, conversation, "schedule work for")?;
        }
        let user_id = args.user_id.or_else(|| ctx.user_id.clone());
        let conversation_id = args.conversation_id.or_else(|| ctx.conversation_id.clone());
        let mut job_args = Map::new();
        job_args.insert("kind".into(), json!("memory_compaction"));
        job_args.insert("agentId".into(), json!(ctx.agent_id));
        for (key, value) in [
            ("userId", &user_id),
            ("conversationId", &conversation_id),
            ("title", &args.title),
            ("content", &args.content),
        ] {
            if let Some(value) = value {
                job_args.insert(key.into(), json!(value));
            }
        }
        let mut extra = Map::new();
        extra.insert("agentId".into(), json!(ctx.agent_id));
        extra.insert("parentJobId".into(), json!(ctx.job_id));
        let job_ctx = JobCtx {
            user_id,
            conversation_id,
            source: Some(format!("tool:{SCHEDULER_TOOL}")),
            extra,
        };
        let enqueued = enqueue_once(
            &self.engine,
            self.registry.as_ref(),
            JobRequest {
                key: format!("{SCHEDULER_TOOL}:{}", ctx.idempotency_key()),
                worker: MEMORY_COMPACTION_WORKER.into(),
                args: Value::Object(job_args),
                ctx: job_ctx,
                options: EnqueueOptions::default(),
            },
        )
        .await?;
        Ok(Scheduled {
            scheduled: true,
            job_id: enqueued.job_id,
            worker_name: MEMORY_COMPACTION_WORKER,
        })
    }
}
