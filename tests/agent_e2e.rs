//! Agents end to end against OpenAI- and Anthropic-shaped servers on
//! 127.0.0.1 playing scripted conversations: the real provider clients, the
//! real actors, a real sled store.

mod common;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::MemoryStore;
use troupe::{AgentConfig, ModelConfig, TroupeConfig};
use troupe::{ApiKey, ProviderConfig, ProviderKind};
use troupe::{MemoryScope, NewMemory};
use troupe::{TaskOptions, Troupe};
use troupe::{ToolContext, ToolError, TypedTool};
use troupe_actors::run_system;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use common::scripted::{anthropic_text, openai_text, openai_tool_calls, step, BodyHas};

fn openai_provider(name: &str, server: &MockServer) -> ProviderConfig {
    let mut p =
        ProviderConfig::new(name, ProviderKind::OpenaiCompatible).with_base_url(server.uri());
    p.retry.backoff.initial = std::time::Duration::from_millis(1);
    p.retry.backoff.max = std::time::Duration::from_millis(5);
    p
}

fn agent(id: &str, provider: &str, tools: &[&str]) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        name: format!("{id} the tester"),
        system_prompt: format!("You are {id}."),
        tools: tools.iter().map(|t| t.to_string()).collect(),
        model_config: ModelConfig {
            provider: provider.into(),
            model: "gpt-test".into(),
            temperature: Some(0.2),
            max_tokens: Some(300),
            fallbacks: Vec::new(),
            stream: false,
        },
        concurrency: 2,
        max_steps: 6,
        reflect: false,
        budget: None,
        restart_after_tasks: None,
        restart_above_memory_mib: None,
        limits: Default::default(),
        grants: Default::default(),
        approvals: Default::default(),
    }
}

fn config(providers: Vec<ProviderConfig>, agents: Vec<AgentConfig>) -> TroupeConfig {
    let mut config = TroupeConfig {
        providers,
        agents,
        ..TroupeConfig::default()
    };
    config.engine.drain_timeout = "2s".into();
    config
}

fn store(dir: &tempfile::TempDir) -> SledStore {
    SledStore::open(SledConfig::new(dir.path())).unwrap()
}

fn in_conversation(id: &str) -> TaskOptions {
    TaskOptions {
        conversation_id: Some(id.into()),
        user_id: Some("ana".into()),
        source: Some("test".into()),
        ..TaskOptions::default()
    }
}

