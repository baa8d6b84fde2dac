//! Streamed replies (`stream = true` in an agent's `modelConfig`): the
//! Server-Sent Events of the OpenAI chat-completions and Anthropic Messages
//! streams, read as they arrive. Each text fragment goes to a [`TextSink`]
//! (the task's events) the moment it is read; at the end, the fragments are
//! put back together into the body the same call would have answered
//! without streaming, which the protocol's ordinary decoder reads: so a
//! streamed reply gives the same [`GenerateResponse`](super::GenerateResponse)
//! (text, tool calls, finish reason, usage) as an unstreamed one.
//!
//! OpenAI: `data:` chunks with `choices[0].delta.content` and
//! `delta.tool_calls[]` fragments (by `index`; the first of a call has its
//! `id` and `function.name`, the rest pieces of `function.arguments`),
//! `finish_reason`, a last chunk with `usage` (asked with
//! `stream_options: {"include_usage": true}`), then `data: [DONE]`.
//! Anthropic: `message_start` (model, input usage), `content_block_start`
//! (a text block, or a `tool_use` with id and name), `content_block_delta`
//! (`text_delta` text, `input_json_delta` pieces of the tool input),
//! `message_delta` (`stop_reason`, output usage), `message_stop`; `ping`s
//! between, an `error` event instead of the rest when the server fails.
//!
//! A stream that ends before its end marker (`[DONE]`, `message_stop`) was
//! cut: a connection error, retried like any. An `error` event is the
//! server's failure (overloaded, or a server error).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::error::ErrorKind;

/// Where a streamed reply's text goes, fragment by fragment, as it arrives.
#[derive(Clone)]
pub struct TextSink(Arc<dyn Fn(&str) + Send + Sync>);

impl TextSink {
    /// A sink calling `f` with each fragment.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        TextSink(Arc::new(f))
    }

    /// Hands on one fragment.
    pub(crate) fn send(&self, fragment: &str) {
        if !fragment.is_empty() {
            (self.0)(fragment);
        }
    }
}

impl std::fmt::Debug for TextSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextSink")
    }
}

/// What went wrong in a stream: its kind and a message.
pub(crate) type StreamError = (ErrorKind, String);

/// One reply being read: a protocol's accumulator.
#[derive(Debug)]
pub(crate) enum Accumulator {
    /// OpenAI chat completions (and the compatible ones).
    OpenAi(OpenAiStream),
    /// Anthropic Messages.
    Anthropic(AnthropicStream),
}

impl Accumulator {
    /// An accumulator for the protocol (`openai`: chat completions).
    pub(crate) fn new(openai: bool) -> Self {
        if openai {
            Accumulator::OpenAi(OpenAiStream::default())
        } else {
            Accumulator::Anthropic(AnthropicStream::default())
        }
    }

    /// Takes in one event's data; text goes to `sink`.
    pub(crate) fn take(&mut self, data: &str, sink: &TextSink) -> Result<(), StreamError> {
        match self {
            Accumulator::OpenAi(s) => s.take(data, sink),
            Accumulator::Anthropic(s) => s.take(data, sink),
        }
    }

    /// Whether the stream's end marker was read.
    pub(crate) fn is_done(&self) -> bool {
        match self {
            Accumulator::OpenAi(s) => s.done,
            Accumulator::Anthropic(s) => s.done,
        }
    }

    /// The body the same call answers unstreamed, for the protocol's
    /// decoder; a connection error when the stream was cut.
    pub(crate) fn finish(self) -> Result<Vec<u8>, StreamError> {
        if !self.is_done() {
            return Err((
                ErrorKind::Connection,
                "the response stream broke off before its end".into(),
            ));
        }
        let body = match self {
            Accumulator::OpenAi(s) => s.body(),
            Accumulator::Anthropic(s) => s.body()?,
        };
        serde_json::to_vec(&body).map_err(|e| (ErrorKind::MalformedResponse, e.to_string()))
    }
}

fn parse(data: &str) -> Result<Value, StreamError> {
    serde_json::from_str(data).map_err(|e| {
        (
            ErrorKind::MalformedResponse,
            format!("a stream event is not JSON ({e}): {}", cut(data)),
        )
    })
}

fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The error event (or error object) of a stream, as a typed failure.
fn server_error(error: &Value) -> StreamError {
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("");
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the server failed mid-stream");
    let kind = match kind {
        "overloaded_error" => ErrorKind::Overloaded,
        "rate_limit_error" => ErrorKind::RateLimited,
        _ => ErrorKind::ServerError,
    };
    (kind, format!("error in the response stream: {message}"))
}

/// An OpenAI-compatible chat-completions stream.
#[derive(Debug, Default)]
pub(crate) struct OpenAiStream {
    model: Option<String>,
    text: String,
    /// Tool calls by index: id, name, arguments so far.
    calls: BTreeMap<u64, (Option<String>, String, String)>,
    finish: Option<String>,
    usage: Option<Value>,
    done: bool,
}

