//! Retries, circuit breaker, failover and rate limiting against 127.0.0.1
//! wiremock servers. Time is a `ManualClock`: waits are recorded, not slept,
//! so every assertion about spacing is exact and nothing can flake on a busy
//! machine.

use std::sync::Arc;
use std::time::Duration;

use crate::provider::breaker::{BreakerConfig, CircuitBreaker};
use crate::provider::clock::ManualClock;
use crate::provider::failover::{Candidate, Failover};
use crate::provider::ratelimit::{RateLimitConfig, RateLimiter};
use crate::provider::{
    ApiKey, BreakerState, ErrorKind, GenerateRequest, Message, Provider, ProviderConfig,
    ProviderKind, ToolCall, ToolDefinition,
};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::test_support::fixture;

fn openai_ok() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_raw(fixture("openai-chat-text-usage.json"), "application/json")
}

fn anthropic_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        fixture("anthropic-message-text-end-turn.json"),
        "application/json",
    )
}

fn config(name: &str, kind: ProviderKind, server: &MockServer) -> ProviderConfig {
    ProviderConfig::new(name, kind)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new("sk-resilience-test-key"))
}

fn build(cfg: ProviderConfig, clock: &Arc<ManualClock>) -> Provider {
    Provider::with_clock(cfg, clock.clone()).unwrap()
}

fn req() -> GenerateRequest {
    GenerateRequest {
        model: "m".into(),
        messages: vec![Message::user("hello")],
        ..Default::default()
    }
}

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn close(a: Duration, b: Duration) -> bool {
    a.abs_diff(b) < Duration::from_millis(1)
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_raw(
                    fixture("anthropic-error-429-rate-limit.json"),
                    "application/json",
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(anthropic_ok())
        .with_priority(2)
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let p = build(config("a", ProviderKind::Anthropic, &server), &clock);
    let r = p.generate(req()).await.unwrap();
    assert_eq!(r.provider, "a");
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(2)]);
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn retry_after_ms_beats_backoff_and_backoff_is_jittered_exponential() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).insert_header("retry-after-ms", "1234"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(openai_ok())
        .with_priority(3)
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let mut cfg = config("o", ProviderKind::Openai, &server);
    cfg.retry.max_attempts = 4;
    let p = build(cfg, &clock);
    p.generate(req()).await.unwrap();
    let s = clock.sleeps();
    assert_eq!(s.len(), 3);
    assert_eq!(s[0], Duration::from_millis(1234));
    // Backoff: 500 ms doubled per attempt (the provider's wait used the first
    // slot), ±25 % jitter.
    assert!(
        s[1] >= Duration::from_millis(749) && s[1] <= Duration::from_millis(1251),
        "{s:?}"
    );
    assert!(
        s[2] >= Duration::from_millis(1499) && s[2] <= Duration::from_millis(2501),
        "{s:?}"
    );
    assert_eq!(hits(&server).await, 4);
}

#[tokio::test]
async fn wait_over_cap_is_returned_not_slept() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let p = build(config("o", ProviderKind::Openai, &server), &clock);
    let e = p.generate(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert!(clock.sleeps().is_empty());
    assert_eq!(hits(&server).await, 1);
    // The limiter now holds back other calls for the same provider, and
    // does not sleep through the long wait either: it answers at once.
    assert_eq!(p.limiter_snapshot().blocked_for, Duration::from_secs(120));
    let e = p.generate(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.status, None);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert!(clock.sleeps().is_empty());
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn retries_are_bounded_in_attempts_and_time() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let mut cfg = config("o", ProviderKind::Openai, &server);
    cfg.retry.max_attempts = 3;
    let p = build(cfg, &clock);
    let e = p.generate(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ServerError);
    assert_eq!(e.attempts, 3);
    assert_eq!(hits(&server).await, 3);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "4"))
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let mut cfg = config("d", ProviderKind::Deepseek, &server);
    cfg.retry.max_attempts = 10;
    cfg.retry.max_total = Some(Duration::from_secs(10));
    let p = build(cfg, &clock);
    let e = p.generate(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Overloaded);
    // 4 s + 4 s fit in 10 s; a third wait would not.
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(4); 2]);
    assert_eq!(hits(&server).await, 3);
}

