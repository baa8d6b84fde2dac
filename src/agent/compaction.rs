//! `memory_compaction_worker`: condenses a scope's memories into a summary.
//!
//! Queued by the `scheduler` tool (args `{"kind":"memory_compaction",
//! "agentId", "userId"?, …}`). It lists the scope's live memories, asks the
//! agent's model to summarise them, then archives the originals and stores
//! the summary in one atomic step: originals are archived, never lost. A
//! repeat after a crash finds only the summary left and does nothing.
//!
//! Compactions of one scope run one after the other: each holds the scope's
//! lock ([`ScopeLocks`]) from the listing to the write, so a second one
//! sees what the first left (a summary alone: nothing to do) instead of
//! failing on originals the first archived meanwhile. The lock is this
//! process's; the store still refuses an original already archived.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::config::{AgentConfig, ModelConfig};
use crate::engine::{JobContext, Worker, WorkerCategory, WorkerError};
use crate::job::JobId;
use crate::memory::actor::{Compact, ListMemories};
use crate::memory::{Memory, MemoryScope, NewMemory, ScopeLocks};
use crate::names::{MEMORY_COMPACTION_WORKER, OFFLINE_PROVIDER};
use crate::provider::Message;

use super::gateway::{job_error, CallMeta};
use super::task::AgentRuntime;
use super::worker::RuntimeSlot;

/// Below this many live memories there is nothing worth compacting.
const MIN_MEMORIES: usize = 2;

/// The compaction worker.
pub(crate) struct CompactionWorker {
    runtime: RuntimeSlot,
    models: BTreeMap<String, ModelConfig>,
    /// The model of a job whose agent is not configured (any more).
    offline: ModelConfig,
    /// Held per scope from listing to writing.
    locks: ScopeLocks,
}

impl CompactionWorker {
    /// A worker summarising with each agent's own model.
    pub(crate) fn new(agents: &[AgentConfig], runtime: RuntimeSlot) -> Self {
        let models = agents
            .iter()
            .map(|a| (a.id.clone(), a.model_config.clone()))
            .collect();
        let offline = ModelConfig {
            temperature: Some(0.0),
            max_tokens: Some(500),
            ..ModelConfig::new(OFFLINE_PROVIDER, "offline")
        };
        Self {
            runtime,
            models,
            offline,
            locks: ScopeLocks::default(),
        }
    }

    /// Asks the agent's model for one paragraph that keeps what `memories` say.
    async fn summarize(
        &self,
        rt: &AgentRuntime,
        agent_id: &str,
        memories: &[Memory],
        job: JobId,
    ) -> Result<String, WorkerError> {
        let listing: String = memories
            .iter()
            .map(|m| format!("- {}\n", m.content))
            .collect();
        let model = self.models.get(agent_id).unwrap_or(&self.offline);
        let mut request = model.request(
            "Summarize these memories into one short paragraph that keeps every fact, preference and lesson."
                .into(),
            vec![Message::user(listing)],
            Default::default(),
        );
        request.temperature = Some(0.0);
        request.max_tokens = Some(model.max_tokens.map_or(1000, |m| m.min(1000)));
        let meta = CallMeta {
            agent_id: agent_id.to_string(),
            job_id: Some(job),
        };
        let summary = rt
            .models
            .generate(&meta, model, request)
            .await
            .map_err(|e| job_error(&format!("memory_compaction for `{agent_id}`"), e))?;
        if summary.text.trim().is_empty() {
            return Err(WorkerError::retryable(
                "memory_compaction: the model returned an empty summary",
            ));
        }
        Ok(summary.text)
    }
}

/// Whose memories a compaction job is about: `agentId` (from its args, or
/// its ctx as the `scheduler` tool writes it) and the user, if any.
fn job_scope(args: &Value, ctx: &JobContext) -> Result<MemoryScope, WorkerError> {
    let agent_id = args["agentId"]
        .as_str()
        .or_else(|| ctx.ctx.extra.get("agentId").and_then(Value::as_str))
        .ok_or_else(|| {
            WorkerError::permanent("memory_compaction: `agentId` is missing from the job's args")
        })?;
    let user_id = args["userId"]
        .as_str()
        .map(str::to_string)
        .or_else(|| ctx.ctx.user_id.clone());
    Ok(MemoryScope {
        agent_id: agent_id.to_string(),
        user_id,
    })
}

/// A Memory actor call that failed: retried, as the actor restarts.
fn memory_error(e: impl std::fmt::Display) -> WorkerError {
    WorkerError::retryable(format!("memory_compaction: {e}"))
}

#[async_trait]
impl Worker for CompactionWorker {
    fn name(&self) -> &str {
        MEMORY_COMPACTION_WORKER
    }

    fn description(&self) -> &str {
        "Summarises an agent's memories (per user) into fewer summary memories; the originals are archived."
    }

    fn category(&self) -> WorkerCategory {
        WorkerCategory::Memory
    }

    async fn run(&self, args: Value, ctx: JobContext) -> Result<Value, WorkerError> {
        let Some(rt) = self.runtime.get() else {
            return Err(WorkerError::retryable(
                "the agent runtime is not started yet",
            ));
        };
        let scope = job_scope(&args, &ctx)?;
        let _held = self.locks.lock(&scope).await;
        let memories = rt
            .memory
            .send(ListMemories {
                scope: scope.clone(),
                include_archived: false,
            })
            .await
            .map_err(memory_error)?
            .map_err(memory_error)?;
        if memories.len() < MIN_MEMORIES {
            return Ok(json!({ "compacted": 0, "reason": "fewer than 2 live memories" }));
        }
        let summary = self
            .summarize(&rt, &scope.agent_id, &memories, ctx.job_id)
            .await?;
        let importance = memories.iter().map(|m| m.importance).max().unwrap_or(5);
        let summary_memory =
            NewMemory::new(&scope, "summary", summary, importance).with_source(ctx.job_id);
        let compacted = rt
            .memory
            .send(Compact {
                scope,
                originals: memories.iter().map(|m| m.id).collect(),
                summaries: vec![summary_memory],
            })
            .await
            .map_err(memory_error)?
            .map_err(memory_error)?;
        let summary_ids: Vec<_> = compacted.summaries.iter().map(|m| m.id).collect();
        Ok(json!({ "archived": compacted.archived.len(), "summaryIds": summary_ids }))
    }
}
