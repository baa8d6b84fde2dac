//! Streamed model replies (`stream = true`): OpenAI and Anthropic SSE
//! bodies (tests/fixtures/sse, see SOURCES.md there) served on 127.0.0.1
//! give the same ProcessingResult and checkpoints as the same replies
//! unstreamed, and their text reaches the task's events as deltas; a stream
//! cut mid-way is a retryable connection error, an `error` event the
//! server's failure.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use troupe::__bench::Provider;
use troupe::sled::{SledConfig, SledStore};
use troupe::store::Store;
use troupe::{
    AgentConfig, ApiKey, ErrorKind, ModelConfig, ProviderConfig, ProviderKind, TroupeConfig,
};
use troupe::{GenerateRequest, Message, TaskEventKind, TaskOptions, TextSink, Troupe};
use troupe_actors::run_system;
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

fn fixture(name: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sse")
        .join(name);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Matches a request by whether it asks for a stream and how many tool
/// results its conversation holds (the step of the scripted conversation).
struct Step {
    stream: bool,
    results: usize,
}

impl Match for Step {
    fn matches(&self, request: &Request) -> bool {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let text = String::from_utf8_lossy(&request.body);
        let results = text.matches(r#""role":"tool""#).count()
            + text.matches(r#""type":"tool_result""#).count();
        body["stream"].as_bool().unwrap_or(false) == self.stream && results == self.results
    }
}

/// A server answering the conversation `steps` (fixture base names) both
/// ways: SSE when asked to stream, JSON otherwise.
async fn server(route: &str, steps: [&str; 2]) -> MockServer {
    let server = MockServer::start().await;
    for (results, name) in steps.into_iter().enumerate() {
        for stream in [false, true] {
            let response = if stream {
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/event-stream")
                    .set_body_string(fixture(&format!("{name}.sse")))
            } else {
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/json")
                    .set_body_string(fixture(&format!("{name}.json")))
            };
            Mock::given(method("POST"))
                .and(path(route))
                .and(Step { stream, results })
                .respond_with(response)
                .mount(&server)
                .await;
        }
    }
    server
}

fn agent(id: &str, stream: bool) -> AgentConfig {
    let mut model = ModelConfig::new("llm", "test-model");
    model.stream = stream;
    AgentConfig::new(id, id, "You keep notes.", model).tools(["remember"])
}

fn provider_config(kind: ProviderKind, server: &MockServer) -> ProviderConfig {
    let mut p = ProviderConfig::new("llm", kind)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new("sk-test"));
    p.retry.backoff.initial = std::time::Duration::from_millis(1);
    p.retry.backoff.max = std::time::Duration::from_millis(5);
    p
}

/// Drops what differs between two runs of the same conversation: the wall
/// time of the calls, and the ids the remember tool gave its memories.
fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("latency");
            map.remove("memoryId");
            map.values_mut().for_each(strip);
        }
        // The tool result as the model is sent it: it names the memory.
        Value::String(text) if text.contains("memoryId") => *text = "-".into(),
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Runs the same task for the plain and the streaming agent; checks their
/// results and checkpoints alike and the streamer's text deltas.
fn same_with_and_without_streaming(kind: ProviderKind, route: &str, steps: [&str; 2]) {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = server(route, steps).await;
        let mut config = TroupeConfig::default()
            .agent(agent("plain", false))
            .agent(agent("streamer", true));
        config.providers.push(provider_config(kind, &server));
        config.engine.drain_timeout = "2s".into();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(SledConfig::new(dir.path())).unwrap());
        let troupe = Troupe::builder(config)
            .store_arc(store.clone())
            .start()
            .await
            .unwrap();
        let mut results = Vec::new();
        let mut checkpoints = Vec::new();
        let mut events = Vec::new();
        for agent in ["plain", "streamer"] {
            let job = troupe
                .task(agent, "Remember that Ana likes tea", TaskOptions::default())
                .await
                .unwrap();
            let seen: Vec<_> = troupe.events(job.id).await.unwrap().collect().await;
            let job = troupe.engine().get_job(job.id).await.unwrap();
            let mut result = job.result.clone().unwrap_or_else(|| panic!("{job:?}"));
            assert_eq!(result["success"], true, "{result}");
            strip(&mut result);
            results.push(result);
            let mut steps = Value::Array(store.load_steps(job.id).await.unwrap());
            strip(&mut steps);
            checkpoints.push(steps);
            events.push(seen);
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(checkpoints[0], checkpoints[1]);
        assert!(
            !events[0]
                .iter()
                .any(|e| matches!(e.kind, TaskEventKind::TextDelta { .. })),
            "no deltas without streaming"
        );
        // Each text event of the streamer follows its deltas, which make it up.
        let streamed = &events[1];
        let mut texts = 0;
        for (i, e) in streamed.iter().enumerate() {
            if let TaskEventKind::Text { step, text } = &e.kind {
                texts += 1;
                let deltas: String = streamed[..i]
                    .iter()
                    .filter_map(|d| match &d.kind {
                        TaskEventKind::TextDelta { step: s, delta } if s == step => {
                            Some(delta.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                assert_eq!(&deltas, text, "{streamed:#?}");
            }
        }
        assert!(texts >= 1);
        let without_deltas: Vec<_> = streamed
            .iter()
            .filter(|e| !matches!(e.kind, TaskEventKind::TextDelta { .. }))
            .map(|e| e.kind.name())
            .collect();
        let plain: Vec<_> = events[0].iter().map(|e| e.kind.name()).collect();
        assert_eq!(without_deltas, plain);
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn an_openai_stream_gives_the_same_result_and_checkpoints() {
    same_with_and_without_streaming(
        ProviderKind::OpenaiCompatible,
        "/chat/completions",
        ["openai_tool_call", "openai_text"],
    );
}

#[test]
fn an_anthropic_stream_gives_the_same_result_and_checkpoints() {
    same_with_and_without_streaming(
        ProviderKind::Anthropic,
        "/messages",
        ["anthropic_tool_use", "anthropic_text"],
    );
}

fn request() -> GenerateRequest {
    GenerateRequest {
        model: "test-model".into(),
        messages: vec![Message::user("hello")],
        max_tokens: Some(100),
        ..GenerateRequest::default()
    }
}

async fn serve_once(route: &str, body: String) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(body),
        )
        .mount(&server)
        .await;
    server
}

#[test]
fn a_stream_cut_mid_way_is_a_retryable_connection_error() {
    run_system(async {
        for (kind, route, name) in [
            (
                ProviderKind::OpenaiCompatible,
                "/chat/completions",
                "openai_text.sse",
            ),
            (ProviderKind::Anthropic, "/messages", "anthropic_text.sse"),
        ] {
            let whole = fixture(name);
            // Cut inside the fourth block, after "Noted: Ana" came.
            let cut_at = whole.match_indices("\n\n").nth(3).unwrap().0 - 10;
            let server = serve_once(route, whole[..cut_at].to_string()).await;
            let client = Provider::new(provider_config(kind, &server)).unwrap();
            let heard = Arc::new(std::sync::Mutex::new(String::new()));
            let sink = {
                let heard = heard.clone();
                TextSink::new(move |d| heard.lock().unwrap().push_str(d))
            };
            let e = client
                .generate_streaming(request(), sink)
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Connection, "{e}");
            assert!(e.retryable(), "{e}");
            assert!(e.to_string().contains("broke off"), "{e}");
            // The text before the cut was heard (once per attempt).
            assert!(heard.lock().unwrap().starts_with("Noted: Ana"));
            // Served whole, the same provider answers.
            let server = serve_once(route, whole).await;
            let client = Provider::new(provider_config(kind, &server)).unwrap();
            let answer = client
                .generate_streaming(request(), TextSink::new(|_| {}))
                .await
                .unwrap();
            assert!(
                answer.text.starts_with("Noted: Ana likes tea."),
                "{answer:?}"
            );
        }
    });
}

#[test]
fn an_error_event_is_the_servers_failure() {
    run_system(async {
        let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-test-4-5\",\"usage\":{\"input_tokens\":3}}}\n\n\
                    event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
        let server = serve_once("/messages", body.to_string()).await;
        let client = Provider::new(provider_config(ProviderKind::Anthropic, &server)).unwrap();
        let e = client
            .generate_streaming(request(), TextSink::new(|_| {}))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Overloaded, "{e}");
        let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {not json\n\n";
        let server = serve_once("/chat/completions", body.to_string()).await;
        let p = Provider::new(provider_config(ProviderKind::OpenaiCompatible, &server)).unwrap();
        let e = p
            .generate_streaming(request(), TextSink::new(|_| {}))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedResponse, "{e}");
        assert!(e.to_string().contains("not JSON"), "{e}");
    });
}
