//! Error classification for bodies not in the fixture set but described by
//! the providers (DeepSeek, Mistral, Anthropic spend limit), wait parsing,
//! and the key never leaking into errors or `Debug`.

use std::time::{Duration, SystemTime};

use crate::provider::classify::{classify, CallContext};
use crate::provider::headers::{parse_duration, rate_limits, retry_wait, Dimension};
use crate::provider::retry::RetryPolicy;
use crate::provider::{
    ApiKey, ErrorKind, GenerateRequest, Message, Provider, ProviderConfig, ProviderKind,
};
use reqwest::header::{HeaderMap, HeaderValue};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-live-SECRET-abcdef0123456789";

fn class(status: u16, body: &str) -> ErrorKind {
    let key = ApiKey::new(KEY);
    let ctx = CallContext {
        provider: "p",
        model: "m",
        key: Some(&key),
    };
    classify(
        status,
        &HeaderMap::new(),
        body.as_bytes(),
        ctx,
        SystemTime::now(),
    )
    .kind
}

#[test]
fn deepseek_status_codes() {
    let ctx_overflow = r#"{"error":{"message":"This model's maximum context length is 65536 tokens. However, you requested 70000 tokens (70000 in the messages, 0 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}"#;
    assert_eq!(class(400, ctx_overflow), ErrorKind::ContextTooLong);
    let no_balance = r#"{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}"#;
    assert_eq!(class(402, no_balance), ErrorKind::QuotaExhausted);
    assert_eq!(
        class(
            422,
            r#"{"error":{"message":"bad temperature","type":"invalid_request_error"}}"#
        ),
        ErrorKind::BadRequest
    );
    assert_eq!(
        class(
            503,
            r#"{"error":{"message":"Server overloaded","type":"server_error"}}"#
        ),
        ErrorKind::Overloaded
    );
    assert_eq!(class(500, ""), ErrorKind::ServerError);
}

#[test]
fn mistral_flat_bodies() {
    let unauthorized = r#"{"object":"error","message":"Unauthorized","type":"invalid_request_error","param":null,"code":null}"#;
    assert_eq!(class(401, unauthorized), ErrorKind::Authentication);
    let invalid_model = r#"{"object":"error","message":"Invalid model: mistral-huge","type":"invalid_model","param":null,"code":"1500"}"#;
    assert_eq!(class(400, invalid_model), ErrorKind::ModelNotFound);
    let rl = r#"{"object":"error","message":"Requests rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#;
    assert_eq!(class(429, rl), ErrorKind::RateLimited);
    let key = ApiKey::new(KEY);
    let ctx = CallContext {
        provider: "p",
        model: "m",
        key: Some(&key),
    };
    let e = classify(
        429,
        &HeaderMap::new(),
        rl.as_bytes(),
        ctx,
        SystemTime::now(),
    );
    assert_eq!(e.message, "Requests rate limit exceeded");
    assert_eq!(e.code.as_deref(), Some("1300"));
}

#[test]
fn anthropic_spend_limit_and_other_types() {
    let spend = r#"{"type":"error","error":{"type":"rate_limit_error","message":"enforced_spend_limit_reached: You have reached your specified API usage limits."}}"#;
    assert_eq!(class(429, spend), ErrorKind::QuotaExhausted);
    let spend2 = r#"{"type":"error","error":{"type":"enforced_spend_limit_reached","message":"Spend limit reached"}}"#;
    assert_eq!(class(429, spend2), ErrorKind::QuotaExhausted);
    let credit = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
    assert_eq!(class(400, credit), ErrorKind::QuotaExhausted);
    assert_eq!(
        class(
            403,
            r#"{"type":"error","error":{"type":"permission_error","message":"no"}}"#
        ),
        ErrorKind::Permission
    );
    assert_eq!(
        class(
            404,
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: x"}}"#
        ),
        ErrorKind::ModelNotFound
    );
    assert_eq!(
        class(
            413,
            r#"{"type":"error","error":{"type":"request_too_large","message":"too big"}}"#
        ),
        ErrorKind::ContextTooLong
    );
    assert_eq!(
        class(
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208000 tokens > 200000 maximum"}}"#
        ),
        ErrorKind::ContextTooLong
    );
    assert_eq!(
        class(
            500,
            r#"{"type":"error","error":{"type":"api_error","message":"Internal"}}"#
        ),
        ErrorKind::ServerError
    );
    assert_eq!(
        class(504, "<html>gateway timeout</html>"),
        ErrorKind::Timeout
    );
    // Ollama and FastAPI shapes.
    assert_eq!(
        class(404, r#"{"error":"model 'llama9' not found"}"#),
        ErrorKind::ModelNotFound
    );
    assert_eq!(
        class(422, r#"{"detail":[{"msg":"field required"}]}"#),
        ErrorKind::BadRequest
    );
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn waits_from_every_header_style() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(
        retry_wait(&headers(&[("retry-after-ms", "1500")]), now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        retry_wait(&headers(&[("retry-after", "20")]), now),
        Some(Duration::from_secs(20))
    );
    // retry-after-ms wins over retry-after.
    assert_eq!(
        retry_wait(
            &headers(&[("retry-after", "20"), ("retry-after-ms", "250")]),
            now
        ),
        Some(Duration::from_millis(250))
    );
    let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
    assert_eq!(
        retry_wait(&headers(&[("retry-after", &date)]), now),
        Some(Duration::from_secs(90))
    );
    // A date in the past means "now".
    let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
    assert_eq!(
        retry_wait(&headers(&[("retry-after", &past)]), now),
        Some(Duration::ZERO)
    );
    // OpenAI reset durations: the exhausted dimension decides.
    let h = headers(&[
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "1m30s"),
        ("x-ratelimit-remaining-tokens", "5000"),
        ("x-ratelimit-reset-tokens", "12ms"),
    ]);
    assert_eq!(retry_wait(&h, now), Some(Duration::from_secs(90)));
    // Anthropic RFC 3339 resets.
    let at = chrono::DateTime::<chrono::Utc>::from(now + Duration::from_secs(42)).to_rfc3339();
    let h = headers(&[
        ("anthropic-ratelimit-requests-remaining", "0"),
        ("anthropic-ratelimit-requests-reset", &at),
        ("anthropic-ratelimit-requests-limit", "50"),
    ]);
    assert_eq!(retry_wait(&h, now), Some(Duration::from_secs(42)));
    let reports = rate_limits(&h, now);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].dimension, Dimension::Requests);
    assert_eq!(reports[0].limit, Some(50));
    assert_eq!(retry_wait(&HeaderMap::new(), now), None);
    assert_eq!(retry_wait(&headers(&[("retry-after", "soon")]), now), None);
}

