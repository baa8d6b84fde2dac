//! `[telemetry] otlpEndpoint`: `troupe run` exports its spans over OTLP.
//!
//! Built with the `otel` feature (`cargo test --features otel --test otel`,
//! as `.ci/run` does), a real daemon runs an agent task against a scripted
//! OpenAI-shaped server on 127.0.0.1, and an OTLP receiver on 127.0.0.1
//! decodes what arrives: the job, model-call and tool-call spans, with the
//! GenAI attributes, the job id and the agent, in one trace. Built
//! without it, the binary refuses the setting by name.

mod common;

use std::path::Path;

use common::cli::{command, stderr};

/// A config for `dir` whose agent uses the model server at `model`, with
/// spans sent to `otlp` when given.
fn write_config(dir: &Path, model: &str, otlp: Option<&str>) -> String {
    let telemetry = otlp
        .map(|url| {
            format!("[telemetry]\notlpEndpoint = \"{url}\"\nserviceName = \"troupe-test\"\n")
        })
        .unwrap_or_default();
    let config = format!(
        r#"
{telemetry}
[store]
dataDir = "{data}"

[[providers]]
name = "llm"
type = "openai-compatible"
baseUrl = "{model}"

[[agents]]
id = "sarah"
name = "Sarah"
systemPrompt = "You are Sarah."
tools = ["remember"]
[agents.modelConfig]
provider = "llm"
model = "gpt-test"
"#,
        data = dir.join("data").display()
    );
    let path = dir.join("troupe.toml");
    std::fs::write(&path, config).unwrap();
    path.display().to_string()
}

#[cfg(not(feature = "otel"))]
#[test]
fn without_the_feature_an_endpoint_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        Some("http://127.0.0.1:4318"),
    );
    let out = command()
        .args(["run", "--no-http", "--exit-when-idle", "--config", &config])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("telemetry.otlpEndpoint") && err.contains("`otel` feature"),
        "{err}"
    );
}

#[test]
fn a_bad_endpoint_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", Some("collector:4318"));
    let out = command()
        .args(["run", "--no-http", "--exit-when-idle", "--config", &config])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("telemetry.otlpEndpoint") && err.contains("not an http(s) URL"),
        "{err}"
    );
}

#[cfg(feature = "otel")]
mod export {
    use super::*;

    use serde_json::{json, Value};
    use wiremock::matchers::{method, path};
    use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

    struct ToolResults(usize);

    impl Match for ToolResults {
        fn matches(&self, request: &Request) -> bool {
            String::from_utf8_lossy(&request.body)
                .matches(r#""role":"tool""#)
                .count()
                == self.0
        }
    }

    fn completion(message: Value, finish: &str) -> Value {
        json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-test-0613",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
        })
    }

    /// An attribute's value as text (OTLP JSON writes ints as strings or
    /// numbers, depending on the encoder).
    fn attr(span: &Value, key: &str) -> Option<String> {
        let a = span["attributes"]
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)?;
        let v = &a["value"];
        for kind in ["stringValue", "intValue", "boolValue", "doubleValue"] {
            match &v[kind] {
                Value::String(s) => return Some(s.clone()),
                Value::Null => {}
                other => return Some(other.to_string()),
            }
        }
        None
    }

    /// Every span the receiver got, with the `service.name` of its resource.
    async fn spans(receiver: &MockServer) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for request in receiver.received_requests().await.unwrap() {
            let body: Value = serde_json::from_slice(&request.body).expect("OTLP JSON");
            for rs in body["resourceSpans"].as_array().into_iter().flatten() {
                let service = attr(&rs["resource"], "service.name").unwrap_or_default();
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        out.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_arrives_as_one_trace_with_genai_attributes() {
        let model = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(ToolResults(0))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion(
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_7",
                    "type": "function", "function": {"name": "remember",
                    "arguments": "{\"content\": \"ships on Thursdays\"}"}}]}),
                "tool_calls",
            )))
            .mount(&model)
            .await;
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(ToolResults(1))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion(
                json!({"role": "assistant", "content": "Noted."}),
                "stop",
            )))
            .mount(&model)
            .await;
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/traces"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .mount(&receiver)
            .await;

        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &model.uri(), Some(&receiver.uri()));
        let run = |args: Vec<String>| {
            tokio::task::spawn_blocking(move || command().args(args).output().unwrap())
        };
        let out = run(vec![
            "task".into(),
            "sarah".into(),
            "Remember that we ship on Thursdays".into(),
            "--config".into(),
            config.clone(),
        ])
        .await
        .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // The daemon runs the task and exits; its exit sends the last batch.
        let out = run(vec![
            "run".into(),
            "--no-http".into(),
            "--exit-when-idle".into(),
            "--config".into(),
            config,
        ])
        .await
        .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));

        let spans = spans(&receiver).await;
        assert!(
            spans.iter().all(|(service, _)| service == "troupe-test"),
            "{spans:?}"
        );
        let named = |name: &str| -> Vec<&Value> {
            spans
                .iter()
                .map(|(_, s)| s)
                .filter(|s| s["name"] == name)
                .collect()
        };
        let jobs = named("job");
        assert_eq!(jobs.len(), 1, "{spans:?}");
        let job_span = jobs[0];
        assert_eq!(attr(job_span, "job").as_deref(), Some(job.as_str()));
        assert_eq!(attr(job_span, "worker").as_deref(), Some("sarah"));

        let chats = named("chat gpt-test");
        assert_eq!(chats.len(), 2, "two model calls: {spans:?}");
        for chat in &chats {
            assert_eq!(attr(chat, "gen_ai.operation.name").as_deref(), Some("chat"));
            assert_eq!(attr(chat, "gen_ai.system").as_deref(), Some("llm"));
            assert_eq!(
                attr(chat, "gen_ai.request.model").as_deref(),
                Some("gpt-test")
            );
            assert_eq!(
                attr(chat, "gen_ai.response.model").as_deref(),
                Some("gpt-test-0613")
            );
            assert_eq!(
                attr(chat, "gen_ai.usage.input_tokens").as_deref(),
                Some("50")
            );
            assert_eq!(
                attr(chat, "gen_ai.usage.output_tokens").as_deref(),
                Some("10")
            );
            assert_eq!(attr(chat, "job").as_deref(), Some(job.as_str()));
            assert_eq!(attr(chat, "agent").as_deref(), Some("sarah"));
            assert_eq!(chat["traceId"], job_span["traceId"]);
            assert_eq!(chat["parentSpanId"], job_span["spanId"]);
        }
        let tools = named("execute_tool remember");
        assert_eq!(tools.len(), 1, "{spans:?}");
        let tool = tools[0];
        assert_eq!(
            attr(tool, "gen_ai.operation.name").as_deref(),
            Some("execute_tool")
        );
        assert_eq!(attr(tool, "gen_ai.tool.name").as_deref(), Some("remember"));
        assert_eq!(attr(tool, "gen_ai.tool.call.id").as_deref(), Some("call_7"));
        assert_eq!(attr(tool, "job").as_deref(), Some(job.as_str()));
        // The tool call crossed to the ToolRouter's actor and stayed in the
        // task's trace.
        assert_eq!(tool["traceId"], job_span["traceId"]);
        assert_eq!(tool["parentSpanId"], job_span["spanId"]);
    }
}
