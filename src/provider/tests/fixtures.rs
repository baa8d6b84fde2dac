//! Every file in `../shared/fixtures/` (real response bodies of the public
//! APIs) served from a 127.0.0.1 wiremock server with its real status code:
//! success bodies must parse into the right text, tool calls and usage, error
//! bodies into the right error class.

use std::collections::BTreeSet;

use crate::provider::retry::RetryPolicy;
use crate::provider::{
    ApiKey, ErrorKind, FinishReason, GenerateRequest, Message, Provider, ProviderConfig,
    ProviderKind,
};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::test_support::{fixture, FIXTURES};

const KEY: &str = "sk-test-fixture-key-0123456789";

fn kind_of(file: &str) -> ProviderKind {
    match file.split('-').next().unwrap() {
        "openai" => ProviderKind::Openai,
        "deepseek" => ProviderKind::Deepseek,
        "mistral" => ProviderKind::Mistral,
        "anthropic" => ProviderKind::Anthropic,
        other => panic!("unknown fixture family {other}"),
    }
}

fn path_of(kind: ProviderKind) -> &'static str {
    if kind == ProviderKind::Anthropic {
        "/messages"
    } else {
        "/chat/completions"
    }
}

fn provider(server: &MockServer, kind: ProviderKind) -> Provider {
    let mut cfg = ProviderConfig::new("fixture", kind)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new(KEY));
    cfg.retry = RetryPolicy::no_retries();
    Provider::new(cfg).unwrap()
}

fn request(model: &str) -> GenerateRequest {
    GenerateRequest {
        model: model.into(),
        system: Some("You are terse.".into()),
        messages: vec![Message::user("What's the weather in San Francisco?")],
        max_tokens: Some(100),
        ..Default::default()
    }
}

/// (file, HTTP status) of every fixture, with what it must turn into.
struct Expect {
    file: &'static str,
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    check: fn(Result<crate::provider::GenerateResponse, crate::provider::ProviderError>),
}

fn ok(
    r: Result<crate::provider::GenerateResponse, crate::provider::ProviderError>,
) -> crate::provider::GenerateResponse {
    r.unwrap()
}

fn err(
    r: Result<crate::provider::GenerateResponse, crate::provider::ProviderError>,
) -> crate::provider::ProviderError {
    r.unwrap_err()
}

