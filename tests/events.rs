//! Live task events end to end: a task's events over `GET
//! /v1/jobs/{id}/events` (Server-Sent Events) from a real server on
//! 127.0.0.1, history then live; a reconnect with `Last-Event-ID`; the
//! library's `Stream`; events rebuilt after a restart. The model is an
//! OpenAI-shaped server on 127.0.0.1 (wiremock) playing a scripted
//! conversation; a gate tool holds the task mid-way so that following it
//! live is tested, not assumed. Nothing sleeps to wait.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use common::sse::Follower;
use tokio::sync::Semaphore;
use troupe::http::{ControlServer, HttpConfig};
use troupe::sled::SledConfig;
use troupe::store::Store;
use troupe::{AgentConfig, ModelConfig, ProviderConfig, ProviderKind, TroupeConfig};
use troupe::{TaskEvent, TaskEventKind, TaskOptions, Troupe};
use troupe::{ToolContext, ToolError, TypedTool};
use troupe_actors::run_system;
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// A tool that waits until the test lets it through.
#[derive(Clone)]
struct Gate(Arc<Semaphore>);

#[derive(Deserialize, JsonSchema)]
struct GateArgs {}

#[async_trait]
impl TypedTool for Gate {
    type Args = GateArgs;
    type Output = Value;
    type Error = ToolError;
    fn name(&self) -> &str {
        "gate"
    }
    fn description(&self) -> &str {
        "waits for the test"
    }
    async fn run(&self, _: GateArgs, _: ToolContext) -> Result<Value, ToolError> {
        let _permit = self.0.acquire().await;
        Ok(json!({"opened": true}))
    }
}

/// Matches a request whose conversation holds `n` tool results.
struct ToolResults(usize);

impl Match for ToolResults {
    fn matches(&self, request: &Request) -> bool {
        String::from_utf8_lossy(&request.body)
            .matches(r#""role":"tool""#)
            .count()
            == self.0
    }
}

/// The model: first a call of `gate`, then the answer.
async fn model() -> MockServer {
    let server = MockServer::start().await;
    let call = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "gate", "arguments": "{}"}}
        ]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
    });
    let answer = json!({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "The gate opened."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 12, "total_tokens": 92}
    });
    for (n, body) in [(0, call), (1, answer)] {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(ToolResults(n))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    server
}

fn config(server: &MockServer) -> TroupeConfig {
    let provider =
        ProviderConfig::new("openai", ProviderKind::OpenaiCompatible).with_base_url(server.uri());
    let agent = AgentConfig::new(
        "sarah",
        "Sarah",
        "You are Sarah.",
        ModelConfig::new("openai", "gpt-test"),
    )
    .tools(["gate"]);
    let mut config = TroupeConfig::default().agent(agent);
    config.providers.push(provider);
    config.engine.drain_timeout = "2s".into();
    config
}

async fn runtime(dir: &std::path::Path, config: TroupeConfig, gate: &Gate) -> Troupe {
    // A runtime shut down and dropped lets go of the directory.
    let store: Arc<dyn Store> =
        Arc::new(common::open_after_raw_sled(SledConfig::new(dir)).unwrap());
    Troupe::builder(config)
        .store_arc(store)
        .tool(gate.clone())
        .start()
        .await
        .unwrap()
}

/// The model, a closed gate and a runtime on `dir` using both; the model
/// server lives as long as what it returns.
async fn started(dir: &std::path::Path) -> (MockServer, Gate, Troupe) {
    let server = model().await;
    let gate = Gate(Arc::new(Semaphore::new(0)));
    let troupe = runtime(dir, config(&server), &gate).await;
    (server, gate, troupe)
}

/// The `type`s of `events`, in order.
fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// What a whole task of [`model`] emits.
const WHOLE: [&str; 7] = [
    "attemptStarted",
    "modelCall",
    "toolCall",
    "toolResult",
    "modelCall",
    "text",
    "completed",
];

/// The `seq`s of `len` events of attempt `attempt` ending the job.
fn attempt_seqs(attempt: u64, len: usize) -> Vec<u64> {
    let base = attempt << 32;
    (1..len as u64)
        .map(|n| base | n)
        .chain([base | u64::from(u32::MAX)])
        .collect()
}

async fn serve(troupe: &Troupe) -> (ControlServer, String, String) {
    let http = HttpConfig {
        addr: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    };
    let token = http.token.secret().to_string();
    let server = ControlServer::start(troupe.clone(), http).unwrap();
    let base = format!("http://{}", server.local_addr());
    (server, base, token)
}

