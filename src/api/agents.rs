//! Agents: the list, tasks, memories, and conversations.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::parse::{fields, Request};
use super::ControlError;
use crate::agent::ProcessingResult;
use crate::config::AgentConfig;
use crate::conversation::ChatMessage;
use crate::job::{Job, JobCtx, JobStatus};
use crate::memory::{Memory, MemoryScope};
use crate::store::{JobCounts, PauseState};

/// One configured agent as `GET /v1/agents` shows it: what it runs on,
/// whether it is paused, and its jobs by status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// The agent's id (also the worker name of its tasks).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its first provider.
    pub provider: String,
    /// The model at that provider.
    pub model: String,
    /// Tools it may use.
    pub tools: Vec<String>,
    /// Tasks that may run at once.
    pub concurrency: usize,
    /// Whether its tasks are not claimed now.
    pub paused: bool,
    /// Tasks waiting.
    pub queued: u64,
    /// Tasks running.
    pub running: u64,
    /// Tasks completed (still kept).
    pub completed: u64,
    /// Tasks failed (still kept).
    pub failed: u64,
}

impl AgentState {
    /// `agent` with its pause state and job counts.
    pub fn new(agent: &AgentConfig, counts: &JobCounts, pause: &PauseState) -> Self {
        let count = |status| counts.worker(&agent.id, status);
        AgentState {
            id: agent.id.clone(),
            name: agent.name.clone(),
            provider: agent.model_config.provider.clone(),
            model: agent.model_config.model.clone(),
            tools: agent.tools.clone(),
            concurrency: agent.concurrency,
            paused: pause.is_paused(&agent.id),
            queued: count(JobStatus::Queued),
            running: count(JobStatus::Running),
            completed: count(JobStatus::Completed),
            failed: count(JobStatus::Failed),
        }
    }
}

/// `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentsAnswer {
    /// In config order.
    pub agents: Vec<AgentState>,
}

/// `POST /v1/agents/{id}/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRequest {
    /// What to do.
    pub prompt: String,
    /// The conversation: its recent messages are context, the answer is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The user the task is for (memories are kept per user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The JSON Schema the final answer must validate against; the result
    /// then carries the answer as JSON in `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Answer when the task has ended, with its ProcessingResult, instead
    /// of at once with its job.
    #[serde(
        default,
        deserialize_with = "fields::nullable",
        skip_serializing_if = "fields::is_false"
    )]
    pub wait: bool,
}

impl TaskRequest {
    /// A task with `prompt`, outside any conversation, not waited for.
    pub fn new(prompt: impl Into<String>) -> Self {
        TaskRequest {
            prompt: prompt.into(),
            conversation_id: None,
            user_id: None,
            output_schema: None,
            wait: false,
        }
    }

    /// The job an agent's task is: its args and ctx, `source` saying where
    /// it came from. (The runtime builds the same for `Troupe::task`; this
    /// is for queueing a task with no runtime started.)
    pub fn job_parts(&self, source: &str) -> (Value, JobCtx) {
        let mut args = json!({ "prompt": self.prompt });
        if let Some(c) = &self.conversation_id {
            args["conversationId"] = json!(c);
        }
        if let Some(schema) = &self.output_schema {
            args["outputSchema"] = schema.clone();
        }
        let ctx = JobCtx {
            user_id: self.user_id.clone(),
            conversation_id: self.conversation_id.clone(),
            source: Some(source.to_string()),
            ..JobCtx::default()
        };
        (args, ctx)
    }
}

impl Request for TaskRequest {
    fn validate(&self) -> Result<(), ControlError> {
        if self.prompt.trim().is_empty() {
            return Err(ControlError::field("prompt", "must not be empty"));
        }
        for (name, value) in [
            ("conversationId", &self.conversation_id),
            ("userId", &self.user_id),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(ControlError::field(name, "must not be empty"));
            }
        }
        if let Some(schema) = &self.output_schema {
            crate::agent::check_schema(schema)
                .map_err(|reason| ControlError::field("outputSchema", reason))?;
        }
        Ok(())
    }
}

/// What a task request answers: the queued job (201), or, when it was
/// waited for, how it ended (200; `success: false` with the error when
/// the job failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
// One per request, matched at once; boxing the job would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
pub enum TaskAnswer {
    /// Queued, durable; not waited for.
    Queued(Job),
    /// Waited for: the task's result.
    Finished(ProcessingResult),
}

/// `GET /v1/agents/{id}/memories?userId=&archived=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoriesQuery {
    /// One user's memories (else the agent's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Also the originals archived by compaction.
    #[serde(
        default,
        deserialize_with = "fields::nullable",
        skip_serializing_if = "fields::is_false"
    )]
    pub archived: bool,
}

impl MemoriesQuery {
    /// The scope asked for, of `agent`: refused (400, naming `userId`) when
    /// it is not a valid scope.
    pub fn scope(&self, agent: &str) -> Result<MemoryScope, ControlError> {
        let scope = match &self.user_id {
            Some(user) => MemoryScope::user(agent, user.clone()),
            None => MemoryScope::agent(agent),
        };
        scope
            .validate()
            .map_err(|e| ControlError::param("userId", e))?;
        Ok(scope)
    }
}

impl Request for MemoriesQuery {
    fn validate(&self) -> Result<(), ControlError> {
        if self.user_id.as_deref().is_some_and(|u| u.trim().is_empty()) {
            return Err(ControlError::param("userId", "must not be empty"));
        }
        Ok(())
    }
}

/// An agent's memories, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoriesAnswer {
    /// The memories of the scope asked for.
    pub memories: Vec<Memory>,
}

/// `GET /v1/conversations/{id}/messages`: oldest first. A conversation
/// exists once a message is added, so an empty one is "not found".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesAnswer {
    /// The messages.
    pub messages: Vec<ChatMessage>,
}

/// The agent with `id` in `agents`, or 404 naming the configured ones.
pub(crate) fn find_agent<'a>(
    agents: &'a [AgentConfig],
    id: &str,
) -> Result<&'a AgentConfig, ControlError> {
    agents.iter().find(|a| a.id == id).ok_or_else(|| {
        ControlError::NotFound(format!(
            "unknown agent `{id}` (configured: {})",
            agent_ids(agents)
        ))
    })
}

/// The configured agent ids, comma-separated.
pub(crate) fn agent_ids(agents: &[AgentConfig]) -> String {
    agents
        .iter()
        .map(|a| a.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
