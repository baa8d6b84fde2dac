//! What a hostile or broken provider endpoint must not do to us: carry the
//! key elsewhere through a redirect, fill memory with a body, leave a key's
//! prefix in a stored error, block the provider for years, or make a job
//! record megabytes long. Each against a real HTTP server on 127.0.0.1.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::provider::classify::MAX_MESSAGE_CHARS;
use crate::provider::headers::{retry_wait, MAX_PROVIDER_WAIT};
use crate::provider::{
    ApiKey, ErrorKind, GenerateRequest, Message, Provider, ProviderConfig, ProviderKind,
};
use troupe_actors::RetryPolicy;

const KEY: &str = "sk-hardening-test-key-0123456789";

fn provider(server: &MockServer, customize: impl FnOnce(&mut ProviderConfig)) -> Provider {
    let mut config = ProviderConfig::new("p", ProviderKind::OpenaiCompatible)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new(KEY));
    config.retry = RetryPolicy::no_retries();
    config
        .headers
        .insert("api-key".into(), format!("custom-{KEY}"));
    customize(&mut config);
    Provider::new(config).unwrap_or_else(|e| panic!("{e}"))
}

fn request() -> GenerateRequest {
    GenerateRequest {
        model: "m".into(),
        messages: vec![Message::user("hello")],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_carries_no_key_elsewhere() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&elsewhere)
        .await;
    let endpoint = MockServer::start().await;
    let target = format!("{}/v1/chat/completions", elsewhere.uri());
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", target.as_str()))
        .mount(&endpoint)
        .await;
    let err = provider(&endpoint, |_| {})
        .generate(request())
        .await
        .expect_err("a redirect is an error");
    let received = elsewhere.received_requests().await.unwrap_or_default();
    assert!(
        received.is_empty(),
        "the redirect was followed: {received:?}"
    );
    assert_eq!(err.kind, ErrorKind::InvalidConfig, "{err}");
    assert!(err.message.contains(&target), "{err}");
    assert!(err.message.contains("baseUrl"), "{err}");
    assert!(!err.to_string().contains(KEY));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_not_read() {
    let server = MockServer::start().await;
    let big = "x".repeat(64 * 1024);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(big))
        .mount(&server)
        .await;
    let err = provider(&server, |c| c.max_response_bytes = Some(16 * 1024))
        .generate(request())
        .await
        .expect_err("an oversize body is an error");
    assert_eq!(err.kind, ErrorKind::MalformedResponse, "{err}");
    assert!(err.message.contains("maxResponseBytes"), "{err}");
}

#[test]
fn the_default_body_limit_is_32_mib() {
    let config = ProviderConfig::new("p", ProviderKind::Openai);
    assert_eq!(config.max_response_bytes(), 32 * 1024 * 1024);
    let parsed: ProviderConfig =
        toml::from_str("name = \"p\"\ntype = \"openai\"\nmaxResponseBytes = 1024\n")
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.max_response_bytes(), 1024);
}

#[tokio::test]
async fn the_key_is_scrubbed_before_a_long_error_is_cut() {
    let server = MockServer::start().await;
    // Not JSON, so the whole body is the message; the key straddles the
    // point where the old code cut (500 characters).
    let body = format!("{}{KEY}{}", "<p>".repeat(165), "y".repeat(5000));
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string(body))
        .mount(&server)
        .await;
    let err = provider(&server, |_| {})
        .generate(request())
        .await
        .expect_err("a 500 is an error");
    assert!(!err.message.contains(&KEY[..8]), "{}", err.message);
    assert!(err.message.contains("[REDACTED]"), "{}", err.message);
    assert!(
        err.message.chars().count() <= MAX_MESSAGE_CHARS + 40,
        "{} characters",
        err.message.chars().count()
    );
    assert!(err.message.contains("more bytes)"), "says it was cut");
}

#[test]
fn a_retry_after_years_ahead_waits_an_hour_at_most() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut headers = HeaderMap::new();
    headers.insert(
        "retry-after",
        HeaderValue::from_static("Thu, 31 Dec 2099 23:59:59 GMT"),
    );
    assert_eq!(retry_wait(&headers, now), Some(MAX_PROVIDER_WAIT));
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("99999999"));
    assert_eq!(retry_wait(&headers, now), Some(MAX_PROVIDER_WAIT));
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("120"));
    assert_eq!(retry_wait(&headers, now), Some(Duration::from_secs(120)));
}
