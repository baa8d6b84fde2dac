//! The `remember` tool: the agent stores something it learned, through the
//! Memory actor.
//!
//! Args `{"type":"learning"|"fact"|"preference"|"summary","content":…,
//! "importance":1–10,"scope"?:"user"|"agent"}`. A memory about the task's
//! user goes to that user's scope, agent-wide knowledge to the agent's; by
//! default the user's when the task has one. Agent-wide memories reach every
//! user's tasks, so a task done for a user writes one only when the agent's
//! config has `sharedMemory = true` (see [`policy`](crate::tools::policy)). The memory is stored with the
//! idempotency key `remember:<job>:<step>:<call>`, so a repeated call stores
//! nothing new.
//!
//! Result: `{"ok":true,"data":{"memoryId":…,"created":…}}`.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use troupe_actors::Recipient;

use crate::memory::actor::Remember;
use crate::memory::{MemoryId, MemoryScope, MemoryType, NewMemory};
use crate::names::REMEMBER_TOOL;
use crate::tools::{Policies, ToolContext, ToolError, TypedTool};

use super::jobs::store_error;

/// What kind of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MemoryKind {
    /// Something learned from doing a task.
    Learning,
    /// A fact about the world or the project.
    Fact,
    /// A preference of the user.
    Preference,
    /// A summary of several things.
    Summary,
}

impl MemoryKind {
    /// The stored memory type of this kind.
    fn memory_type(self) -> MemoryType {
        match self {
            MemoryKind::Learning => MemoryType::Learning,
            MemoryKind::Fact => MemoryType::Fact,
            MemoryKind::Preference => MemoryType::Preference,
            MemoryKind::Summary => MemoryType::Summary,
        }
    }
}

/// Whose memories a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScopeArg {
    /// The current user's (falls back to the agent's when the task has none).
    User,
    /// The agent's own, shared across users.
    Agent,
}

/// The scope a memory tool works in: the user's when asked for (or by
/// default) and the task has a user, else the agent's.
pub(crate) fn scope_for(arg: Option<ScopeArg>, ctx: &ToolContext) -> MemoryScope {
    match (arg, &ctx.user_id) {
        (Some(ScopeArg::Agent), _) | (_, None) => MemoryScope::agent(&ctx.agent_id),
        (_, Some(user)) => MemoryScope::user(&ctx.agent_id, user),
    }
}

/// Arguments of `remember`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RememberArgs {
    /// What kind of memory this is.
    #[serde(rename = "type")]
    pub kind: MemoryKind,
    /// The memory, as a self-contained sentence.
    #[schemars(length(min = 1))]
    pub content: String,
    /// How much it matters, from 1 (trivia) to 10 (essential).
    #[schemars(range(min = 1, max = 10))]
    pub importance: u8,
    /// `user` (about the current user; the default) or `agent` (for all users).
    #[serde(default)]
    pub scope: Option<ScopeArg>,
}

/// What `remember` answers: the stored memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemoryStored {
    /// The memory.
    pub memory_id: MemoryId,
    /// False when a repeat of the call found the memory stored before.
    pub created: bool,
}

/// The `remember` tool.
pub(crate) struct RememberTool {
    memory: Recipient<Remember>,
    policies: Arc<Policies>,
}

impl RememberTool {
    /// Stores through the Memory actor (`ActorRef<MemoryActor>::recipient()`),
    /// in the scopes `policies` allow.
    pub(crate) fn new(memory: Recipient<Remember>, policies: Arc<Policies>) -> Self {
        RememberTool { memory, policies }
    }
}

#[async_trait]
impl TypedTool for RememberTool {
    type Args = RememberArgs;
    type Output = MemoryStored;
    type Error = ToolError;

    fn name(&self) -> &str {
        REMEMBER_TOOL
    }

    fn description(&self) -> &str {
        "Store a memory for later tasks: a learning, fact, preference or summary, \
         with an importance from 1 to 10."
    }

    async fn run(&self, args: RememberArgs, ctx: ToolContext) -> Result<MemoryStored, ToolError> {
        if args.scope == Some(ScopeArg::Agent) {
            self.policies.check_shared_memory(&ctx)?;
        }
        let scope = scope_for(args.scope, &ctx);
        let memory = NewMemory::new(
            &scope,
            args.kind.memory_type(),
            args.content,
            args.importance,
        )
        .with_source(ctx.job_id);
        let remembered = self
            .memory
            .send(Remember {
                memory,
                idempotency_key: Some(format!("{REMEMBER_TOOL}:{}", ctx.idempotency_key())),
            })
            .await
            .map_err(|e| ToolError::failed(format!("memory unavailable: {e}")))?
            .map_err(store_error)?;
        Ok(MemoryStored {
            memory_id: remembered.memory.id,
            created: remembered.created,
        })
    }
}