#[tokio::test]
async fn non_retryable_and_should_retry_false_are_not_retried() {
    for (status, hdr, body) in [
        (
            400,
            None,
            fixture("openai-error-400-unsupported-parameter.json"),
        ),
        (
            429,
            None,
            fixture("openai-error-429-insufficient-quota.json"),
        ),
        (
            529,
            Some("false"),
            fixture("anthropic-error-529-overloaded.json"),
        ),
    ] {
        let server = MockServer::start().await;
        let mut t = ResponseTemplate::new(status).set_body_raw(body, "application/json");
        if let Some(h) = hdr {
            t = t.insert_header("x-should-retry", h);
        }
        Mock::given(method("POST"))
            .respond_with(t)
            .mount(&server)
            .await;
        let clock = Arc::new(ManualClock::new());
        let p = build(config("o", ProviderKind::Openai, &server), &clock);
        let e = p.generate(req()).await.unwrap_err();
        assert!(!e.retryable(), "{e}");
        assert_eq!(hits(&server).await, 1, "{e}");
        assert!(clock.sleeps().is_empty());
    }
}

#[tokio::test]
async fn breaker_opens_then_half_opens_then_closes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let mut cfg = config("o", ProviderKind::Openai, &server);
    cfg.retry.max_attempts = 1;
    cfg.breaker = BreakerConfig {
        failure_threshold: 2,
        open_secs: 30,
        half_open_successes: 1,
    };
    let p = build(cfg, &clock);

    assert_eq!(p.breaker_state(), BreakerState::Closed);
    p.generate(req()).await.unwrap_err();
    assert_eq!(p.breaker_state(), BreakerState::Closed);
    p.generate(req()).await.unwrap_err();
    assert_eq!(p.breaker_state(), BreakerState::Open);

    // Open: refused without touching the network.
    let e = p.generate(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::CircuitOpen);
    assert!(e.fails_over());
    assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(hits(&server).await, 2);

    // After the cool-down: half-open; a failed probe opens it again.
    clock.advance(Duration::from_secs(30));
    assert_eq!(p.breaker_state(), BreakerState::HalfOpen);
    p.generate(req()).await.unwrap_err();
    assert_eq!(p.breaker_state(), BreakerState::Open);
    assert_eq!(hits(&server).await, 3);

    // Provider recovers; a successful probe closes it.
    clock.advance(Duration::from_secs(30));
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(openai_ok())
        .mount(&server)
        .await;
    assert_eq!(p.breaker_state(), BreakerState::HalfOpen);
    p.generate(req()).await.unwrap();
    assert_eq!(p.breaker_state(), BreakerState::Closed);
}

#[test]
fn half_open_lets_one_probe_through_and_bad_requests_do_not_count() {
    let clock = Arc::new(ManualClock::new());
    let b = CircuitBreaker::new(
        BreakerConfig {
            failure_threshold: 1,
            open_secs: 10,
            half_open_successes: 2,
        },
        clock.clone(),
    );
    b.acquire().unwrap().failure();
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.acquire().unwrap_err().retry_in, Duration::from_secs(10));
    clock.advance(Duration::from_secs(10));
    let probe = b.acquire().unwrap();
    assert!(b.acquire().is_err(), "second concurrent probe must wait");
    drop(probe); // no verdict (cancelled / bad request): slot freed, state kept
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.acquire().unwrap().success();
    assert_eq!(b.state(), BreakerState::HalfOpen, "needs two successes");
    b.acquire().unwrap().success();
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test]
async fn failover_tries_in_order_and_says_who_answered() {
    let auth_fail = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            fixture("openai-error-401-invalid-api-key.json"),
            "application/json",
        ))
        .mount(&auth_fail)
        .await;
    let overloaded = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(529)
                .insert_header("x-should-retry", "true")
                .set_body_raw(
                    fixture("anthropic-error-529-overloaded.json"),
                    "application/json",
                ),
        )
        .mount(&overloaded)
        .await;
    let quota = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_raw(
            fixture("openai-error-429-insufficient-quota.json"),
            "application/json",
        ))
        .mount(&quota)
        .await;
    let good = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/messages"))
        .respond_with(anthropic_ok())
        .mount(&good)
        .await;
    let never = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(openai_ok())
        .mount(&never)
        .await;

    let clock = Arc::new(ManualClock::new());
    let mut over_cfg = config("anthropic-main", ProviderKind::Anthropic, &overloaded);
    over_cfg.retry.max_attempts = 2;
    let f = Failover::new(vec![
        Candidate::new(
            build(config("openai", ProviderKind::Openai, &auth_fail), &clock),
            "gpt-4o-mini",
        ),
        Candidate::new(build(over_cfg, &clock), "claude-sonnet-4-5"),
        Candidate::new(
            build(config("openai-2", ProviderKind::Openai, &quota), &clock),
            "gpt-4.1",
        ),
        Candidate::new(
            build(
                config("anthropic-backup", ProviderKind::Anthropic, &good),
                &clock,
            ),
            "claude-haiku-4-5",
        ),
        Candidate::new(
            build(config("never", ProviderKind::Openai, &never), &clock),
            "x",
        ),
    ]);
    let r = f.generate(req()).await.unwrap();
    assert_eq!(r.provider, "anthropic-backup");
    assert_eq!(r.model, "claude-sonnet-4-5-20250929"); // as the provider reported it
    assert_eq!(hits(&auth_fail).await, 1);
    assert_eq!(hits(&overloaded).await, 2, "retried once, then moved on");
    assert_eq!(hits(&quota).await, 1, "quota is not retried");
    assert_eq!(hits(&good).await, 1);
    assert_eq!(hits(&never).await, 0);
    // Each candidate got its own model name.
    let sent: Value = good.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["model"], "claude-haiku-4-5");
}

