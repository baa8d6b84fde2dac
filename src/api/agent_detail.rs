//! One agent seen closely (`GET /v1/agents/{id}`: its settings, no
//! secrets: provider keys live with the providers, not the agent) and its
//! memories ranked for a query (`GET /v1/agents/{id}/recall?q=`), with the
//! scores that put them in that order: what the Studio's agent page shows.

use serde::{Deserialize, Serialize};

use super::parse::Request;
use super::{AgentState, ControlError};
use crate::config::{AgentConfig, ModelConfig};
use crate::memory::{Memory, MemoryScope, ScoredMemory};
use crate::provider::Budget;

/// Most memories a recall answers.
pub const MAX_RECALL: usize = 100;

/// Memories a recall answers when `limit` is not given.
pub const DEFAULT_RECALL: usize = 10;

/// `GET /v1/agents/{id}`: the agent's state and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentDetail {
    /// Pause state and job counts, as the list shows them.
    #[serde(flatten)]
    pub state: AgentState,
    /// The system prompt.
    pub system_prompt: String,
    /// Model, sampling settings and fallbacks.
    pub model_config: ModelConfig,
    /// Model calls per task before it fails.
    pub max_steps: u32,
    /// Whether it reflects after a task.
    pub reflect: bool,
    /// Daily limits, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

impl AgentDetail {
    /// `agent`'s settings with its `state`.
    pub fn new(agent: &AgentConfig, state: AgentState) -> Self {
        AgentDetail {
            state,
            system_prompt: agent.system_prompt.clone(),
            model_config: agent.model_config.clone(),
            max_steps: agent.max_steps,
            reflect: agent.reflect,
            budget: agent.budget,
        }
    }
}

/// `GET /v1/agents/{id}/recall?q=&userId=&limit=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecallQuery {
    /// What to recall memories for.
    pub q: String,
    /// One user's memories (else the agent's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// At most this many, 1 to [`MAX_RECALL`] (default [`DEFAULT_RECALL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl RecallQuery {
    /// The scope asked for, of `agent` (400 naming `userId` if invalid).
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

impl Request for RecallQuery {
    fn validate(&self) -> Result<(), ControlError> {
        if self.q.trim().is_empty() {
            return Err(ControlError::param("q", "must not be empty"));
        }
        if self.user_id.as_deref().is_some_and(|u| u.trim().is_empty()) {
            return Err(ControlError::param("userId", "must not be empty"));
        }
        match self.limit {
            Some(n) if !(1..=MAX_RECALL).contains(&n) => Err(ControlError::param(
                "limit",
                format!("expected 1 to {MAX_RECALL}, got `{n}`"),
            )),
            _ => Ok(()),
        }
    }
}

/// A recall's answer, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecallAnswer {
    /// The memories with their scores.
    pub memories: Vec<Recalled>,
}

/// One recalled memory and why it ranks where it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recalled {
    /// The memory.
    pub memory: Memory,
    /// The weighted sum of the three factors.
    pub score: f64,
    /// Normalised recency, 0 to 1.
    pub recency: f64,
    /// Normalised importance, 0 to 1.
    pub importance: f64,
    /// Normalised relevance to the query, 0 to 1.
    pub relevance: f64,
}

impl From<ScoredMemory> for Recalled {
    fn from(s: ScoredMemory) -> Self {
        Recalled {
            memory: s.memory,
            score: s.score,
            recency: s.recency,
            importance: s.importance,
            relevance: s.relevance,
        }
    }
}
