//! The result of an agent task, in the seed's JSON shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::Usage;

/// What an agent task produced (`ProcessingResult` in the seed): stored as the
/// job's `result`, printed by `troupe task --wait --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessingResult {
    /// Whether the task reached a final answer.
    pub success: bool,
    /// The final answer.
    pub response: Option<String>,
    /// Every tool call made, in order, with its result.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Why the task failed, when it did.
    pub error: Option<String>,
    /// Tokens used by all model calls of the task.
    pub usage: Usage,
    /// Model calls made.
    pub steps: u32,
    /// The provider that gave the final answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model that gave the final answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The final answer parsed as JSON, for a task with an `outputSchema`
    /// (it validated against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// One tool call of a task (`toolCalls[]` in the seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallRecord {
    /// The tool's name.
    pub tool: String,
    /// The arguments the model gave.
    pub parameters: Value,
    /// What the tool returned, or `{"error": ...}` when it failed.
    pub result: Value,
}

impl ProcessingResult {
    /// The result of a task that failed before or without a final answer.
    pub fn failed(error: impl Into<String>) -> Self {
        ProcessingResult {
            success: false,
            response: None,
            tool_calls: Vec::new(),
            error: Some(error.into()),
            usage: Usage::default(),
            steps: 0,
            provider: None,
            model: None,
            output: None,
        }
    }
}