#[test]
fn a_task_is_followed_over_sse_from_start_to_end_and_resumed_without_loss_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (_server, gate, troupe) = started(dir.path()).await;
        let (http, base, token) = serve(&troupe).await;
        let job = troupe
            .task("sarah", "Open the gate", TaskOptions::default())
            .await
            .unwrap();
        let id = job.id.to_string();

        // Followed from the start: the history so far, then live, up to
        // the gate (which holds the task until it is opened).
        let mut first = Follower::open(&base, &token, &id, None).await;
        let head = first.until("toolCall").await;
        assert_eq!(types(&head), WHOLE[..3]);
        assert_eq!(head[0]["attempt"], 1);
        assert_eq!(head[1]["provider"], "openai");
        assert_eq!(head[1]["inputTokens"], 50);
        assert_eq!(head[2]["name"], "gate");
        assert_eq!(head[2]["id"], "call_1");
        let last = head.last().unwrap()["seq"].as_u64().unwrap();
        // A second follower joins live, from the start.
        let mut second = Follower::open(&base, &token, &id, None).await;
        // The first disconnects; it resumes after the last event it saw.
        drop(first);
        let mut resumed = Follower::open(&base, &token, &id, Some(last)).await;

        gate.0.add_permits(1);
        let tail = resumed.rest().await;
        let whole: Vec<Value> = head.iter().cloned().chain(tail).collect();
        assert_eq!(types(&whole), WHOLE, "{whole:#?}");
        // `attempt << 32 | n`, n from 1; the terminal event the attempt's
        // last number.
        let seqs: Vec<u64> = whole.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, attempt_seqs(1, WHOLE.len()));
        assert_eq!(whole[3]["isError"], false);
        assert_eq!(whole[3]["result"]["data"]["opened"], true);
        assert_eq!(whole[5]["text"], "The gate opened.");
        assert!(whole.iter().all(|e| e["jobId"] == id.as_str()));

        // The second saw the same, whole; a follower after the end gets
        // the history and the end at once.
        assert_eq!(second.rest().await, whole);
        let after = Follower::open(&base, &token, &id, None).await.rest().await;
        assert_eq!(after, whole);
        // Resuming after the terminal event: nothing more, and the end.
        let nothing = Follower::open(&base, &token, &id, Some(seqs[WHOLE.len() - 1]))
            .await
            .rest()
            .await;
        assert!(nothing.is_empty(), "{nothing:?}");

        http.stop().await;
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn a_follower_of_a_task_not_started_yet_gets_its_answer_head_without_waiting_for_it() {
    // The head waits for the first event (to go out with it), but only
    // briefly: a task due in an hour must not hold its follower's answer.
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (_server, _gate, troupe) = started(dir.path()).await;
        let (http, base, token) = serve(&troupe).await;
        let later = troupe::job::EnqueueOptions {
            delay: Some(std::time::Duration::from_secs(3600)),
            ..Default::default()
        };
        let job = troupe
            .engine()
            .enqueue(
                "sarah",
                json!({"prompt": "Open the gate in an hour"}),
                Default::default(),
                later,
            )
            .await
            .unwrap()
            .job()
            .id;
        let id = job.to_string();
        let opened = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            Follower::open(&base, &token, &id, None),
        )
        .await;
        let mut follower = opened.expect("the answer's head came before the task started");
        // Still live: the task's end arrives on the same stream.
        troupe.engine().cancel_job(job).await.unwrap();
        let events = follower.rest().await;
        assert_eq!(types(&events), ["cancelled"], "{events:#?}");
        http.stop().await;
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn the_events_route_takes_the_same_auth_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (_server, _gate, troupe) = started(dir.path()).await;
        let (http, base, token) = serve(&troupe).await;
        let client = reqwest::Client::new();
        let job = uuid::Uuid::now_v7();
        let url = format!("{base}/v1/jobs/{job}/events");
        let no_token = client.get(&url).send().await.unwrap();
        assert_eq!(no_token.status(), 401);
        let unknown = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(unknown.status(), 404);
        let body: Value = unknown.json().await.unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&job.to_string()));
        let bad = client
            .get(&url)
            .bearer_auth(&token)
            .header("Last-Event-ID", "seven")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        let body: Value = bad.json().await.unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Last-Event-ID"));
        let not_an_id = client
            .get(format!("{base}/v1/jobs/nope/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(not_an_id.status(), 400);
        http.stop().await;
        troupe.shutdown().await.unwrap();
    });
}

