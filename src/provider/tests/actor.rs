//! Provider actors under a supervisor, against 127.0.0.1 wiremock servers:
//! they answer `Generate`, survive a panic with the same address, fail over
//! in order across actors, and expose breaker state through the set.
//! No sleeps: waits are on conditions with deadlines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::in_memory::InMemoryStore;
use crate::provider::breaker::BreakerConfig;
use crate::provider::clock::ManualClock;
use crate::provider::retry::RetryPolicy;
use crate::provider::{
    ApiKey, BreakerState, Credentials, ErrorKind, Generate, GenerateRequest, KeySource, Message,
    Provider, ProviderActor, ProviderConfig, ProviderKind, ProviderSet, UsageMeter,
};
use crate::store::{DayUsage, UsageRecord, UsageScope, UsageStore, UsageTotals};
use crate::ModelConfig;
use async_trait::async_trait;
use chrono::NaiveDate;
use troupe_actors::{run_system, CallError, SupervisorSpec, Tree};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::test_support::fixture;

async fn server(status: u16, fixture_name: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(status).set_body_raw(fixture(fixture_name), "application/json"),
        )
        .mount(&server)
        .await;
    server
}

fn config(name: &str, kind: ProviderKind, server: &MockServer) -> ProviderConfig {
    let mut c = ProviderConfig::new(name, kind)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new(format!("sk-{name}-actor-test-key")));
    c.retry = RetryPolicy::no_retries();
    c
}

fn req() -> GenerateRequest {
    GenerateRequest {
        model: "gpt-4.1-nano".into(),
        messages: vec![Message::user("Invent a holiday.")],
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

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn the_actor_answers_generate_and_records_usage() {
    run_system(async {
        let s = server(200, "openai-chat-text-usage.json").await;
        let usage = Arc::new(InMemoryStore::new());
        let meter = UsageMeter::new(usage.clone());
        let set = ProviderSet::build(
            &[config("openai", ProviderKind::Openai, &s)],
            &Credentials::env_only(),
            Some(meter.clone()),
        )
        .unwrap();
        let tree = start(&set);
        let actor = set.actor("openai").unwrap();
        let job = uuid::Uuid::now_v7();
        let resp = actor
            .send(Generate::new(req()).agent("sarah").job(job))
            .await
            .unwrap()
            .unwrap();
        assert!(resp.text.contains("Galaxy Day"));
        assert_eq!(resp.provider, "openai");
        assert_eq!(
            (resp.usage.input_tokens, resp.usage.output_tokens),
            (16, 363)
        );

        let calls = usage.calls(meter.today()).await.unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].agent.as_deref(), Some("sarah"));
        assert_eq!(calls[0].job, Some(job));
        // gpt-4.1-nano: $0.10 in / $0.40 out per million tokens.
        assert_eq!(calls[0].cost_nanos, 16 * 100 + 363 * 400);

        let status = set.status();
        assert_eq!(status[0].actor, "running");
        assert_eq!(status[0].breaker, BreakerState::Closed);
        assert_eq!(status[0].key_source, "code");
        tree.shutdown().await;
    });
}

/// A usage store whose first `record` panics: the panic happens inside the
/// provider actor's reply future.
#[derive(Default)]
struct PanicOnce {
    fired: AtomicBool,
    inner: InMemoryStore,
}

#[async_trait]
impl UsageStore for PanicOnce {
    async fn record(&self, record: &UsageRecord) -> Result<(), crate::store::StoreError> {
        if !self.fired.swap(true, Ordering::SeqCst) {
            panic!("usage store exploded");
        }
        self.inner.record(record).await
    }
    async fn totals(
        &self,
        scope: &UsageScope,
        day: NaiveDate,
    ) -> Result<UsageTotals, crate::store::StoreError> {
        self.inner.totals(scope, day).await
    }
    async fn day_usage(&self, day: NaiveDate) -> Result<DayUsage, crate::store::StoreError> {
        self.inner.day_usage(day).await
    }
    async fn calls(&self, day: NaiveDate) -> Result<Vec<UsageRecord>, crate::store::StoreError> {
        self.inner.calls(day).await
    }
}

