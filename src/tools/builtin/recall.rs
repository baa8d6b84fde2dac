//! The `recall` tool: the agent searches its memories, through the Memory
//! actor, which ranks them by recency, importance and relevance.
//!
//! Args `{"query":…,"limit"?:1–50,"scope"?:"user"|"agent"}` (scope as for
//! `remember`). Result: `{"ok":true,"data":[{"id","type","content",
//! "importance","score","createdAt"}…]}`, best first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use troupe_actors::Recipient;

use crate::memory::actor::Recall;
use crate::memory::{MemoryId, MemoryType, ScoredMemory};
use crate::names::RECALL_TOOL;
use crate::tools::{ToolContext, ToolError, TypedTool};

use super::jobs::store_error;
use super::remember::{scope_for, ScopeArg};

/// How many memories when no limit is given.
pub(crate) const DEFAULT_RECALL_LIMIT: usize = 5;

/// Arguments of `recall`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RecallArgs {
    /// What the memories should be about (keywords work best).
    pub query: String,
    /// At most this many memories (default 5).
    #[serde(default)]
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
    /// `user` (the current user's memories; the default) or `agent`.
    #[serde(default)]
    pub scope: Option<ScopeArg>,
}

/// One memory `recall` answers with (it answers a list, best first).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecalledMemory {
    /// The memory.
    pub id: MemoryId,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: MemoryType,
    /// What it says.
    pub content: String,
    /// How much it matters, 1–10.
    pub importance: u8,
    /// Its rank score (recency, importance and relevance).
    pub score: f64,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl From<ScoredMemory> for RecalledMemory {
    fn from(s: ScoredMemory) -> Self {
        RecalledMemory {
            id: s.memory.id,
            kind: s.memory.kind,
            content: s.memory.content,
            importance: s.memory.importance,
            score: s.score,
            created_at: s.memory.created_at,
        }
    }
}

/// The `recall` tool.
pub(crate) struct RecallTool {
    memory: Recipient<Recall>,
}

impl RecallTool {
    /// Searches through the Memory actor (`ActorRef<MemoryActor>::recipient()`).
    pub(crate) fn new(memory: Recipient<Recall>) -> Self {
        RecallTool { memory }
    }
}

#[async_trait]
impl TypedTool for RecallTool {
    type Args = RecallArgs;
    type Output = Vec<RecalledMemory>;
    type Error = ToolError;

    fn name(&self) -> &str {
        RECALL_TOOL
    }

    fn description(&self) -> &str {
        "Search your memories for ones relevant to a query; returns the most useful \
         first (recent, important and relevant)."
    }

    async fn run(
        &self,
        args: RecallArgs,
        ctx: ToolContext,
    ) -> Result<Vec<RecalledMemory>, ToolError> {
        let limit = args
            .limit
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(DEFAULT_RECALL_LIMIT);
        let found = self
            .memory
            .send(Recall {
                scope: scope_for(args.scope, &ctx),
                query: args.query,
                limit,
            })
            .await
            .map_err(|e| ToolError::failed(format!("memory unavailable: {e}")))?
            .map_err(store_error)?;
        Ok(found.into_iter().map(RecalledMemory::from).collect())
    }
}
