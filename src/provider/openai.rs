//! OpenAI chat-completions wire format, shared by OpenAI, DeepSeek, Mistral
//! and any OpenAI-compatible server (Ollama, vLLM, llama.cpp, OpenRouter).
//!
//! Encoding takes the neutral conversation, so a conversation begun on
//! Anthropic continues here: tool results become `role:"tool"` messages and
//! tool-call arguments are re-serialized as JSON strings. Mistral's 9-character
//! tool-call ids are produced by [`mistral_call_id`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::config::ProviderKind;
use super::error::ProviderError;
use super::model::{
    ArgumentsError, FinishReason, GenerateRequest, GenerateResponse, Message, ToolCall, ToolChoice,
    ToolDefinition, Usage,
};
use super::tools_json::{self, WireTools};

/// Path appended to the base URL.
pub(crate) const PATH: &str = "/chat/completions";

/// Maps any tool-call id to the 9 letters-or-digits Mistral insists on.
///
/// Deterministic (FNV-1a, base 62), so the assistant's call and the later
/// tool result map to the same id in every request. Ids that already fit are
/// kept, so Mistral's own ids round-trip unchanged.
pub(crate) fn mistral_call_id(id: &str) -> String {
    if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return id.to_string();
    }
    const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (0..9)
        .map(|_| {
            let c = ALPHABET[(h % 62) as usize] as char;
            h /= 62;
            c
        })
        .collect()
}

/// The argument string to send for a tool call: the raw text if it never
/// parsed (so the model sees what it wrote), else the JSON.
pub(crate) fn arguments_string(call: &ToolCall) -> String {
    match (&call.arguments_error, &call.arguments) {
        (Some(e), _) => e.raw.clone(),
        (None, Value::Null) => "{}".to_string(),
        (None, v) => v.to_string(),
    }
}

/// Builds the JSON body of a chat-completions request, as a `Value` (for
/// tests and debugging; the hot path uses [`encode_body`]).
pub(crate) fn encode(req: &GenerateRequest, kind: ProviderKind) -> Value {
    serde_json::to_value(wire_request(req, kind, None)).unwrap_or(Value::Null)
}

/// Serializes the request body straight to bytes, borrowing from `req`;
/// `tools`, when given, is the request's tools array as [`encode_tools`]
/// made it for an earlier request with the same definitions.
pub(crate) fn encode_body(
    req: &GenerateRequest,
    kind: ProviderKind,
    tools: Option<&RawValue>,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&wire_request(req, kind, tools))
}

/// The `tools` array of a body, on its own (see `tools_json.rs`).
pub(crate) fn encode_tools(tools: &[ToolDefinition]) -> serde_json::Result<Box<RawValue>> {
    tools_json::encode(tools, out_tool)
}

fn out_tool(t: &ToolDefinition) -> OutTool<'_> {
    OutTool {
        kind: "function",
        function: OutToolFunction {
            name: &t.name,
            description: &t.description,
            parameters: &t.parameters,
        },
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "WireTools::is_empty")]
    tools: WireTools<'a, OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum OutMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<OutToolCall<'a>>,
    },
    Tool {
        tool_call_id: Cow<'a, str>,
        content: Cow<'a, str>,
    },
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    arguments: String,
}

#[derive(Serialize)]
struct OutTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutToolFunction<'a>,
}

#[derive(Serialize)]
struct OutToolFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

fn map_id(id: &str, kind: ProviderKind) -> Cow<'_, str> {
    if kind == ProviderKind::Mistral {
        Cow::Owned(mistral_call_id(id))
    } else {
        Cow::Borrowed(id)
    }
}

fn wire_request<'a>(
    req: &'a GenerateRequest,
    kind: ProviderKind,
    encoded: Option<&'a RawValue>,
) -> WireRequest<'a> {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        messages.push(OutMessage::System { content: system });
    }
    for m in &req.messages {
        messages.push(match m {
            Message::User { content } => OutMessage::User { content },
            Message::Assistant { text, tool_calls } => OutMessage::Assistant {
                content: (!text.is_empty() || tool_calls.is_empty()).then_some(text.as_str()),
                tool_calls: tool_calls
                    .iter()
                    .map(|c| OutToolCall {
                        id: map_id(&c.id, kind),
                        kind: "function",
                        function: OutFunction {
                            name: &c.name,
                            arguments: arguments_string(c),
                        },
                    })
                    .collect(),
            },
            // The protocol has no error flag; say it in the content.
            Message::Tool(r) => OutMessage::Tool {
                tool_call_id: map_id(&r.call_id, kind),
                content: if r.is_error {
                    Cow::Owned(format!("Error: {}", r.content))
                } else {
                    Cow::Borrowed(&r.content)
                },
            },
        });
    }
    let tools = WireTools::new(&req.tools, encoded, out_tool);
    let tool_choice = (!req.tools.is_empty()).then(|| match &req.tool_choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required if kind == ProviderKind::Mistral => json!("any"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
    });
    // OpenAI rejects `max_tokens` for reasoning models; the others only know it.
    let (max_tokens, max_completion_tokens) = if kind == ProviderKind::Openai {
        (None, req.max_tokens)
    } else {
        (req.max_tokens, None)
    };
    WireRequest {
        model: &req.model,
        messages,
        tools,
        tool_choice,
        temperature: req.temperature,
        max_tokens,
        max_completion_tokens,
        response_format: req
            .output_schema
            .as_deref()
            .and_then(|schema| response_format(schema, kind)),
    }
}