impl OpenAiStream {
    fn take(&mut self, data: &str, sink: &TextSink) -> Result<(), StreamError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk = parse(data)?;
        if let Some(error) = chunk.get("error") {
            return Err(server_error(error));
        }
        if let Some(m) = chunk.get("model").and_then(Value::as_str) {
            self.model = Some(m.to_string());
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Ok(());
        };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        let Some(delta) = choice.get("delta") else {
            return Ok(());
        };
        if let Some(t) = delta.get("content").and_then(Value::as_str) {
            self.text.push_str(t);
            sink.send(t);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(self.calls.len() as u64);
            let entry = self.calls.entry(index).or_default();
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                entry.0 = Some(id.to_string());
            }
            let function = call.get("function");
            if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) {
                entry.1.push_str(name);
            }
            if let Some(args) = function
                .and_then(|f| f.get("arguments"))
                .and_then(Value::as_str)
            {
                entry.2.push_str(args);
            }
        }
        Ok(())
    }

    fn body(self) -> Value {
        let calls: Vec<Value> = self
            .calls
            .into_values()
            .map(|(id, name, arguments)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
            })
            .collect();
        let mut message = json!({"role": "assistant", "content": self.text});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        json!({
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish}],
            "usage": self.usage,
        })
    }
}

/// One content block of an Anthropic stream.
#[derive(Debug)]
enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: String,
    },
    Other,
}

/// An Anthropic Messages stream.
#[derive(Debug, Default)]
pub(crate) struct AnthropicStream {
    model: Option<String>,
    blocks: BTreeMap<u64, Block>,
    stop_reason: Option<String>,
    usage: Map<String, Value>,
    done: bool,
}

impl AnthropicStream {
    fn take(&mut self, data: &str, sink: &TextSink) -> Result<(), StreamError> {
        let event = parse(data)?;
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let message = event.get("message");
                if let Some(m) = message.and_then(|m| m.get("model")).and_then(Value::as_str) {
                    self.model = Some(m.to_string());
                }
                self.add_usage(message.and_then(|m| m.get("usage")));
            }
            "content_block_start" => {
                let block = event.get("content_block");
                let text = |k: &str| {
                    let v = block.and_then(|b| b.get(k)).and_then(Value::as_str);
                    v.unwrap_or_default().to_string()
                };
                let block = match block.and_then(|b| b.get("type")).and_then(Value::as_str) {
                    Some("text") => {
                        let t = text("text");
                        sink.send(&t);
                        Block::Text(t)
                    }
                    Some("tool_use") => Block::ToolUse {
                        id: text("id"),
                        name: text("name"),
                        input: String::new(),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let delta = event.get("delta");
                let field = |k: &str| delta.and_then(|d| d.get(k)).and_then(Value::as_str);
                match (self.blocks.get_mut(&index), field("type")) {
                    (Some(Block::Text(text)), Some("text_delta")) => {
                        let t = field("text").unwrap_or_default();
                        text.push_str(t);
                        sink.send(t);
                    }
                    (Some(Block::ToolUse { input, .. }), Some("input_json_delta")) => {
                        input.push_str(field("partial_json").unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = event
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(r.to_string());
                }
                self.add_usage(event.get("usage"));
            }
            "message_stop" => self.done = true,
            "error" => {
                let error = event.get("error").cloned().unwrap_or(Value::Null);
                return Err(server_error(&error));
            }
            _ => {} // ping, content_block_stop, and what later versions add
        }
        Ok(())
    }

    /// Usage counts are cumulative: a later one replaces an earlier.
    fn add_usage(&mut self, usage: Option<&Value>) {
        if let Some(Value::Object(u)) = usage {
            for (k, v) in u {
                if !v.is_null() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
        }
    }

    fn body(self) -> Result<Value, StreamError> {
        let mut content = Vec::new();
        for block in self.blocks.into_values() {
            match block {
                Block::Text(text) => content.push(json!({"type": "text", "text": text})),
                Block::ToolUse { id, name, input } => {
                    let input: Value = if input.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&input).map_err(|e| {
                            (
                                ErrorKind::MalformedResponse,
                                format!("the streamed input of tool call `{id}` is not JSON ({e})"),
                            )
                        })?
                    };
                    content
                        .push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
                }
                Block::Other => {}
            }
        }
        Ok(json!({
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "usage": Value::Object(self.usage),
        }))
    }
}

/// What a streaming request adds to the body the protocol's encoder wrote
/// (a JSON object): `stream`, and for OpenAI-compatible servers the usage
/// chunk (`stream_options.include_usage`; Mistral, which documents no
/// `stream_options`, sends usage in its last chunk unasked).
pub(crate) fn streaming_body(mut body: Vec<u8>, extra: &str) -> Result<Vec<u8>, String> {
    match body.iter().rposition(|b| !b.is_ascii_whitespace()) {
        Some(end) if body[end] == b'}' => {
            body.truncate(end);
            // `{}` gets no comma; every encoded request has fields anyway.
            let empty = body.iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if !empty {
                body.push(b',');
            }
            body.extend_from_slice(extra.as_bytes());
            body.push(b'}');
            Ok(body)
        }
        _ => Err("the encoded request is not a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_fields_go_into_the_object() {
        let body = streaming_body(br#"{"model":"m"} "#.to_vec(), r#""stream":true"#).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"model": "m", "stream": true}));
        assert!(streaming_body(b"[1]".to_vec(), r#""stream":true"#).is_err());
    }

    #[test]
    fn a_stream_without_its_end_is_a_connection_error() {
        let sink = TextSink::new(|_| {});
        let mut acc = Accumulator::new(true);
        acc.take(
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            &sink,
        )
        .unwrap();
        let (kind, _) = acc.finish().unwrap_err();
        assert_eq!(kind, ErrorKind::Connection);
        let mut acc = Accumulator::new(false);
        let e = acc
            .take(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                &sink,
            )
            .unwrap_err();
        assert_eq!(e.0, ErrorKind::Overloaded);
    }
}