#[tokio::test]
async fn bad_request_does_not_fail_over_and_open_circuit_does() {
    let bad = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            fixture("openai-error-400-unsupported-parameter.json"),
            "application/json",
        ))
        .mount(&bad)
        .await;
    let good = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(openai_ok())
        .mount(&good)
        .await;
    let clock = Arc::new(ManualClock::new());
    let f = Failover::new(vec![
        Candidate::new(
            build(config("bad", ProviderKind::Openai, &bad), &clock),
            "a",
        ),
        Candidate::new(
            build(config("good", ProviderKind::Openai, &good), &clock),
            "b",
        ),
    ]);
    let e = f.generate(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert_eq!(hits(&good).await, 0);

    // A provider whose circuit is open is skipped without a request.
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&down)
        .await;
    let mut cfg = config("down", ProviderKind::Openai, &down);
    cfg.retry.max_attempts = 1;
    cfg.breaker.failure_threshold = 1;
    let down_p = build(cfg, &clock);
    down_p.generate(req()).await.unwrap_err();
    assert_eq!(down_p.breaker_state(), BreakerState::Open);
    let f = Failover::new(vec![
        Candidate::new(down_p, "a"),
        Candidate::new(
            build(config("good", ProviderKind::Openai, &good), &clock),
            "b",
        ),
    ]);
    assert_eq!(f.generate(req()).await.unwrap().provider, "good");
    assert_eq!(hits(&down).await, 1);

    let e = Failover::new(vec![]).generate(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoCandidates);

    // All fail: the error that clears soonest comes back, so the job can be
    // rescheduled rather than failed (here: a 90 s rate limit, not the
    // authentication failure that came last).
    let limited = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "90"))
        .mount(&limited)
        .await;
    let auth = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&auth)
        .await;
    let f = Failover::new(vec![
        Candidate::new(
            build(config("limited", ProviderKind::Openai, &limited), &clock),
            "a",
        ),
        Candidate::new(
            build(config("auth", ProviderKind::Openai, &auth), &clock),
            "b",
        ),
    ]);
    let e = f.generate(req()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.provider, "limited");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(90)));
}