#[test]
fn a_message_task_sends_the_message_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        step(
            &server,
            0,
            openai_tool_calls(&[(
                "call_1",
                "send_message",
                json!({"content": "Build is green"}),
            )]),
        )
        .await;
        step(
            &server,
            1,
            openai_text("I told the team the build is green."),
        )
        .await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &["send_message"])],
        ))
        .store(store(&dir))
        .start()
        .await
        .unwrap();
        let job = troupe
            .task(
                "sarah",
                "Tell the team the build is green",
                in_conversation("team"),
            )
            .await
            .unwrap();
        let result = troupe.wait(job.id).await.unwrap();
        assert_eq!(
            Some(result.text.as_str()),
            Some("I told the team the build is green.")
        );
        assert_eq!(result.tool_calls.len(), 1);
        assert_eq!(result.tool_calls[0].tool, "send_message");
        assert_eq!(result.tool_calls[0].parameters["content"], "Build is green");
        assert_eq!(result.tool_calls[0].result["ok"], true);
        assert_eq!(result.steps, 2);
        assert_eq!(result.usage.input_tokens, 130);
        assert_eq!(result.provider.as_deref(), Some("openai"));
        let messages = troupe.conversations().messages("team").await.unwrap();
        let texts: Vec<_> = messages
            .iter()
            .map(|m| (m.author.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("ana", "Tell the team the build is green"),
                ("sarah", "Build is green"),
                ("sarah", "I told the team the build is green.")
            ]
        );
        // The second request carried the tool result back to the model.
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 2);
        let second: Value = serde_json::from_slice(&requests[1].body).unwrap();
        let tool_msg = second["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "tool")
            .unwrap();
        assert_eq!(tool_msg["tool_call_id"], "call_1");
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn a_multi_step_chain_recalls_analyzes_sends_and_creates_a_task() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        step(
            &server,
            0,
            openai_tool_calls(&[("c1", "recall", json!({"query": "button styles"}))]),
        )
        .await;
        step(
            &server,
            1,
            openai_tool_calls(&[(
                "c2",
                "analyze_code",
                json!({"code": "fn main() {\n    // TODO\n}"}),
            )]),
        )
        .await;
        step(
            &server,
            2,
            openai_tool_calls(&[("c3", "send_message", json!({"content": "One TODO left"}))]),
        )
        .await;
        step(
            &server,
            3,
            openai_tool_calls(&[("c4", "create_task", json!({"prompt": "Fix the TODO"}))]),
        )
        .await;
        step(
            &server,
            4,
            openai_text("Reviewed, reported, and queued a follow-up."),
        )
        .await;
        let tools = ["recall", "analyze_code", "send_message", "create_task"];
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &tools)],
        ))
        .store(store(&dir))
        .start()
        .await
        .unwrap();
        troupe
            .engine()
            .pause(troupe::store::PauseTarget::Worker("sarah".into()))
            .await
            .unwrap();
        let job = troupe
            .task("sarah", "Review main.rs", in_conversation("review"))
            .await
            .unwrap();
        troupe
            .engine()
            .resume(troupe::store::PauseTarget::Worker("sarah".into()))
            .await
            .unwrap();
        let result = troupe.wait(job.id).await.unwrap();
        let names: Vec<_> = result.tool_calls.iter().map(|c| c.tool.as_str()).collect();
        assert_eq!(names, tools);
        assert!(result.tool_calls[1].result["data"]["findings"]
            .to_string()
            .contains("TODO"));
        assert_eq!(result.steps, 5);
        // The follow-up task exists, for sarah, linked to this one.
        let follow_up = result.tool_calls[3].result["data"]["jobId"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let follow_up = troupe.engine().get_job(follow_up).await.unwrap();
        assert_eq!(follow_up.worker_name, "sarah");
        assert_eq!(follow_up.args["prompt"], "Fix the TODO");
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn memories_reach_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    run_system(async {
        let scope = MemoryScope::user("sarah", "ana");
        store
            .remember(
                NewMemory::new(&scope, "preference", "Ana likes teal buttons", 8),
                None,
            )
            .await
            .unwrap();
        store
            .remember(
                NewMemory::new(&scope, "fact", "The repo uses pnpm", 3),
                None,
            )
            .await
            .unwrap();
        let server = MockServer::start().await;
        step(&server, 0, openai_text("Teal it is.")).await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &[])],
        ))
        .store(store.clone())
        .start()
        .await
        .unwrap();
        let job = troupe
            .task(
                "sarah",
                "Which color should the buttons be?",
                in_conversation("c"),
            )
            .await
            .unwrap();
        troupe.wait(job.id).await.unwrap();
        let requests = server.received_requests().await.unwrap();
        let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(system.contains("Ana likes teal buttons"), "{system}");
        assert!(system.contains("The repo uses pnpm"), "{system}");
        assert!(
            system.find("teal").unwrap() < system.find("pnpm").unwrap(),
            "the more useful memory first: {system}"
        );
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn invalid_arguments_go_back_to_the_model_which_corrects_them() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        step(
            &server,
            0,
            openai_tool_calls(&[(
                "c1",
                "remember",
                json!({"type": "fact", "content": "Deploys on Fridays", "importance": 42}),
            )]),
        )
        .await;
        step(
            &server,
            1,
            openai_tool_calls(&[(
                "c2",
                "remember",
                json!({"type": "fact", "content": "Deploys on Fridays", "importance": 7}),
            )]),
        )
        .await;
        step(&server, 2, openai_text("Noted.")).await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &["remember"])],
        ))
        .store(store(&dir))
        .start()
        .await
        .unwrap();
        let job = troupe
            .task(
                "sarah",
                "Remember we deploy on Fridays",
                TaskOptions::default(),
            )
            .await
            .unwrap();
        let result = troupe.wait(job.id).await.unwrap();
        assert_eq!(result.tool_calls[0].result["ok"], false);
        assert_eq!(
            result.tool_calls[0].result["error"]["kind"],
            "invalid_arguments"
        );
        assert_eq!(result.tool_calls[1].result["ok"], true);
        // The model saw what was wrong.
        let requests = server.received_requests().await.unwrap();
        let second = String::from_utf8_lossy(&requests[1].body).to_string();
        assert!(second.contains("importance"), "{second}");
        let memories = troupe
            .memories()
            .list(MemoryScope::agent("sarah"), false)
            .await
            .unwrap();
        assert_eq!(memories.len(), 1);
        assert_eq!(memories[0].importance, 7);
        troupe.shutdown().await.unwrap();
    });
}

