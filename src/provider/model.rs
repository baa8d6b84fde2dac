//! The one request/response model every provider speaks.
//!
//! Agents build a [`GenerateRequest`] without knowing which provider will
//! answer; the encoders in [`super::openai`] and [`super::anthropic`] turn it
//! into each API's wire shape. Because the conversation is stored in this
//! neutral form, a task that began on one provider can fail over to another
//! in the middle of a tool-calling loop.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One call to a model: everything a provider needs to produce the next turn.
///
/// The model name is part of the request because a failover candidate is a
/// (provider, model) pair: the same conversation is sent with another model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest {
    /// Model id as the provider knows it (`gpt-4o-mini`, `claude-haiku-4-5`).
    pub model: String,
    /// System prompt; sent as `system` (Anthropic) or a leading system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation so far, oldest first.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Tools the model may call. Shared, since every step of a task sends
    /// the same definitions (JSON Schemas) again.
    #[serde(default, skip_serializing_if = "no_tools")]
    pub tools: Arc<[ToolDefinition]>,
    /// Whether and which tool the model must call; ignored when `tools` is empty.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Sampling temperature; provider default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Upper bound on output tokens; required by Anthropic (a default is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The JSON Schema the final answer must validate against, for the
    /// provider's native JSON mode where it has one (OpenAI and Mistral:
    /// `response_format` `json_schema`; DeepSeek: `json_object`). The
    /// instruction to answer so is in the system prompt already, for every
    /// provider; the answer is checked by the task, not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Arc<Value>>,
}

fn no_tools(tools: &Arc<[ToolDefinition]>) -> bool {
    tools.is_empty()
}

/// One turn of the conversation, in provider-neutral form.
///
/// Tool results are their own variant (not a user message) so each encoder can
/// place them where its API wants them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "camelCase")]
pub enum Message {
    /// Text from the user (or from the runtime speaking for the user).
    User {
        /// The text.
        content: String,
    },
    /// A previous model turn: text and/or tool calls.
    Assistant {
        /// Text part of the turn; may be empty when only tools were called.
        #[serde(default)]
        text: String,
        /// Tool calls the model made in this turn.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The outcome of one tool call, answering an earlier assistant turn.
    Tool(ToolResult),
}

impl Message {
    /// A user message; the common case deserves a short constructor.
    pub fn user(content: impl Into<String>) -> Self {
        Message::User {
            content: content.into(),
        }
    }

    /// An assistant message with text only.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::Assistant {
            text: text.into(),
            tool_calls: Vec::new(),
        }
    }

    /// A tool result answering the call with id `call_id`.
    pub fn tool_result(
        call_id: impl Into<String>,
        content: impl Into<String>,
        is_error: bool,
    ) -> Self {
        Message::Tool(ToolResult {
            call_id: call_id.into(),
            content: content.into(),
            is_error,
        })
    }
}

/// The result of running one tool call, sent back to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    /// Id of the tool call this answers (as the model that made it gave it).
    pub call_id: String,
    /// Result text (usually JSON) or error text.
    pub content: String,
    /// True when the tool failed; lets the model correct itself.
    #[serde(default)]
    pub is_error: bool,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDefinition {
    /// Tool name the model uses in its calls.
    pub name: String,
    /// What the tool does; the model chooses tools by this text.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// Whether the model may, must or must not call tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", tag = "type", content = "name")]
pub enum ToolChoice {
    /// The model decides (the APIs' default).
    #[default]
    Auto,
    /// The model must answer in text.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// Provider-assigned call id; the tool result must quote it.
    pub id: String,
    /// Name of the tool to call.
    pub name: String,
    /// Parsed arguments; `Value::Null` when they were not valid JSON.
    pub arguments: Value,
    /// Set when the model produced arguments that are not valid JSON.
    ///
    /// Such a call is not an error of the provider: the response is returned
    /// and the agent sends the parse error back as a tool error so the model
    /// can fix its call (see `ARCHITECTURE.md`, "failures are values").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_error: Option<ArgumentsError>,
}

impl ToolCall {
    /// A tool call with parsed arguments.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments,
            arguments_error: None,
        }
    }
}

/// Arguments a model sent that did not parse as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgumentsError {
    /// The argument text exactly as received, so it can be echoed back.
    pub raw: String,
    /// The JSON parser's message, naming the position.
    pub message: String,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FinishReason {
    /// Natural end of the answer (or a stop sequence).
    Stop,
    /// Stopped at `max_tokens`; the answer is cut off.
    Length,
    /// Stopped to let the caller run tool calls.
    ToolCalls,
    /// Blocked or refused by the provider's content filter.
    ContentFilter,
    /// A reason this crate does not know yet, verbatim.
    Other(String),
}

/// Token counts of one call, as the provider reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// All input tokens, including cached ones.
    pub input_tokens: u64,
    /// Output tokens, including reasoning tokens.
    pub output_tokens: u64,
    /// Part of `input_tokens` served from the provider's prompt cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
}

impl Usage {
    /// Input plus output; what tokens-per-minute limits count.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// A model's answer, plus who answered and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    /// Text of the answer; empty when the model only called tools.
    pub text: String,
    /// Tool calls, in the order the model made them.
    pub tool_calls: Vec<ToolCall>,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Name of the configured provider that answered (after failover).
    pub provider: String,
    /// Model that answered, as the provider reported it.
    pub model: String,
    /// Wall time of the HTTP call that produced this answer.
    pub latency: Duration,
}

impl GenerateResponse {
    /// The assistant message to append to the conversation for the next turn.
    pub fn to_message(&self) -> Message {
        Message::Assistant {
            text: self.text.clone(),
            tool_calls: self.tool_calls.clone(),
        }
    }
}