#[tokio::test]
async fn failover_mid_task_rewrites_the_conversation() {
    // Tool loop begun on OpenAI: the assistant called a tool, the tool answered.
    let conversation = vec![
        Message::user("Weather in Boston?"),
        Message::Assistant {
            text: String::new(),
            tool_calls: vec![
                ToolCall::new(
                    "call_abc123",
                    "get_current_weather",
                    json!({"location": "Boston, MA"}),
                ),
                ToolCall::new("call_def456", "get_time", json!({})),
            ],
        },
        Message::tool_result("call_abc123", r#"{"temp_c": 21}"#, false),
        Message::tool_result("call_def456", "clock offline", true),
    ];
    let request = GenerateRequest {
        model: "x".into(),
        system: Some("Be brief.".into()),
        messages: conversation,
        tools: vec![ToolDefinition {
            name: "get_current_weather".into(),
            description: "Current weather".into(),
            parameters: json!({"type": "object", "properties": {"location": {"type": "string"}}}),
        }]
        .into(),
        max_tokens: Some(200),
        ..Default::default()
    };
    let mistral = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string(
            r#"{"object":"error","message":"Service unavailable","type":"service_unavailable","param":null,"code":"1000"}"#,
        ))
        .mount(&mistral)
        .await;
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(anthropic_ok())
        .mount(&anthropic)
        .await;
    let clock = Arc::new(ManualClock::new());
    let mut mcfg = config("mistral", ProviderKind::Mistral, &mistral);
    mcfg.retry.max_attempts = 1;
    let f = Failover::new(vec![
        Candidate::new(build(mcfg, &clock), "mistral-small-latest"),
        Candidate::new(
            build(
                config("anthropic", ProviderKind::Anthropic, &anthropic),
                &clock,
            ),
            "claude-haiku-4-5",
        ),
    ]);
    let r = f.generate(request).await.unwrap();
    assert_eq!(r.provider, "anthropic");

    // Mistral was sent 9-character ids, consistently between call and result.
    let m: Value = mistral.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    let call_id = m["messages"][2]["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(call_id.len(), 9);
    assert!(call_id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(m["messages"][3]["role"], "tool");
    assert_eq!(m["messages"][3]["tool_call_id"], call_id.as_str());
    assert_eq!(
        m["messages"][2]["tool_calls"][0]["function"]["arguments"],
        r#"{"location":"Boston, MA"}"#
    );

    // Anthropic got tool_use blocks and one user turn of tool_result blocks.
    let a: Value = anthropic.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(a["system"], "Be brief.");
    let msgs = a["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][0]["id"], "call_abc123");
    assert_eq!(
        msgs[1]["content"][0]["input"],
        json!({"location": "Boston, MA"})
    );
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "call_abc123");
    assert_eq!(msgs[2]["content"][1]["is_error"], true);
    assert_eq!(a["tools"][0]["input_schema"]["type"], "object");
}

#[tokio::test]
async fn rate_limiter_spaces_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(openai_ok())
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let mut cfg = config("o", ProviderKind::Openai, &server);
    cfg.rate_limit = RateLimitConfig {
        requests_per_minute: Some(2),
        tokens_per_minute: None,
    };
    let p = build(cfg, &clock);
    for _ in 0..4 {
        p.generate(req()).await.unwrap();
    }
    let s = clock.sleeps();
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(
        s.iter().all(|d| close(*d, Duration::from_secs(30))),
        "{s:?}"
    );
    assert_eq!(hits(&server).await, 4);
}

#[test]
fn concurrent_reservations_queue_in_order() {
    let clock = Arc::new(ManualClock::new());
    let l = RateLimiter::new(
        RateLimitConfig {
            requests_per_minute: Some(2),
            tokens_per_minute: Some(1000),
        },
        clock.clone(),
    );
    // Four callers arriving at once: two pass, the others queue 30 s apart.
    let waits: Vec<Duration> = (0..4).map(|_| l.reserve(10)).collect();
    assert!(close(waits[0], Duration::ZERO) && close(waits[1], Duration::ZERO));
    assert!(close(waits[2], Duration::from_secs(30)), "{waits:?}");
    assert!(close(waits[3], Duration::from_secs(60)), "{waits:?}");

    // Tokens: 1000/min; a second 600-token call is 200 short.
    let clock = Arc::new(ManualClock::new());
    let l = RateLimiter::new(
        RateLimitConfig {
            requests_per_minute: None,
            tokens_per_minute: Some(1000),
        },
        clock.clone(),
    );
    assert_eq!(l.reserve(600), Duration::ZERO);
    assert!(close(l.reserve(600), Duration::from_secs(12))); // 200 short at 1000/60 per s
                                                             // Settling with the real usage refunds the over-estimate.
    l.settle(600, 100);
    assert_eq!(l.reserve(100), Duration::ZERO);
}

#[tokio::test]
async fn rate_limiter_adopts_provider_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            openai_ok()
                .insert_header("x-ratelimit-limit-requests", "60")
                .insert_header("x-ratelimit-remaining-requests", "0")
                .insert_header("x-ratelimit-reset-requests", "5s")
                .insert_header("x-ratelimit-limit-tokens", "150000")
                .insert_header("x-ratelimit-remaining-tokens", "149000")
                .insert_header("x-ratelimit-reset-tokens", "400ms"),
        )
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let p = build(config("o", ProviderKind::Openai, &server), &clock);
    p.generate(req()).await.unwrap();
    let snap = p.limiter_snapshot();
    assert_eq!(snap.requests_per_minute, Some(60));
    assert_eq!(snap.tokens_per_minute, Some(150_000));
    assert_eq!(snap.blocked_for, Duration::from_secs(5));
    // The next call waits for the reset instead of drawing a 429.
    p.generate(req()).await.unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(5)]);
}