#[test]
fn a_panicking_provider_actor_is_restarted_and_keeps_its_address() {
    run_system(async {
        let s = server(200, "openai-chat-text-usage.json").await;
        let store = Arc::new(PanicOnce::default());
        let set = ProviderSet::build(
            &[config("openai", ProviderKind::Openai, &s)],
            &Credentials::env_only(),
            Some(UsageMeter::new(store.clone())),
        )
        .unwrap();
        let tree = start(&set);
        let actor = set.actor("openai").unwrap();

        let crashed = actor.send(Generate::new(req()).agent("sarah")).await;
        assert_eq!(
            crashed.unwrap_err(),
            CallError::Dropped {
                actor: "openai".into()
            }
        );
        eventually("the provider actor restarted", || actor.restarts() == 1).await;

        // Same address, new instance, same client: it answers.
        let resp = actor
            .send(Generate::new(req()).agent("sarah"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.provider, "openai");
        // And through the set, which holds the same address.
        let route = ModelConfig::new("openai", "gpt-4.1-nano");
        assert!(set.generate(&route, Generate::new(req())).await.is_ok());
        assert_eq!(set.status()[0].restarts, 1);
        assert_eq!(set.status()[0].actor, "running");
        assert_eq!(hits(&s).await, 3);
        tree.shutdown().await;
    });
}

#[test]
fn failover_walks_the_actors_in_order_and_names_who_answered() {
    run_system(async {
        let bad_key = server(401, "openai-error-401-invalid-api-key.json").await;
        let overloaded = server(529, "anthropic-error-529-overloaded.json").await;
        let good = server(200, "anthropic-message-text-end-turn.json").await;
        let unused = server(200, "openai-chat-text-usage.json").await;
        let set = ProviderSet::build(
            &[
                config("openai", ProviderKind::Openai, &bad_key),
                config("claude-busy", ProviderKind::Anthropic, &overloaded),
                config("claude", ProviderKind::Anthropic, &good),
                config("spare", ProviderKind::Openai, &unused),
            ],
            &Credentials::env_only(),
            None,
        )
        .unwrap();
        let tree = start(&set);
        let route = ModelConfig::new("openai", "gpt-4o-mini")
            .fallback("claude-busy", "claude-haiku-4-5")
            .fallback("claude", "claude-sonnet-4-5")
            .fallback("spare", "gpt-4o");
        set.validate(&route).unwrap();
        let resp = set
            .generate(&route, Generate::new(req()).agent("sarah"))
            .await
            .unwrap();
        assert_eq!(resp.provider, "claude");
        assert_eq!(resp.model, "claude-sonnet-4-5-20250929");
        assert_eq!(hits(&bad_key).await, 1);
        assert_eq!(hits(&overloaded).await, 1);
        assert_eq!(hits(&good).await, 1);
        assert_eq!(hits(&unused).await, 0, "the list stops at the first answer");
        // The model asked of each candidate is that candidate's.
        let sent: serde_json::Value =
            serde_json::from_slice(&good.received_requests().await.unwrap()[0].body).unwrap();
        assert_eq!(sent["model"], "claude-sonnet-4-5");
        tree.shutdown().await;
    });
}

#[test]
fn a_bad_request_stops_failover_and_unknown_providers_are_named() {
    run_system(async {
        let bad = server(400, "openai-error-400-unsupported-parameter.json").await;
        let good = server(200, "openai-chat-text-usage.json").await;
        let set = ProviderSet::build(
            &[
                config("first", ProviderKind::Openai, &bad),
                config("second", ProviderKind::Openai, &good),
            ],
            &Credentials::env_only(),
            None,
        )
        .unwrap();
        let tree = start(&set);
        let route = ModelConfig::new("first", "gpt-4o").fallback("second", "gpt-4o");
        let err = set
            .generate(&route, Generate::new(req()))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert_eq!(err.provider, "first");
        assert_eq!(hits(&good).await, 0);

        let unknown = ModelConfig::new("nope", "m");
        let e = set.validate(&unknown).unwrap_err().to_string();
        assert!(e.contains("`nope`") && e.contains("first, second"), "{e}");
        tree.shutdown().await;
    });
}

#[test]
fn breaker_state_is_readable_through_the_set_and_an_open_circuit_fails_over() {
    run_system(async {
        let broken = server(500, "openai-chat-text-usage.json").await;
        let good = server(200, "openai-chat-text-usage.json").await;
        let clock = Arc::new(ManualClock::new());
        let mut cfg = config("flaky", ProviderKind::Openai, &broken);
        cfg.breaker = BreakerConfig {
            failure_threshold: 2,
            open_secs: 30,
            half_open_successes: 1,
        };
        let flaky = Provider::with_clock(cfg, clock.clone()).unwrap();
        let backup =
            Provider::with_clock(config("backup", ProviderKind::Openai, &good), clock.clone())
                .unwrap();
        let set = ProviderSet::from_actors(vec![
            (ProviderActor::new(flaky, None, None), KeySource::Code),
            (ProviderActor::new(backup, None, None), KeySource::Code),
        ])
        .unwrap();
        let tree = start(&set);
        let route = ModelConfig::new("flaky", "gpt-4o").fallback("backup", "gpt-4o");
        for _ in 0..2 {
            let r = set.generate(&route, Generate::new(req())).await.unwrap();
            assert_eq!(r.provider, "backup");
        }
        assert_eq!(set.breaker_state("flaky"), Some(BreakerState::Open));
        assert_eq!(set.status()[0].breaker, BreakerState::Open);
        // Open: the next call skips the broken server entirely.
        let r = set.generate(&route, Generate::new(req())).await.unwrap();
        assert_eq!(r.provider, "backup");
        assert_eq!(hits(&broken).await, 2);
        clock.advance(Duration::from_secs(30));
        assert_eq!(set.breaker_state("flaky"), Some(BreakerState::HalfOpen));
        tree.shutdown().await;
    });
}

#[test]
fn a_set_that_was_not_attached_says_so() {
    run_system(async {
        let s = server(200, "openai-chat-text-usage.json").await;
        let set = ProviderSet::build(
            &[config("openai", ProviderKind::Openai, &s)],
            &Credentials::env_only(),
            None,
        )
        .unwrap();
        let err = set
            .generate(&ModelConfig::new("openai", "m"), Generate::new(req()))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains("attach"), "{err}");
        assert_eq!(set.status()[0].actor, "not started");
    });
}

#[test]
fn duplicate_provider_names_are_refused() {
    let s = ProviderConfig::new("x", ProviderKind::Openai).with_api_key(ApiKey::new("sk-dup"));
    let e = ProviderSet::build(&[s.clone(), s], &Credentials::env_only(), None).unwrap_err();
    assert!(e.to_string().contains("`x`"), "{e}");
}