const EXPECT: &[Expect] = &[
    Expect {
        file: "openai-chat-tool-calls.json",
        status: 200,
        headers: &[],
        check: |r| {
            let r = ok(r);
            assert_eq!(r.text, "");
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].id, "call_abc123");
            assert_eq!(r.tool_calls[0].name, "get_current_weather");
            assert_eq!(r.tool_calls[0].arguments, json!({"location": "Boston, MA"}));
            assert_eq!(r.finish_reason, FinishReason::ToolCalls);
            assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (82, 17));
            assert_eq!(r.model, "gpt-4o-mini");
        },
    },
    Expect {
        file: "openai-chat-text-usage.json",
        status: 200,
        headers: &[],
        check: |r| {
            let r = ok(r);
            assert!(r.text.starts_with("**Holiday Name:** Galaxy Day"));
            assert!(r.text.contains("darkness\u{2014}mirroring"));
            assert!(r.tool_calls.is_empty());
            assert_eq!(r.finish_reason, FinishReason::Stop);
            assert_eq!(
                (
                    r.usage.input_tokens,
                    r.usage.output_tokens,
                    r.usage.cached_input_tokens
                ),
                (16, 363, 0)
            );
            assert_eq!(r.model, "gpt-4.1-nano-2025-04-14");
        },
    },
    Expect {
        file: "deepseek-chat-tool-call.json",
        status: 200,
        headers: &[],
        check: |r| {
            let r = ok(r);
            assert_eq!(r.text, "");
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].id, "call_00_9V0vrf86Pc9aelHCJMZqnJBo");
            assert_eq!(r.tool_calls[0].name, "weather");
            assert_eq!(
                r.tool_calls[0].arguments,
                json!({"location": "San Francisco"})
            );
            assert_eq!(r.finish_reason, FinishReason::ToolCalls);
            assert_eq!(
                (
                    r.usage.input_tokens,
                    r.usage.output_tokens,
                    r.usage.cached_input_tokens
                ),
                (339, 92, 320)
            );
            assert_eq!(r.model, "deepseek-reasoner");
        },
    },
    Expect {
        file: "mistral-chat-tool-call.json",
        status: 200,
        headers: &[],
        check: |r| {
            let r = ok(r);
            assert_eq!(r.text, "");
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].id, "gSIMJiOkT");
            assert_eq!(r.tool_calls[0].name, "weather");
            assert_eq!(
                r.tool_calls[0].arguments,
                json!({"location": "San Francisco"})
            );
            assert_eq!(r.finish_reason, FinishReason::ToolCalls);
            assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (124, 22));
        },
    },
    Expect {
        file: "anthropic-message-text-and-tool-use.json",
        status: 200,
        headers: &[],
        check: |r| {
            let r = ok(r);
            assert!(r.text.starts_with("<thinking>\nThe updateIssueList tool"));
            assert!(r
                .text
                .ends_with("Okay, I will update the current issue list:"));
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].id, "toolu_01LRmxn9vGM1d2DZSDBowdZ1");
            assert_eq!(r.tool_calls[0].name, "updateIssueList");
            assert_eq!(r.tool_calls[0].arguments, json!({}));
            assert_eq!(r.finish_reason, FinishReason::ToolCalls);
            assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (602, 93));
            assert_eq!(r.model, "claude-3-opus-20240229");
        },
    },
    Expect {
        file: "anthropic-message-tool-use.json",
        status: 200,
        headers: &[],
        check: |r| {
            let r = ok(r);
            assert_eq!(r.text, "");
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].id, "toolu_01PQjhxo3eirCdKNvCJrKc8f");
            assert_eq!(r.tool_calls[0].name, "weather");
            assert_eq!(
                r.tool_calls[0].arguments,
                json!({"location": "San Francisco"})
            );
            assert_eq!(r.finish_reason, FinishReason::ToolCalls);
            assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (843, 28));
            assert_eq!(r.model, "claude-haiku-4-5-20251001");
        },
    },
    Expect {
        file: "anthropic-message-text-end-turn.json",
        status: 200,
        headers: &[],
        check: |r| {
            let r = ok(r);
            assert_eq!(r.text, "Hello! I'm doing well, thanks for asking. How are you doing today? Is there anything I can help you with?");
            assert!(r.tool_calls.is_empty());
            assert_eq!(r.finish_reason, FinishReason::Stop);
            assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (12, 29));
        },
    },
    Expect {
        file: "openai-error-429-insufficient-quota.json",
        status: 429,
        headers: &[],
        check: |r| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::QuotaExhausted);
            assert!(!e.retryable());
            assert!(e.fails_over());
            assert_eq!(e.code.as_deref(), Some("insufficient_quota"));
        },
    },
    Expect {
        file: "openai-error-400-unsupported-parameter.json",
        status: 400,
        headers: &[],
        check: |r| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::BadRequest);
            assert!(!e.retryable());
            assert!(!e.fails_over());
            assert!(e.message.contains("max_completion_tokens"));
        },
    },
    Expect {
        file: "openai-error-401-invalid-api-key.json",
        status: 401,
        headers: &[],
        check: |r| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::Authentication);
            assert!(!e.retryable());
            assert!(e.fails_over());
        },
    },
    Expect {
        file: "openai-error-404-model-not-found.json",
        status: 404,
        headers: &[],
        check: |r| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::ModelNotFound);
            assert!(!e.retryable());
            assert!(e.fails_over());
        },
    },
    Expect {
        file: "openai-error-400-context-length-exceeded.json",
        status: 400,
        headers: &[],
        check: |r| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::ContextTooLong);
            assert!(!e.retryable());
            assert!(!e.fails_over());
        },
    },
    Expect {
        file: "anthropic-error-429-rate-limit.json",
        status: 429,
        headers: &[("retry-after", "7")],
        check: |r| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::RateLimited);
            assert!(e.retryable());
            assert!(e.fails_over());
            assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(7)));
        },
    },
    Expect {
        file: "anthropic-error-529-overloaded.json",
        status: 529,
        headers: &[
            ("x-should-retry", "true"),
            ("request-id", "req_01RCc7MbLyQNtGKzBTv8VCep"),
        ],
        check: |r| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::Overloaded);
            assert_eq!(e.should_retry, Some(true));
            assert!(e.retryable());
            assert!(e.fails_over());
            assert_eq!(e.code.as_deref(), Some("overloaded_error"));
        },
    },
    Expect {
        file: "anthropic-error-401-authentication.json",
        status: 401,
        headers: &[],
        check: |r| {
            let e = err(r);
            assert_eq!(e.kind, ErrorKind::Authentication);
            assert!(!e.retryable());
            assert!(e.fails_over());
        },
    },
];

#[test]
fn every_fixture_file_is_covered() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let covered: BTreeSet<String> = EXPECT.iter().map(|e| e.file.to_string()).collect();
    assert_eq!(on_disk, covered, "a fixture is not exercised");
}

#[tokio::test]
async fn every_fixture_through_a_loopback_server() {
    for case in EXPECT {
        let server = MockServer::start().await;
        let kind = kind_of(case.file);
        let mut tmpl =
            ResponseTemplate::new(case.status).set_body_raw(fixture(case.file), "application/json");
        for (k, v) in case.headers {
            tmpl = tmpl.insert_header(*k, *v);
        }
        let auth = if kind == ProviderKind::Anthropic {
            header("x-api-key", KEY)
        } else {
            header("authorization", format!("Bearer {KEY}").as_str())
        };
        Mock::given(method("POST"))
            .and(path(path_of(kind)))
            .and(auth)
            .respond_with(tmpl)
            .expect(1)
            .mount(&server)
            .await;
        let p = provider(&server, kind);
        let result = p.generate(request("requested-model")).await;
        if let Err(e) = &result {
            // Every error names provider and model and never the key.
            assert_eq!(e.provider, "fixture", "{}", case.file);
            assert_eq!(e.model, "requested-model", "{}", case.file);
            assert_eq!(e.status, Some(case.status), "{}", case.file);
            assert!(!e.to_string().contains(KEY));
            assert!(!format!("{e:?}").contains(KEY));
        } else if let Ok(r) = &result {
            assert_eq!(r.provider, "fixture");
        }
        eprintln!("checking {}", case.file);
        (case.check)(result);
    }
}

#[tokio::test]
async fn anthropic_sends_version_header_and_wire_shape() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/messages"))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("x-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("anthropic-message-text-end-turn.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let p = provider(&server, ProviderKind::Anthropic);
    p.generate(request("claude-sonnet-4-5")).await.unwrap();
    let sent: serde_json::Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["system"], "You are terse.");
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["messages"][0]["content"][0]["type"], "text");
}