#[tokio::test]
async fn health_probe() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/models"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"data\":[]}"))
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new());
    let p = build(config("o", ProviderKind::Openai, &server), &clock);
    assert!(p.probe().await.is_ok());
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            fixture("anthropic-error-401-authentication.json"),
            "application/json",
        ))
        .mount(&server)
        .await;
    let p = build(config("a", ProviderKind::Anthropic, &server), &clock);
    assert_eq!(p.probe().await.unwrap_err().kind, ErrorKind::Authentication);
}

#[test]
fn provider_futures_are_send_for_actors() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Provider>();
    assert_send_sync::<Failover>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let p = Provider::new(
        ProviderConfig::new("x", ProviderKind::OpenaiCompatible)
            .with_base_url("http://127.0.0.1:9"),
    )
    .unwrap();
    let fut = p.generate(req());
    assert_send(&fut);
    let f = Failover::new(vec![Candidate::new(p.clone(), "m")]);
    let fut2 = f.generate(req());
    assert_send(&fut2);
}

#[test]
fn config_reads_the_camel_case_shape() {
    let cfg: ProviderConfig = serde_json::from_value(json!({
        "name": "openrouter",
        "type": "openai-compatible",
        "baseUrl": "https://openrouter.ai/api/v1/",
        "apiKeyEnv": "OPENROUTER_API_KEY",
        "headers": {"HTTP-Referer": "https://example.invalid"},
        "timeoutSecs": 30,
        "rateLimit": {"requestsPerMinute": 60, "tokensPerMinute": 100000},
        "breaker": {"failureThreshold": 3},
        "retry": {"maxAttempts": 2, "maxInlineWaitSecs": 10}
    }))
    .unwrap();
    assert_eq!(cfg.kind, ProviderKind::OpenaiCompatible);
    assert_eq!(
        cfg.resolved_base_url().unwrap(),
        "https://openrouter.ai/api/v1"
    );
    assert_eq!(cfg.timeout(), Duration::from_secs(30));
    assert_eq!(cfg.rate_limit.requests_per_minute, Some(60));
    assert_eq!(cfg.breaker.failure_threshold, 3);
    assert_eq!(cfg.breaker.open_secs, 30, "unset fields keep defaults");
    assert_eq!(cfg.retry.max_attempts, 2);
    assert_eq!(cfg.retry.max_wait, Some(Duration::from_secs(10)));
    assert!(cfg.api_key.is_none());
    for (kind, url) in [
        ("openai", "https://api.openai.com/v1"),
        ("deepseek", "https://api.deepseek.com"),
        ("mistral", "https://api.mistral.ai/v1"),
        ("anthropic", "https://api.anthropic.com/v1"),
    ] {
        let c: ProviderConfig = serde_json::from_value(json!({"name": "n", "type": kind})).unwrap();
        assert_eq!(c.resolved_base_url().unwrap(), url);
    }
}

#[test]
fn the_retry_table_of_a_config_file_keeps_its_keys() {
    let text = r#"
[[providers]]
name = "local"
type = "openai-compatible"
baseUrl = "http://127.0.0.1:9/v1"

[providers.retry]
maxAttempts = 6
initialBackoffMs = 100
maxBackoffMs = 900
multiplier = 3.0
jitter = 0.1
maxTotalSecs = 30
maxInlineWaitSecs = 5

[[providers]]
name = "plain"
type = "openai-compatible"
baseUrl = "http://127.0.0.1:9/v1"
"#;
    let config =
        crate::config::TroupeConfig::parse(text, std::path::Path::new("troupe.toml")).unwrap();
    let retry = &config.providers[0].retry;
    assert_eq!(retry.max_attempts, 6);
    assert_eq!(retry.backoff.initial, Duration::from_millis(100));
    assert_eq!(retry.backoff.max, Duration::from_millis(900));
    assert_eq!(retry.backoff.multiplier, 3.0);
    assert_eq!(retry.backoff.jitter, 0.1);
    assert_eq!(retry.max_total, Some(Duration::from_secs(30)));
    assert_eq!(retry.max_wait, Some(Duration::from_secs(5)));
    // No table: the provider defaults, waits over 60 s handed back.
    let plain = &config.providers[1].retry;
    assert_eq!(plain, &crate::provider::retry::default_policy());
    assert_eq!(plain.max_attempts, 4);
    assert_eq!(plain.max_wait, Some(Duration::from_secs(60)));
}