#[test]
fn openai_duration_format() {
    assert_eq!(parse_duration("6s"), Some(Duration::from_secs(6)));
    assert_eq!(parse_duration("12ms"), Some(Duration::from_millis(12)));
    assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
    assert_eq!(
        parse_duration("1m30.5s"),
        Some(Duration::from_millis(90_500))
    );
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_duration("6"), None);
    assert_eq!(parse_duration("6x"), None);
    assert_eq!(parse_duration("s"), None);
}

#[test]
fn should_retry_hint_overrides_default() {
    let key = ApiKey::new(KEY);
    let ctx = CallContext {
        provider: "p",
        model: "m",
        key: Some(&key),
    };
    let e = classify(
        500,
        &headers(&[("x-should-retry", "false")]),
        b"{}",
        ctx,
        SystemTime::now(),
    );
    assert_eq!(e.kind, ErrorKind::ServerError);
    assert!(!e.retryable());
    let e = classify(
        409,
        &headers(&[("x-should-retry", "true")]),
        b"{}",
        ctx,
        SystemTime::now(),
    );
    assert!(e.retryable());
}

#[tokio::test]
async fn key_never_in_errors_or_debug() {
    let server = MockServer::start().await;
    // A hostile or careless server echoes the key back in the body.
    let echoed = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string(echoed))
        .mount(&server)
        .await;
    let mut cfg = ProviderConfig::new("openai", ProviderKind::Openai)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new(KEY));
    cfg.retry = RetryPolicy::no_retries();
    cfg.headers
        .insert("x-extra".into(), "also-secret-value".into());
    assert!(!format!("{cfg:?}").contains(KEY));
    assert!(!format!("{cfg:?}").contains("also-secret-value"));
    let p = Provider::new(cfg.clone()).unwrap();
    let dbg = format!("{p:?}");
    assert!(!dbg.contains(KEY), "{dbg}");
    assert!(!dbg.contains("also-secret-value"), "{dbg}");
    let req = GenerateRequest {
        model: "gpt-4o-mini".into(),
        messages: vec![Message::user("hi")],
        ..Default::default()
    };
    let e = p.generate(req.clone()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Authentication);
    for text in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
        assert!(!text.contains(KEY), "{text}");
        assert!(
            text.contains("openai") && text.contains("gpt-4o-mini"),
            "{text}"
        );
    }
    assert!(e.message.contains("[REDACTED]"));
    // The same when the key comes back in a 200 body that fails to decode.
    let server2 = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!(r#"{{"choices": "{KEY}"}}"#)),
        )
        .mount(&server2)
        .await;
    let p2 = Provider::new(cfg.with_base_url(server2.uri())).unwrap();
    let e = p2.generate(req).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::MalformedResponse);
    assert!(!format!("{e} {e:?}").contains(KEY), "{e:?}");
    // ApiKey itself.
    let k = ApiKey::new(KEY);
    assert_eq!(format!("{k:?}"), "ApiKey([REDACTED])");
}

#[tokio::test]
async fn connection_failure_and_config_errors() {
    // A port nothing listens on: bind, note the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = ProviderConfig::new("local", ProviderKind::OpenaiCompatible)
        .with_base_url(format!("http://127.0.0.1:{port}/v1"));
    cfg.retry = RetryPolicy::no_retries();
    let p = Provider::new(cfg).unwrap();
    let e = p
        .generate(GenerateRequest {
            model: "llama3".into(),
            messages: vec![Message::user("hi")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Connection);
    assert!(e.retryable() && e.fails_over());

    let e = Provider::new(ProviderConfig::new("x", ProviderKind::OpenaiCompatible)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    let mut cfg = ProviderConfig::new("y", ProviderKind::Anthropic);
    cfg.api_key_env = Some("TROUPE_TEST_SURELY_UNSET_VAR".into());
    let e = Provider::new(cfg).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    assert!(e.message.contains("TROUPE_TEST_SURELY_UNSET_VAR"));
}

#[tokio::test]
async fn timeout_is_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let mut cfg =
        ProviderConfig::new("slow", ProviderKind::OpenaiCompatible).with_base_url(server.uri());
    cfg.timeout_secs = Some(1);
    cfg.retry = RetryPolicy::no_retries();
    let e = Provider::new(cfg)
        .unwrap()
        .generate(GenerateRequest {
            model: "m".into(),
            messages: vec![Message::user("hi")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(e.retryable());
}
