//! Usage and cost through the provider actors, kept in the sled store:
//! totals per agent, provider and day; per-agent daily budgets that refuse
//! calls once spent; prices from the table and from config. How sled
//! buffers and batches call records is in `tests/usage.rs`; what every
//! usage store promises is the conformance suite's
//! (`crate::store::conformance::usage`).

use std::sync::Arc;
use std::time::Duration;

use crate::provider::clock::ManualClock;
use crate::provider::price::{Price, PriceTable, PricingConfig, DEFAULT_PRICES_AS_OF};
use crate::provider::retry::RetryPolicy;
use crate::provider::{
    ApiKey, Budget, Credentials, ErrorKind, Generate, GenerateRequest, Message, ProviderConfig,
    ProviderKind, ProviderSet, UsageMeter,
};
use crate::store::{UsageScope, UsageStore};
use crate::ModelConfig;
use troupe_actors::{run_system, SupervisorSpec, Tree};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::test_support::{open, FIXTURES};

async fn server(fixture: &str) -> MockServer {
    let server = MockServer::start().await;
    let body = std::fs::read(format!("{FIXTURES}/{fixture}")).unwrap();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    server
}

fn config(name: &str, kind: ProviderKind, server: &MockServer) -> ProviderConfig {
    let mut c = ProviderConfig::new(name, kind)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new(format!("sk-{name}-usage-test")));
    c.retry = RetryPolicy::no_retries();
    c
}

fn req() -> GenerateRequest {
    GenerateRequest {
        model: "ignored".into(),
        messages: vec![Message::user("hi")],
        ..Default::default()
    }
}

fn start(set: &ProviderSet) -> Tree {
    let tree = SupervisorSpec::new("root")
        .supervisor(set.supervisor_spec("providers"))
        .start()
        .unwrap();
    set.attach(&tree, "providers").unwrap();
    tree
}

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[test]
fn totals_per_agent_provider_and_day_are_kept_in_sled() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let oa = server("openai-chat-text-usage.json").await; // 16 in, 363 out
        let an = server("anthropic-message-text-end-turn.json").await;
        let sled = open(dir.path());
        let meter = UsageMeter::new(Arc::new(sled.clone()));
        let set = ProviderSet::build(
            &[
                config("openai", ProviderKind::Openai, &oa),
                config("anthropic", ProviderKind::Anthropic, &an),
            ],
            &Credentials::env_only(),
            Some(meter.clone()),
        )
        .unwrap();
        let tree = start(&set);
        let gpt = ModelConfig::new("openai", "gpt-4.1-nano");
        let claude = ModelConfig::new("anthropic", "claude-sonnet-4-5");
        let job = uuid::Uuid::now_v7();
        let mut claude_usage = None;
        for (route, agent) in [
            (&gpt, "sarah"),
            (&gpt, "sarah"),
            (&claude, "sarah"),
            (&gpt, "bob"),
        ] {
            let r = set
                .generate(route, Generate::new(req()).agent(agent).job(job))
                .await
                .unwrap();
            if r.provider == "anthropic" {
                claude_usage = Some(r.usage);
            }
        }
        let claude_usage = claude_usage.unwrap();
        let claude_cost = PriceTable::defaults()
            .lookup("claude-sonnet-4-5-20250929")
            .unwrap()
            .cost_nanos(&claude_usage);
        let gpt_cost = 16 * 100 + 363 * 400;

        let day = meter.today();
        let report = sled.day_usage(day).await.unwrap();
        let sarah = report.by_agent["sarah"];
        assert_eq!(sarah.calls, 3);
        assert_eq!(sarah.input_tokens, 32 + claude_usage.input_tokens);
        assert_eq!(sarah.output_tokens, 726 + claude_usage.output_tokens);
        assert_eq!(sarah.cost_nanos, 2 * gpt_cost + claude_cost);
        assert_eq!(report.by_agent["bob"].calls, 1);
        assert_eq!(report.by_provider["openai"].calls, 3);
        assert_eq!(report.by_provider["openai"].cost_nanos, 3 * gpt_cost);
        assert_eq!(report.by_provider["anthropic"].calls, 1);
        assert_eq!(
            sled.totals(&UsageScope::Provider("anthropic".into()), day)
                .await
                .unwrap()
                .cost_nanos,
            claude_cost
        );
        let calls = sled.calls(day).await.unwrap();
        assert_eq!(calls.len(), 4);
        assert!(calls.iter().all(|c| c.job == Some(job) && c.priced));
        assert_eq!(calls[2].provider, "anthropic");
        assert_eq!(calls[3].agent.as_deref(), Some("bob"));
        // Nothing on another day.
        let yesterday = day.pred_opt().unwrap();
        assert!(sled.day_usage(yesterday).await.unwrap().by_agent.is_empty());
        tree.shutdown().await;
    });
    // Durable: the totals are there after reopening the directory.
    let sled = open(dir.path());
    run_system(async {
        let day = chrono::Utc::now().date_naive();
        let t = sled
            .totals(&UsageScope::Agent("sarah".into()), day)
            .await
            .unwrap();
        assert_eq!(t.calls, 3);
    });
}