/// The native JSON mode for an output schema: `json_schema` where the
/// provider takes one (OpenAI, Mistral), strict when the schema meets the
/// strict rules (else the schema guides and the task's check decides);
/// DeepSeek's `json_object` (JSON, not the schema: the instruction in the
/// system prompt, which says "JSON" as DeepSeek requires, carries the
/// schema). An OpenAI-compatible server gets none: whether it takes
/// `response_format` is unknown, and a 400 would fail the task; the
/// instruction and the check still hold it to the schema.
fn response_format(schema: &Value, kind: ProviderKind) -> Option<Value> {
    match kind {
        ProviderKind::Openai | ProviderKind::Mistral if is_object_schema(schema) => Some(json!({
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(schema),
                "schema": schema,
                "strict": strict_compatible(schema),
            }
        })),
        ProviderKind::Deepseek if is_object_schema(schema) => Some(json!({"type": "json_object"})),
        _ => None,
    }
}

/// Whether the answer is an object: both native modes produce one only.
fn is_object_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
}

/// The `json_schema.name` (`^[a-zA-Z0-9_-]{1,64}$`): the schema's title
/// where it has one that fits, else `output`.
fn schema_name(schema: &Value) -> String {
    let title: String = schema
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if title.trim_matches('_').is_empty() {
        "output".to_string()
    } else {
        title
    }
}

/// Whether OpenAI's strict mode takes `schema`: every object closes its
/// properties (`additionalProperties: false`) and requires all of them.
/// A schema that does not is sent non-strict rather than refused.
fn strict_compatible(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            let is_object = map.get("type").and_then(Value::as_str) == Some("object")
                || map.contains_key("properties");
            if is_object {
                if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                    return false;
                }
                let required: Vec<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let props = map.get("properties").and_then(Value::as_object);
                if props.is_some_and(|p| p.keys().any(|k| !required.contains(&k.as_str()))) {
                    return false;
                }
            }
            map.values().all(strict_compatible)
        }
        Value::Array(items) => items.iter().all(strict_compatible),
        _ => true,
    }
}

#[derive(Deserialize)]
struct Completion {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: WireMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default, deserialize_with = "content_text")]
    content: String,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

/// `content` is a string, null, or (Mistral, some proxies) an array of typed
/// parts; read it straight into the text without building a `Value`.
fn content_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    #[derive(Deserialize)]
    struct Part {
        #[serde(rename = "type")]
        kind: Option<String>,
        text: Option<String>,
    }
    impl<'de> Visitor<'de> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, null or an array of content parts")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<String, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
            let mut out = String::new();
            while let Some(p) = seq.next_element::<Part>()? {
                if p.kind.as_deref() == Some("text") {
                    out.push_str(p.text.as_deref().unwrap_or(""));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Parses arguments that should be a JSON object in a string; see
/// [`ToolCall::arguments_error`] for why bad JSON is not a provider error.
pub(crate) fn parse_arguments(raw: Option<Value>) -> (Value, Option<ArgumentsError>) {
    match raw {
        None | Some(Value::Null) => (json!({}), None),
        Some(Value::String(s)) if s.trim().is_empty() => (json!({}), None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(v) => (v, None),
            Err(e) => (
                Value::Null,
                Some(ArgumentsError {
                    raw: s,
                    message: e.to_string(),
                }),
            ),
        },
        // Some servers (older Ollama) send the object itself.
        Some(v) => (v, None),
    }
}

fn finish_reason(raw: Option<&str>, has_calls: bool) -> FinishReason {
    match raw {
        Some("stop") => FinishReason::Stop,
        Some("length") | Some("model_length") => FinishReason::Length,
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_string()),
        None if has_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    }
}

/// Parses a 2xx chat-completions body. Anything unparsable, or without a
/// choice, is a malformed-response error naming provider and model.
pub(crate) fn decode(
    body: &[u8],
    provider: &str,
    model: &str,
) -> Result<GenerateResponse, ProviderError> {
    let c: Completion = ProviderError::parse_body(body, provider, model, "a chat completion")?;
    let Some(choice) = c.choices.into_iter().next() else {
        return Err(ProviderError::malformed(
            provider,
            model,
            "response has no choices",
        ));
    };
    let tool_calls: Vec<ToolCall> = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, tc)| {
            let (arguments, arguments_error) = parse_arguments(tc.function.arguments);
            ToolCall {
                id: tc
                    .id
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| format!("call_{i}")),
                name: tc.function.name,
                arguments,
                arguments_error,
            }
        })
        .collect();
    let usage = c
        .usage
        .map(|u| Usage {
            input_tokens: u.prompt_tokens.unwrap_or(0),
            output_tokens: u.completion_tokens.unwrap_or(0),
            cached_input_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .or(u.prompt_cache_hit_tokens)
                .unwrap_or(0),
        })
        .unwrap_or_default();
    Ok(GenerateResponse {
        text: choice.message.content,
        finish_reason: finish_reason(choice.finish_reason.as_deref(), !tool_calls.is_empty()),
        tool_calls,
        usage,
        provider: provider.to_string(),
        model: c
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| model.to_string()),
        latency: std::time::Duration::ZERO,
    })
}
