//! A deterministic offline model, for tests and for the demo without a key.
//!
//! It reads the task and the tools it was offered and answers as a model
//! would: first a turn of tool calls chosen by keywords of the task, then,
//! once tool results are back, a final answer that reports them. Asked to
//! summarise (memory compaction), it condenses the listed memories. The same
//! request always gets the same answer, so a scripted run is reproducible.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub(crate) use crate::names::OFFLINE_PROVIDER;
use crate::names::{
    ANALYZE_CODE_TOOL, BUILTIN_TOOLS, CREATE_TASK_TOOL, RECALL_TOOL, REMEMBER_TOOL, SCHEDULER_TOOL,
    SEND_MESSAGE_TOOL, WORKER_MANAGER_TOOL,
};
use crate::provider::{FinishReason, GenerateRequest, GenerateResponse, Message, ToolCall, Usage};

/// The deterministic model. Stateless.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OfflineModel;

fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

impl OfflineModel {
    /// Answers one request.
    pub(crate) fn generate(&self, request: &GenerateRequest) -> GenerateResponse {
        let started = Instant::now();
        let input: u64 = request.system.as_deref().map(estimate_tokens).unwrap_or(0)
            + request
                .messages
                .iter()
                .map(|m| estimate_tokens(&message_text(m)))
                .sum::<u64>();
        let (text, tool_calls) = self.answer(request);
        let output = estimate_tokens(&text)
            + tool_calls
                .iter()
                .map(|c| estimate_tokens(&c.arguments.to_string()))
                .sum::<u64>();
        GenerateResponse {
            finish_reason: if tool_calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            text,
            tool_calls,
            usage: Usage {
                input_tokens: input,
                output_tokens: output,
                cached_input_tokens: 0,
            },
            provider: OFFLINE_PROVIDER.to_string(),
            model: request.model.clone(),
            latency: started.elapsed().max(Duration::from_micros(1)),
        }
    }

    fn answer(&self, request: &GenerateRequest) -> (String, Vec<ToolCall>) {
        let (text, calls) = self.reply(request);
        match &request.output_schema {
            // Asked for structured output, the final answer is a value of
            // the schema, carrying the answer's text in its strings.
            Some(schema) if calls.is_empty() => (instance(schema, &text).to_string(), calls),
            _ => (text, calls),
        }
    }

    fn reply(&self, request: &GenerateRequest) -> (String, Vec<ToolCall>) {
        let system = request.system.as_deref().unwrap_or("");
        if system.contains("Summarize these memories") {
            return (summarize(request), Vec::new());
        }
        let task = last_user_text(&request.messages);
        let results: Vec<&crate::provider::ToolResult> = request
            .messages
            .iter()
            .rev()
            .take_while(|m| !matches!(m, Message::User { .. }))
            .filter_map(|m| match m {
                Message::Tool(r) => Some(r),
                _ => None,
            })
            .collect();
        if !results.is_empty() {
            return (final_answer(&task, &request.messages), Vec::new());
        }
        let calls = plan_tool_calls(&task, request);
        if calls.is_empty() {
            return (
                format!("(offline model) Here is my answer to: {task}"),
                Vec::new(),
            );
        }
        (String::new(), calls)
    }
}

fn message_text(m: &Message) -> String {
    match m {
        Message::User { content } => content.clone(),
        Message::Assistant { text, tool_calls } => {
            let mut s = text.clone();
            for c in tool_calls {
                s.push_str(&c.arguments.to_string());
            }
            s
        }
        Message::Tool(r) => r.content.clone(),
    }
}