#[test]
fn a_spent_budget_refuses_further_calls_without_failing_over() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let oa = server("openai-chat-text-usage.json").await;
        let backup = server("openai-chat-text-usage.json").await;
        let sled = open(dir.path());
        // One call spends 379 tokens: the second call finds 379 >= 300.
        let meter = UsageMeter::new(Arc::new(sled)).with_budget("sarah", Budget::tokens(300));
        let set = ProviderSet::build(
            &[
                config("openai", ProviderKind::Openai, &oa),
                config("backup", ProviderKind::Openai, &backup),
            ],
            &Credentials::env_only(),
            Some(meter),
        )
        .unwrap();
        let tree = start(&set);
        let route = ModelConfig::new("openai", "gpt-4.1-nano").fallback("backup", "gpt-4.1-nano");
        set.generate(&route, Generate::new(req()).agent("sarah"))
            .await
            .unwrap();
        let err = set
            .generate(&route, Generate::new(req()).agent("sarah"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BudgetExceeded);
        let text = err.to_string();
        assert!(text.contains("agent `sarah`"), "{text}");
        assert!(text.contains("379 tokens"), "{text}");
        assert!(text.contains("limit of 300 tokens"), "{text}");
        assert!(!err.retryable());
        let wait = err.retry_after.unwrap();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(86_400));
        assert_eq!(hits(&oa).await, 1, "refused before any call");
        assert_eq!(hits(&backup).await, 0, "a spent budget does not fail over");
        // Another agent (no budget) is not affected.
        set.generate(&route, Generate::new(req()).agent("bob"))
            .await
            .unwrap();
        tree.shutdown().await;
    });
}

#[test]
fn a_cost_budget_counts_dollars_and_clears_the_next_day() {
    run_system(async {
        let oa = server("openai-chat-text-usage.json").await;
        let clock = Arc::new(ManualClock::new());
        let store = Arc::new(crate::in_memory::InMemoryStore::new());
        // 146,800 nano-dollars per call: the second call finds $0.0001468 >= $0.0001.
        let meter = UsageMeter::new(store)
            .with_budget("sarah", Budget::cost_usd(0.0001))
            .with_clock(clock.clone());
        let set = ProviderSet::build(
            &[config("openai", ProviderKind::Openai, &oa)],
            &Credentials::env_only(),
            Some(meter),
        )
        .unwrap();
        let tree = start(&set);
        let route = ModelConfig::new("openai", "gpt-4.1-nano");
        let call = || set.generate(&route, Generate::new(req()).agent("sarah"));
        call().await.unwrap();
        let err = call().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::BudgetExceeded);
        assert!(err.to_string().contains("$0.000147"), "{err}");
        clock.advance(err.retry_after.unwrap());
        call().await.unwrap();
        tree.shutdown().await;
    });
}

#[test]
fn config_prices_override_the_dated_defaults() {
    let toml_like = serde_json::json!({
        "asOf": "2026-01-15",
        "models": { "gpt-4o": { "input": 1.0, "output": 2.0 }, "my-llama": { "input": 0.0, "output": 0.5 } }
    });
    let cfg: PricingConfig = serde_json::from_value(toml_like).unwrap();
    let table = PriceTable::from_config(&cfg);
    let p = table.lookup("gpt-4o-2024-08-06").unwrap();
    assert_eq!((p.input, p.output), (1.0, 2.0));
    assert_eq!(p.as_of.unwrap().to_string(), "2026-01-15");
    assert_eq!(table.lookup("my-llama").unwrap().output, 0.5);
    let mini: &Price = table.lookup("gpt-4o-mini").unwrap();
    assert_eq!(mini.as_of.unwrap().to_string(), DEFAULT_PRICES_AS_OF);
}