struct Boom;

#[derive(Deserialize, JsonSchema)]
struct BoomArgs {}

#[async_trait]
impl TypedTool for Boom {
    type Args = BoomArgs;
    type Output = ();
    type Error = ToolError;
    fn name(&self) -> &str {
        "boom"
    }
    fn description(&self) -> &str {
        "panics"
    }
    async fn run(&self, _: BoomArgs, _: ToolContext) -> Result<(), ToolError> {
        panic!("the boom tool exploded");
    }
}

#[test]
fn a_panicking_tool_is_a_tool_error_and_the_agent_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        step(&server, 0, openai_tool_calls(&[("c1", "boom", json!({}))])).await;
        step(&server, 1, openai_text("The tool failed; carrying on.")).await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &["boom"])],
        ))
        .store(store(&dir))
        .tool(Boom)
        .start()
        .await
        .unwrap();
        for round in 0..2 {
            let job = troupe
                .task("sarah", "Press the button", TaskOptions::default())
                .await
                .unwrap();
            let result = troupe.wait(job.id).await.unwrap();
            assert_eq!(
                result.tool_calls[0].result["error"]["kind"], "crashed",
                "round {round}"
            );
        }
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn a_429_is_retried_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "0")
                    .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        step(&server, 0, openai_text("Here you go.")).await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &[])],
        ))
        .store(store(&dir))
        .start()
        .await
        .unwrap();
        let job = troupe
            .task("sarah", "Say something", TaskOptions::default())
            .await
            .unwrap();
        let _ = troupe.wait(job.id).await.unwrap();
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn failover_moves_to_the_second_provider_and_says_which_answered() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let primary = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})))
            .mount(&primary)
            .await;
        let backup = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/messages"))
            .and(BodyHas("You are sarah"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(anthropic_text("Answered by the backup.")),
            )
            .mount(&backup)
            .await;
        let mut anthropic =
            ProviderConfig::new("anthropic", ProviderKind::Anthropic).with_base_url(backup.uri());
        anthropic.api_key = Some(ApiKey::new("sk-ant-test"));
        let mut sarah = agent("sarah", "openai", &[]);
        sarah
            .model_config
            .fallbacks
            .push(troupe::ModelRef::new("anthropic", "claude-test"));
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &primary), anthropic],
            vec![sarah],
        ))
        .store(store(&dir))
        .start()
        .await
        .unwrap();
        let job = troupe
            .task("sarah", "Hello?", TaskOptions::default())
            .await
            .unwrap();
        let result = troupe.wait(job.id).await.unwrap();
        assert_eq!(Some(result.text.as_str()), Some("Answered by the backup."));
        assert_eq!(result.provider.as_deref(), Some("anthropic"));
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn bad_credentials_fail_the_job_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Incorrect API key provided: sk-bad***", "type": "invalid_request_error", "code": "invalid_api_key"}})))
            .mount(&server)
            .await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &[])],
        ))
        .store(store(&dir))
        .start()
        .await
        .unwrap();
        let job = troupe
            .task("sarah", "Hello?", TaskOptions::default())
            .await
            .unwrap();
        let error = troupe.wait(job.id).await.unwrap_err().to_string();
        assert!(error.contains("agent `sarah`"), "{error}");
        assert!(error.contains("openai"), "{error}");
        assert!(error.to_lowercase().contains("auth"), "{error}");
        let job = troupe.engine().get_job(job.id).await.unwrap();
        assert_eq!(job.attempt, 1, "not retried: waiting cannot fix a bad key");
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn memory_compaction_archives_the_originals_under_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    run_system(async {
        let scope = MemoryScope::user("sarah", "ana");
        for text in [
            "Ana likes teal",
            "Ana reviews on Tuesdays",
            "Ana prefers small PRs",
        ] {
            store
                .remember(NewMemory::new(&scope, "preference", text, 6), None)
                .await
                .unwrap();
        }
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(BodyHas("Summarize these memories"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(openai_text("Ana: teal, Tuesday reviews, small PRs.")),
            )
            .with_priority(1)
            .mount(&server)
            .await;
        step(
            &server,
            0,
            openai_tool_calls(&[("c1", "scheduler", json!({"kind": "memory_compaction"}))]),
        )
        .await;
        step(&server, 1, openai_text("Compaction scheduled.")).await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &["scheduler"])],
        ))
        .store(store.clone())
        .start()
        .await
        .unwrap();
        let job = troupe
            .task(
                "sarah",
                "Tidy your memories about Ana",
                in_conversation("c"),
            )
            .await
            .unwrap();
        let result = troupe.wait(job.id).await.unwrap();
        let data = &result.tool_calls[0].result["data"];
        assert_eq!(data["scheduled"], true);
        assert_eq!(data["workerName"], "memory_compaction_worker");
        let compaction = data["jobId"].as_str().unwrap().parse().unwrap();
        let ended = troupe.engine().wait_for(compaction).await.unwrap();
        assert_eq!(ended.status, troupe::job::JobStatus::Completed, "{ended:?}");
        let all = MemoryStore::list_memories(&store, &scope, true)
            .await
            .unwrap();
        let live: Vec<_> = all.iter().filter(|m| !m.archived).collect();
        let archived: Vec<_> = all.iter().filter(|m| m.archived).collect();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].content, "Ana: teal, Tuesday reviews, small PRs.");
        assert_eq!(live[0].kind.as_str(), "summary");
        assert_eq!(archived.len(), 3, "archived, not lost");
        assert!(archived.iter().all(|m| m.archived_into == Some(live[0].id)));
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn an_unknown_agent_and_bad_task_args_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let troupe = Troupe::builder(config(vec![], vec![agent("sarah", "offline", &[])]))
            .store(store(&dir))
            .start()
            .await
            .unwrap();
        let err = troupe
            .task("bob", "hi", TaskOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "unknown agent `bob` (configured: sarah)");
        let bad = troupe
            .engine()
            .enqueue(
                "sarah",
                json!({"promt": "typo"}),
                Default::default(),
                Default::default(),
            )
            .await
            .unwrap()
            .into_job();
        let ended = troupe.engine().wait_for(bad.id).await.unwrap();
        assert_eq!(ended.status, troupe::job::JobStatus::Failed);
        assert!(
            ended.error.unwrap().contains("task args must be"),
            "names the expected shape"
        );
        troupe.shutdown().await.unwrap();
    });
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

