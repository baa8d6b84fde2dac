//! Anthropic Messages API wire format.
//!
//! Encoding takes the neutral conversation, so a conversation begun on an
//! OpenAI-compatible provider continues here: tool results become
//! `tool_result` blocks in a user message, JSON-string arguments become `input`
//! objects, consecutive turns of one role are merged (the API wants strict
//! alternation) and tool-call ids are made to fit `^[a-zA-Z0-9_-]+$`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::error::ProviderError;
use super::model::{
    FinishReason, GenerateRequest, GenerateResponse, Message, ToolCall, ToolChoice, ToolDefinition,
    Usage,
};
use super::tools_json::{self, WireTools};

/// Path appended to the base URL.
pub(crate) const PATH: &str = "/messages";
/// The `anthropic-version` header value this encoder is written against.
pub(crate) const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is mandatory for Anthropic; used when the request has none.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Makes any tool-call id acceptable to Anthropic (letters, digits, `_`, `-`).
pub(crate) fn anthropic_call_id(id: &str) -> Cow<'_, str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.is_empty() {
        Cow::Borrowed("call")
    } else if id.chars().all(ok) {
        Cow::Borrowed(id)
    } else {
        Cow::Owned(id.chars().map(|c| if ok(c) { c } else { '_' }).collect())
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "WireTools::is_empty")]
    tools: WireTools<'a, OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<OutBlock<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: &'a str,
        input: &'a Value,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        content: &'a str,
        is_error: bool,
    },
}

#[derive(Serialize)]
struct OutTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

static EMPTY_OBJECT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!({}));

fn push_block<'a>(turns: &mut Vec<Turn<'a>>, role: &'static str, block: OutBlock<'a>) {
    match turns.last_mut() {
        Some(t) if t.role == role => t.content.push(block),
        _ => turns.push(Turn {
            role,
            content: vec![block],
        }),
    }
}

fn wire_request<'a>(req: &'a GenerateRequest, encoded: Option<&'a RawValue>) -> WireRequest<'a> {
    let mut turns: Vec<Turn<'_>> = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        match m {
            Message::User { content } => {
                if !content.is_empty() {
                    push_block(&mut turns, "user", OutBlock::Text { text: content });
                }
            }
            Message::Assistant { text, tool_calls } => {
                if !text.is_empty() {
                    push_block(&mut turns, "assistant", OutBlock::Text { text });
                }
                for c in tool_calls {
                    let input = match &c.arguments {
                        Value::Object(_) if c.arguments_error.is_none() => &c.arguments,
                        // `input` must be an object; bad or non-object arguments
                        // are explained by the tool result that follows.
                        _ => &*EMPTY_OBJECT,
                    };
                    let id = anthropic_call_id(&c.id);
                    let block = OutBlock::ToolUse {
                        id,
                        name: &c.name,
                        input,
                    };
                    push_block(&mut turns, "assistant", block);
                }
            }
            Message::Tool(r) => {
                let block = OutBlock::ToolResult {
                    tool_use_id: anthropic_call_id(&r.call_id),
                    content: &r.content,
                    is_error: r.is_error,
                };
                push_block(&mut turns, "user", block);
            }
        }
    }
    let tools = WireTools::new(&req.tools, encoded, out_tool);
    let tool_choice = (!req.tools.is_empty()).then(|| match &req.tool_choice {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
    });
    WireRequest {
        model: &req.model,
        max_tokens: req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        system: req.system.as_deref(),
        messages: turns,
        tools,
        tool_choice,
        // Anthropic accepts 0..=1 (OpenAI 0..=2); a config written for one
        // provider must not turn failover into a bad request.
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
    }
}

/// Builds the JSON body of a Messages request, as a `Value` (for tests and
/// debugging; the hot path uses [`encode_body`]).
pub(crate) fn encode(req: &GenerateRequest) -> Value {
    serde_json::to_value(wire_request(req, None)).unwrap_or(Value::Null)
}

/// Serializes the request body straight to bytes, borrowing from `req`;
/// `tools`, when given, is the request's tools array as [`encode_tools`]
/// made it for an earlier request with the same definitions.
pub(crate) fn encode_body(
    req: &GenerateRequest,
    tools: Option<&RawValue>,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&wire_request(req, tools))
}

/// The `tools` array of a body, on its own (see `tools_json.rs`).
pub(crate) fn encode_tools(tools: &[ToolDefinition]) -> serde_json::Result<Box<RawValue>> {
    tools_json::encode(tools, out_tool)
}

fn out_tool(t: &ToolDefinition) -> OutTool<'_> {
    OutTool {
        name: &t.name,
        description: &t.description,
        input_schema: &t.parameters,
    }
}

#[derive(Deserialize)]
struct WireMessage {
    model: Option<String>,
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Option<Value>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

fn finish_reason(raw: Option<&str>, has_calls: bool) -> FinishReason {
    match raw {
        Some("end_turn") | Some("stop_sequence") => FinishReason::Stop,
        Some("max_tokens") | Some("model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_string()),
        None if has_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    }
}

/// Parses a 2xx Messages body. Anything unparsable is a malformed-response
/// error naming provider and model.
pub(crate) fn decode(
    body: &[u8],
    provider: &str,
    model: &str,
) -> Result<GenerateResponse, ProviderError> {
    let m: WireMessage = ProviderError::parse_body(body, provider, model, "a Messages response")?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in m.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall::new(
                id,
                name,
                match input {
                    None | Some(Value::Null) => json!({}),
                    Some(v) => v,
                },
            )),
            Block::Other => {}
        }
    }
    let usage = m
        .usage
        .map(|u| {
            let cache_read = u.cache_read_input_tokens.unwrap_or(0);
            Usage {
                input_tokens: u.input_tokens.unwrap_or(0)
                    + u.cache_creation_input_tokens.unwrap_or(0)
                    + cache_read,
                output_tokens: u.output_tokens.unwrap_or(0),
                cached_input_tokens: cache_read,
            }
        })
        .unwrap_or_default();
    Ok(GenerateResponse {
        text,
        finish_reason: finish_reason(m.stop_reason.as_deref(), !tool_calls.is_empty()),
        tool_calls,
        usage,
        provider: provider.to_string(),
        model: m
            .model
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| model.to_string()),
        latency: std::time::Duration::ZERO,
    })
}
