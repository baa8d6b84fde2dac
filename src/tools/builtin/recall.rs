//! The `recall` tool: the agent searches its memories, through the Memory
//! actor, which ranks them by recency, importance and relevance.
//!
//! Args `{"query":…,"limit"?:1–50,"scope"?:"user"|"agent"}` (scope as for
//! `remember`). Result: `{"ok":true,"data":[{"id","type","content",
//! "importance","score","createdAt"}…]}`, best first.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use troupe_actors::Recipient;

use crate::memory::actor::Recall;
use crate::names::RECALL_TOOL;
use crate::tools::{ToolContext, ToolError, TypedTool};

use super::jobs::store_error;
use super::remember::{scope_for, ScopeArg};

/// How many memories when no limit is given.
pub const DEFAULT_RECALL_LIMIT: usize = 5;

/// Arguments of `recall`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecallArgs {
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

/// The `recall` tool.
pub struct RecallTool {
    memory: Recipient<Recall>,
}

impl RecallTool {
    /// Searches through the Memory actor (`ActorRef<MemoryActor>::recipient()`).
    pub fn new(memory: Recipient<Recall>) -> Self {
        RecallTool { memory }
    }
}

#[async_trait]
impl TypedTool for RecallTool {
    type Args = RecallArgs;

    fn name(&self) -> &str {
        RECALL_TOOL
    }

    fn description(&self) -> &str {
        "Search your memories for ones relevant to a query; returns the most useful \
         first (recent, important and relevant)."
    }

    async fn run(&self, args: RecallArgs, ctx: ToolContext) -> Result<Value, ToolError> {
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
        let data: Vec<Value> = found
            .iter()
            .map(|s| {
                json!({
                    "id": s.memory.id,
                    "type": s.memory.kind,
                    "content": s.memory.content,
                    "importance": s.memory.importance,
                    "score": s.score,
                    "createdAt": s.memory.created_at,
                })
            })
            .collect();
        Ok(json!({ "ok": true, "data": data }))
    }
}