/// Polls the job until `done` holds of it, for at most 10 s.
async fn job_when(
    troupe: &Troupe,
    id: uuid::Uuid,
    what: &str,
    done: impl Fn(&troupe::job::Job) -> bool,
) -> troupe::job::Job {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let job = troupe.engine().get_job(id).await.unwrap();
        if done(&job) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}: {job:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn queued_again(job: &troupe::job::Job) -> bool {
    job.status == troupe::job::JobStatus::Queued && job.attempt == 1
}

#[test]
fn a_429_with_a_long_retry_after_requeues_the_task_past_it() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "120")
                    .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
            )
            .mount(&server)
            .await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &[])],
        ))
        .store(store(&dir))
        .start()
        .await
        .unwrap();
        let before = chrono::Utc::now();
        let job = troupe
            .task("sarah", "Say something", TaskOptions::default())
            .await
            .unwrap();
        let job = job_when(&troupe, job.id, "queued after attempt 1", queued_again).await;
        let after = chrono::Utc::now();
        let wait = chrono::Duration::seconds(120);
        assert!(
            job.run_at >= before + wait,
            "{} < {}",
            job.run_at,
            before + wait
        );
        assert!(
            job.run_at <= after + wait,
            "{} > {}",
            job.run_at,
            after + wait
        );
        let error = job.error.unwrap();
        assert!(error.contains("rate limited"), "{error}");
        assert!(error.contains("openai"), "{error}");
        // 120 s is over `maxInlineWaitSecs` (60): not slept through in line,
        // so the provider was called once, and the job holds no worker.
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn an_auth_error_fails_the_task_at_once_naming_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_raw(
                fixture("openai-error-401-invalid-api-key.json"),
                "application/json",
            ))
            .mount(&server)
            .await;
        let troupe = Troupe::builder(config(
            vec![openai_provider("openai", &server)],
            vec![agent("sarah", "openai", &[])],
        ))
        .store(store(&dir))
        .start()
        .await
        .unwrap();
        let job = troupe
            .task("sarah", "Hello?", TaskOptions::default())
            .await
            .unwrap();
        let ended = troupe.engine().wait_for(job.id).await.unwrap();
        assert_eq!(ended.status, troupe::job::JobStatus::Failed);
        assert_eq!(ended.attempt, 1, "a bad key is not retried");
        let error = ended.error.unwrap();
        assert!(
            error.starts_with("agent `sarah`: openai (gpt-test): authentication failed (HTTP 401)"),
            "{error}"
        );
        // Nor retried in line.
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        troupe.shutdown().await.unwrap();
    });
}

