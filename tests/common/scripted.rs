//! A scripted model on 127.0.0.1 (wiremock): OpenAI and Anthropic reply
//! bodies, and matchers that tell a scripted conversation's steps apart by
//! what the request holds, so one server plays every step of a task.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// Matches a model request whose conversation already holds `n` tool
/// results (OpenAI `role: tool` messages or Anthropic `tool_result` blocks).
pub struct ToolResults(pub usize);

impl Match for ToolResults {
    fn matches(&self, request: &Request) -> bool {
        let body = String::from_utf8_lossy(&request.body);
        let n = body.matches(r#""role":"tool""#).count()
            + body.matches(r#""type":"tool_result""#).count();
        n == self.0
    }
}

/// Matches a model request whose body holds `self.0` (a task's prompt).
pub struct BodyHas(pub &'static str);

impl Match for BodyHas {
    fn matches(&self, request: &Request) -> bool {
        String::from_utf8_lossy(&request.body).contains(self.0)
    }
}

/// An OpenAI chat completion that calls `calls` (`(id, tool, args)`).
pub fn openai_tool_calls(calls: &[(&str, &str, Value)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
    })
}

/// An OpenAI chat completion that answers `text`.
pub fn openai_text(text: &str) -> Value {
    json!({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 12, "total_tokens": 92}
    })
}

/// An Anthropic message that answers `text`.
pub fn anthropic_text(text: &str) -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 40, "output_tokens": 8}
    })
}

/// The OpenAI-shaped model answers `body` once the conversation holds
/// `results` tool results.
pub async fn step(server: &MockServer, results: usize, body: Value) {
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(ToolResults(results))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// As [`step`], for the task whose prompt holds `token` only.
pub async fn step_for(server: &MockServer, token: &'static str, results: usize, body: Value) {
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(BodyHas(token))
        .and(ToolResults(results))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}
