//! The runtime end to end where a test reaches inside: an agent's task
//! against an OpenAI-shaped server on 127.0.0.1 when the provider's circuit
//! was opened by a call made straight to the provider client. The other
//! end-to-end tests use the public surface only (`tests/agent_e2e.rs`).

use serde_json::{json, Value};
use troupe_actors::run_system;
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::config::{AgentConfig, ModelConfig, TroupeConfig};
use crate::provider::{ProviderConfig, ProviderKind};
use crate::sled::{SledConfig, SledStore};
use crate::{TaskOptions, Troupe};

/// Matches a request whose conversation already holds `n` tool results,
/// which tells the steps of a scripted conversation apart.
struct ToolResults(usize);

impl Match for ToolResults {
    fn matches(&self, request: &Request) -> bool {
        let body = String::from_utf8_lossy(&request.body);
        let n = body.matches(r#""role":"tool""#).count()
            + body.matches(r#""type":"tool_result""#).count();
        n == self.0
    }
}

fn openai_text(text: &str) -> Value {
    json!({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 12, "total_tokens": 92}
    })
}

async fn step(server: &MockServer, results: usize, body: Value) {
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(ToolResults(results))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

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

/// Polls the job until `done` holds of it, for at most 10 s.
async fn job_when(
    troupe: &Troupe,
    id: uuid::Uuid,
    what: &str,
    done: impl Fn(&crate::job::Job) -> bool,
) -> crate::job::Job {
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

fn queued_again(job: &crate::job::Job) -> bool {
    job.status == crate::job::JobStatus::Queued && job.attempt == 1
}

#[test]
fn an_open_circuit_requeues_the_task_past_its_cooldown_then_it_completes() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        step(&server, 0, openai_text("Back again.")).await;
        let cooldown = std::time::Duration::from_secs(3);
        let mut provider = openai_provider("openai", &server);
        provider.retry.max_attempts = 1;
        provider.breaker = crate::provider::breaker::BreakerConfig {
            failure_threshold: 1,
            open_secs: cooldown.as_secs(),
            half_open_successes: 1,
        };
        // A short backoff of the engine's own, so only the breaker's
        // cooldown can put the next attempt seconds away.
        let engine = crate::engine::EngineConfig {
            retry: troupe_actors::BackoffPolicy {
                initial: std::time::Duration::from_millis(10),
                max: std::time::Duration::from_millis(10),
                multiplier: 1.0,
                jitter: 0.0,
                immediate_first: false,
                reset_after: std::time::Duration::ZERO,
            },
            drain_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        };
        let troupe = Troupe::builder(config(vec![provider], vec![agent("sarah", "openai", &[])]))
            .store(store(&dir))
            .engine_config(engine)
            .start()
            .await
            .unwrap();
        // One failed call opens the circuit.
        let opened_after = chrono::Utc::now();
        let client = troupe.providers().unwrap().provider("openai").unwrap();
        let request = crate::provider::GenerateRequest {
            model: "gpt-test".into(),
            messages: vec![crate::provider::Message::user("ping")],
            ..Default::default()
        };
        client.generate(request).await.unwrap_err();
        assert_eq!(client.breaker_state(), crate::provider::BreakerState::Open);

        let job = troupe
            .task("sarah", "Are you there?", TaskOptions::default())
            .await
            .unwrap();
        let queued = job_when(&troupe, job.id, "queued after attempt 1", queued_again).await;
        let error = queued.error.unwrap();
        assert!(error.contains("circuit open"), "{error}");
        let cooldown_ends = opened_after + chrono::Duration::from_std(cooldown).unwrap();
        assert!(
            queued.run_at >= cooldown_ends,
            "{} < {cooldown_ends}",
            queued.run_at
        );
        // The circuit refused the call: the provider saw only the first one.
        assert_eq!(server.received_requests().await.unwrap().len(), 1);

        // After the cooldown the provider answers again and the task ends.
        let result = troupe.wait(job.id).await.unwrap();
        assert_eq!(Some(result.text.as_str()), Some("Back again."));
        let done = troupe.engine().get_job(job.id).await.unwrap();
        assert_eq!(done.attempt, 2);
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        assert_eq!(
            client.breaker_state(),
            crate::provider::BreakerState::Closed
        );
        troupe.shutdown().await.unwrap();
    });
}