/// Answers 503 (an overloaded provider) while `down` holds, else a final
/// answer.
struct Flaky {
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl wiremock::Respond for Flaky {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            ResponseTemplate::new(503).set_body_json(
                json!({"error": {"message": "overloaded", "type": "overloaded_error"}}),
            )
        } else {
            ResponseTemplate::new(200).set_body_json(openai_text("Back and answering."))
        }
    }
}

#[test]
fn a_provider_down_for_a_while_then_back_loses_no_task() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let down = std::sync::Arc::new(AtomicBool::new(true));
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(Flaky { down: down.clone() })
            .mount(&server)
            .await;
        let mut provider = openai_provider("openai", &server);
        provider.retry.max_attempts = 1;
        provider.breaker = troupe::BreakerConfig {
            failure_threshold: 2,
            open_secs: 1,
            half_open_successes: 1,
        };
        let engine = troupe::EngineConfig {
            retry: troupe::BackoffPolicy {
                initial: std::time::Duration::from_millis(20),
                max: std::time::Duration::from_millis(50),
                multiplier: 2.0,
                jitter: 0.0,
                immediate_first: false,
                reset_after: std::time::Duration::ZERO,
            },
            drain_timeout: std::time::Duration::from_secs(2),
            ..troupe::EngineConfig::default()
        };
        let troupe = Troupe::builder(config(vec![provider], vec![agent("sarah", "openai", &[])]))
            .store(store(&dir))
            .engine_config(engine)
            .start()
            .await
            .unwrap();
        let mut jobs = Vec::new();
        for i in 0..6 {
            let prompt = format!("Task {i}");
            jobs.push(
                troupe
                    .task("sarah", &prompt, TaskOptions::default())
                    .await
                    .unwrap()
                    .id,
            );
        }
        // Each task waits out as many outages as it has attempts: before
        // outages were told apart, every one of them failed here.
        for id in &jobs {
            job_when(&troupe, *id, "the task waited out three outages", |j| {
                j.outages >= 3
            })
            .await;
        }
        down.store(false, Ordering::SeqCst);
        for id in &jobs {
            let answer = troupe.wait(*id).await.unwrap();
            assert_eq!(answer.text, "Back and answering.");
            let job = troupe.engine().get_job(*id).await.unwrap();
            assert!(job.attempt - job.outages <= 3, "{job:?}");
        }
        troupe.shutdown().await.unwrap();
    });
}