fn as_json(events: &[TaskEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[test]
fn the_library_streams_a_task_and_a_restart_rebuilds_what_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (server, gate, troupe) = started(dir.path()).await;
        let job = troupe
            .task("sarah", "Open the gate", TaskOptions::default())
            .await
            .unwrap();
        let mut stream = troupe.events(job.id).await.unwrap();
        let mut seen = Vec::new();
        while let Some(event) = stream.next().await {
            if let TaskEventKind::ToolCall { .. } = event.kind {
                gate.0.add_permits(1);
            }
            seen.push(event);
        }
        assert_eq!(types(&as_json(&seen)), WHOLE);
        assert!(seen.last().unwrap().is_terminal());
        // Resumed after an event: the rest, once.
        let rest: Vec<_> = troupe
            .events_after(job.id, seen[2].seq)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(rest, seen[3..]);
        // An unknown job is an error, not an endless stream.
        let unknown = troupe.events(uuid::Uuid::now_v7()).await;
        assert!(unknown.is_err());
        troupe.shutdown().await.unwrap();
        drop((stream, troupe));

        // Restarted: the events are rebuilt from the job record and its
        // checkpoints (no text deltas, timestamps of the rebuild).
        let troupe = runtime(dir.path(), config(&server), &gate).await;
        let rebuilt: Vec<_> = troupe.events(job.id).await.unwrap().collect().await;
        let rebuilt = as_json(&rebuilt);
        assert_eq!(types(&rebuilt), WHOLE, "{rebuilt:#?}");
        let before = as_json(&seen);
        for (a, b) in before.iter().zip(&rebuilt) {
            let strip = |v: &Value| {
                let mut v = v.clone();
                v.as_object_mut().unwrap().remove("at");
                v["latencyMs"] = Value::Null;
                v
            };
            assert_eq!(strip(a), strip(b));
        }
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn a_failing_task_ends_its_stream_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({"error": {"message": "bad key", "type": "invalid_request_error"}}),
            ))
            .mount(&server)
            .await;
        let gate = Gate(Arc::new(Semaphore::new(0)));
        let troupe = runtime(dir.path(), config(&server), &gate).await;
        let job = troupe
            .task("sarah", "Hello", TaskOptions::default())
            .await
            .unwrap();
        let seen: Vec<_> = troupe.events(job.id).await.unwrap().collect().await;
        assert_eq!(types(&as_json(&seen)), ["attemptStarted", "failed"]);
        match &seen[1].kind {
            TaskEventKind::Failed { error } => assert!(error.contains("openai"), "{error}"),
            other => panic!("{other:?}"),
        }
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn a_retried_task_shows_the_retry_live_and_rebuilt_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        // The first call fails (a 5xx, not retried in line): the job retries.
        let server = model().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        let mut config = config(&server);
        config.providers[0].retry.max_attempts = 1;
        let gate = Gate(Arc::new(Semaphore::new(1)));
        let engine = troupe::EngineConfig {
            retry: troupe::BackoffPolicy {
                initial: std::time::Duration::from_millis(1),
                max: std::time::Duration::from_millis(5),
                ..troupe::BackoffPolicy::default()
            },
            ..troupe::EngineConfig::default()
        };
        let store: Arc<dyn Store> =
            Arc::new(common::open_after_raw_sled(SledConfig::new(dir.path())).unwrap());
        let troupe = Troupe::builder(config.clone())
            .store_arc(store)
            .tool(gate.clone())
            .engine_config(engine)
            .start()
            .await
            .unwrap();
        let job = troupe
            .task("sarah", "Open the gate", TaskOptions::default())
            .await
            .unwrap();
        let live: Vec<_> = troupe.events(job.id).await.unwrap().collect().await;
        let live = as_json(&live);
        let expected: Vec<&str> = ["attemptStarted", "retryScheduled"]
            .into_iter()
            .chain(WHOLE)
            .collect();
        assert_eq!(types(&live), expected, "{live:#?}");
        assert_eq!(live[1]["attempt"], 1);
        assert!(
            live[1]["error"].as_str().unwrap().contains("openai"),
            "{}",
            live[1]
        );
        assert_eq!(live[2]["attempt"], 2);
        troupe.shutdown().await.unwrap();
        drop(troupe);

        let troupe = runtime(dir.path(), config, &gate).await;
        let rebuilt: Vec<_> = troupe.events(job.id).await.unwrap().collect().await;
        let rebuilt = as_json(&rebuilt);
        assert_eq!(types(&rebuilt), expected, "{rebuilt:#?}");
        assert_eq!(rebuilt[1]["error"], live[1]["error"]);
        assert_eq!(rebuilt[2]["attempt"], 2);
        // Rebuilt with the ids they had live: attempt 1's two, then
        // attempt 2's, the end last.
        let ids = |events: &[Value]| -> Vec<u64> {
            events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
        };
        let expected_ids: Vec<u64> = [1 << 32 | 1, 1 << 32 | 2]
            .into_iter()
            .chain(attempt_seqs(2, WHOLE.len()))
            .collect();
        assert_eq!(ids(&live), expected_ids);
        assert_eq!(ids(&rebuilt), expected_ids);
        troupe.shutdown().await.unwrap();
    });
}