fn last_user_text(messages: &[Message]) -> String {
    messages
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::User { content } => Some(content.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The task line itself: the context builder puts memories and history
/// before a final `Task:` section.
fn task_line(task: &str) -> &str {
    match task.rfind("Task:") {
        Some(i) => task[i + 5..].trim(),
        None => task.trim(),
    }
}

fn offered(request: &GenerateRequest, name: &str) -> bool {
    request.tools.iter().any(|t| t.name == name)
}

/// Picks tool calls by keywords of the task, among the tools offered.
fn plan_tool_calls(task: &str, request: &GenerateRequest) -> Vec<ToolCall> {
    let line = task_line(task);
    let lower = line.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let mut calls = Vec::new();
    let mut push = |name: &str, args: Value| {
        if offered(request, name) {
            let id = format!("call{}", calls.len() + 1);
            calls.push(ToolCall::new(id, name, args));
        }
    };
    if has(&["recall", "what do you know", "previous", "remind"]) {
        push(RECALL_TOOL, json!({ "query": line, "limit": 5 }));
    }
    // Code to look at: a `snippet` in backticks, or a path to a source file.
    let snippet = match (line.find('`'), line.rfind('`')) {
        (Some(a), Some(b)) if b > a + 1 => Some(line[a + 1..b].to_string()),
        _ => None,
    };
    let path = line
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '.' && c != '/' && c != '_'))
        .find(|w| {
            [".rs", ".ts", ".tsx", ".js", ".py", ".go"]
                .iter()
                .any(|ext| w.ends_with(ext))
        });
    if has(&["review", "analy", "check", "look at"]) {
        match (snippet, path) {
            (Some(code), _) => push(ANALYZE_CODE_TOOL, json!({ "code": code })),
            (None, Some(path)) => push(ANALYZE_CODE_TOOL, json!({ "path": path })),
            (None, None) => {}
        }
    }
    if has(&["remember", "note that", "learn"]) {
        push(
            REMEMBER_TOOL,
            json!({ "type": "learning", "content": line, "importance": 6 }),
        );
    }
    if has(&["tell", "message", "notify", "send"]) {
        push(
            SEND_MESSAGE_TOOL,
            json!({ "content": format!("Update on \"{line}\"") }),
        );
    }
    if has(&["follow up", "follow-up", "then ask"]) {
        push(
            CREATE_TASK_TOOL,
            json!({ "prompt": format!("Follow up on: {line}") }),
        );
    }
    if has(&["compact", "tidy"]) {
        push(
            SCHEDULER_TOOL,
            json!({ "kind": "memory_compaction", "title": "compaction", "content": line }),
        );
    }
    if has(&["workers", "job table", "queue"]) {
        push(WORKER_MANAGER_TOOL, json!({ "action": "list_jobs" }));
    }
    // Any other offered tool named in the task is called with its required
    // arguments filled in from the task text.
    for tool in request.tools.iter() {
        if BUILTIN_TOOLS.contains(&tool.name.as_str()) || !lower.contains(&tool.name.to_lowercase())
        {
            continue;
        }
        push(&tool.name, fill_required(&tool.parameters, line));
    }
    calls
}

/// Arguments for a schema: each required string gets `text`, each required
/// number 1, each required boolean `true`.
fn fill_required(schema: &Value, text: &str) -> Value {
    let mut args = serde_json::Map::new();
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    for name in required.iter().filter_map(Value::as_str) {
        let value = match schema["properties"][name]["type"].as_str() {
            Some("integer") | Some("number") => json!(1),
            Some("boolean") => json!(true),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => json!(text),
        };
        args.insert(name.to_string(), value);
    }
    Value::Object(args)
}

/// A value of `schema`: its required properties filled, the first of an
/// enum, the least number it allows, `text` for strings.
fn instance(schema: &Value, text: &str) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    match schema["type"].as_str() {
        Some("object") => {
            let mut out = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                if let Some(name) = name.as_str() {
                    out.insert(name.into(), instance(&schema["properties"][name], text));
                }
            }
            Value::Object(out)
        }
        Some("array") => {
            let min = schema["minItems"].as_u64().unwrap_or(0);
            (0..min.min(16))
                .map(|_| instance(&schema["items"], text))
                .collect()
        }
        Some("integer") => json!(schema["minimum"].as_i64().unwrap_or(0).max(0)),
        Some("number") => json!(schema["minimum"].as_f64().unwrap_or(0.0).max(0.0)),
        Some("boolean") => json!(true),
        Some("null") => Value::Null,
        _ => json!(text),
    }
}

fn final_answer(task: &str, messages: &[Message]) -> String {
    let mut names = std::collections::BTreeMap::new();
    for m in messages {
        if let Message::Assistant { tool_calls, .. } = m {
            for c in tool_calls {
                names.insert(c.id.clone(), c.name.clone());
            }
        }
    }
    let mut parts = Vec::new();
    for m in messages
        .iter()
        .rev()
        .take_while(|m| !matches!(m, Message::User { .. }))
    {
        if let Message::Tool(r) = m {
            let name = names
                .get(&r.call_id)
                .cloned()
                .unwrap_or_else(|| "tool".into());
            parts.push(describe(&name, r));
        }
    }
    parts.reverse();
    format!("Done: {}. ({})", parts.join("; "), task_line(task))
}

/// One line on what a tool call did, from its result.
fn describe(tool: &str, result: &crate::provider::ToolResult) -> String {
    if result.is_error {
        let first = result.content.lines().next().unwrap_or_default();
        return format!("{tool} failed ({first})");
    }
    let value: Value = serde_json::from_str(&result.content).unwrap_or(Value::Null);
    let data = &value["data"];
    match tool {
        REMEMBER_TOOL => "noted it in my memory".to_string(),
        RECALL_TOOL => {
            let found = data.as_array().map(|a| a.len()).unwrap_or(0);
            let first = data[0]["content"].as_str().unwrap_or_default();
            if found == 0 {
                "I remember nothing about that yet".to_string()
            } else {
                format!("I remember {found} thing(s), most useful: \"{first}\"")
            }
        }
        ANALYZE_CODE_TOOL => {
            let findings: Vec<String> = data["findings"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let lines = data["lines"].as_u64().unwrap_or(0);
            if findings.is_empty() {
                format!("reviewed {lines} line(s), no findings")
            } else {
                format!("reviewed {lines} line(s): {}", findings.join(", "))
            }
        }
        SEND_MESSAGE_TOOL => format!(
            "posted to `{}`",
            data["conversationId"]
                .as_str()
                .unwrap_or("the conversation")
        ),
        SCHEDULER_TOOL => format!(
            "scheduled {} (job {})",
            data["workerName"].as_str().unwrap_or("a job"),
            data["jobId"].as_str().unwrap_or("?")
        ),
        CREATE_TASK_TOOL => format!(
            "queued a follow-up task (job {})",
            data["jobId"].as_str().unwrap_or("?")
        ),
        other => {
            let text: String = result.content.chars().take(80).collect();
            format!("{other} returned {text}")
        }
    }
}

fn summarize(request: &GenerateRequest) -> String {
    let text = last_user_text(&request.messages);
    let mut seen = std::collections::BTreeSet::new();
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("- ")) {
        let content = line.trim_start_matches("- ");
        if seen.insert(content.to_lowercase()) {
            lines.push(content.to_string());
        }
    }
    format!("Summary of {} memories: {}", lines.len(), lines.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ToolDefinition;

    fn request(task: &str, tools: &[&str]) -> GenerateRequest {
        GenerateRequest {
            model: "offline-1".into(),
            system: Some("You are Sarah.".into()),
            messages: vec![Message::user(format!("Task: {task}"))],
            tools: tools
                .iter()
                .map(|n| ToolDefinition {
                    name: n.to_string(),
                    description: String::new(),
                    parameters: json!({"type": "object"}),
                })
                .collect(),
            tool_choice: Default::default(),
            temperature: None,
            max_tokens: None,
            output_schema: None,
        }
    }

    #[test]
    fn plans_tools_from_the_task_then_answers_from_their_results() {
        let model = OfflineModel;
        let req = request(
            "Review `fn a() {}` and tell the team",
            &["analyze_code", "send_message", "remember"],
        );
        let first = model.generate(&req);
        let names: Vec<_> = first.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["analyze_code", "send_message"]);
        assert_eq!(first.tool_calls[0].arguments["code"], "fn a() {}");
        assert_eq!(first.finish_reason, FinishReason::ToolCalls);

        let mut req2 = req.clone();
        req2.messages.push(first.to_message());
        req2.messages
            .push(Message::tool_result("call1", "{\"lines\":1}", false));
        req2.messages
            .push(Message::tool_result("call2", "{\"id\":\"m1\"}", false));
        let second = model.generate(&req2);
        assert!(second.tool_calls.is_empty());
        assert!(
            second.text.starts_with("Done: reviewed 0 line(s)"),
            "{}",
            second.text
        );
        assert_eq!(model.generate(&req2).text, second.text, "deterministic");
    }

    #[test]
    fn asked_for_structured_output_it_answers_a_value_of_the_schema() {
        let mut req = request("Summarise the week", &[]);
        let schema = json!({
            "type": "object",
            "properties": {
                "summary": {"type": "string"},
                "mood": {"enum": ["good", "bad"]},
                "score": {"type": "integer", "minimum": 3},
                "items": {"type": "array", "items": {"type": "string"}, "minItems": 1}
            },
            "required": ["summary", "mood", "score", "items"]
        });
        req.output_schema = Some(std::sync::Arc::new(schema.clone()));
        let reply = OfflineModel.generate(&req);
        let value: Value = serde_json::from_str(&reply.text).unwrap();
        assert!(jsonschema::is_valid(&schema, &value), "{value}");
        assert!(value["summary"]
            .as_str()
            .unwrap()
            .contains("Summarise the week"));
    }

    #[test]
    fn without_matching_tools_it_answers_directly() {
        let out = OfflineModel.generate(&request("Say hello", &["recall"]));
        assert!(out.tool_calls.is_empty());
        assert!(out.text.contains("Say hello"));
        assert!(out.usage.input_tokens > 0);
    }
}
