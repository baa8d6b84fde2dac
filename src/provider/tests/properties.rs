//! Whatever a server sends with a 2xx, decoding never panics: arbitrary
//! bytes and every truncation of the real fixtures give a malformed-response
//! error naming provider and model. Error classification of arbitrary
//! bodies and statuses never panics either.

use std::time::SystemTime;

use crate::provider::classify::{classify, CallContext};
use crate::provider::{anthropic, openai, ErrorKind};
use proptest::prelude::*;
use reqwest::header::HeaderMap;

use crate::test_support::FIXTURES;

fn success_fixtures() -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(FIXTURES).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".json") && !name.contains("-error-") {
            let body = std::fs::read(format!("{FIXTURES}/{name}")).unwrap();
            let trimmed = String::from_utf8(body)
                .unwrap()
                .trim_end()
                .as_bytes()
                .to_vec();
            out.push((name.starts_with("anthropic"), trimmed));
        }
    }
    assert_eq!(out.len(), 7);
    out
}

fn decode_both(
    body: &[u8],
) -> [Result<crate::provider::GenerateResponse, crate::provider::ProviderError>; 2] {
    [
        openai::decode(body, "p", "m"),
        anthropic::decode(body, "p", "m"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_malformed(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        for r in decode_both(&body) {
            let e = r.unwrap_err();
            prop_assert_eq!(e.kind, ErrorKind::MalformedResponse);
            prop_assert_eq!(e.provider.as_str(), "p");
            prop_assert_eq!(e.model.as_str(), "m");
        }
    }

    #[test]
    fn arbitrary_json_values_never_panic(body in arb_json()) {
        // Valid JSON of the wrong shape: an error, or (rarely) a valid decode.
        for r in decode_both(body.to_string().as_bytes()) {
            if let Err(e) = r {
                prop_assert_eq!(e.kind, ErrorKind::MalformedResponse);
            }
        }
    }

    #[test]
    fn truncated_fixtures_are_malformed(idx in 0usize..7, cut in 0.0f64..1.0) {
        let fixtures = success_fixtures();
        let (is_anthropic, body) = &fixtures[idx];
        let len = ((body.len() as f64) * cut) as usize; // strictly shorter
        let prefix = &body[..len.min(body.len() - 1)];
        let r = if *is_anthropic {
            anthropic::decode(prefix, "p", "m")
        } else {
            openai::decode(prefix, "p", "m")
        };
        prop_assert_eq!(r.unwrap_err().kind, ErrorKind::MalformedResponse);
    }

    #[test]
    fn classification_never_panics(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let ctx = CallContext { provider: "p", model: "m", key: None };
        let e = classify(status, &HeaderMap::new(), &body, ctx, SystemTime::now());
        prop_assert_eq!(e.status, Some(status));
        prop_assert!(!e.message.is_empty());
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        let keys = prop_oneof![
            Just("choices".to_string()),
            Just("message".to_string()),
            Just("content".to_string()),
            Just("tool_calls".to_string()),
            Just("function".to_string()),
            Just("arguments".to_string()),
            Just("usage".to_string()),
            Just("type".to_string()),
            Just("text".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn each_full_fixture_still_decodes() {
    for (is_anthropic, body) in success_fixtures() {
        let r = if is_anthropic {
            anthropic::decode(&body, "p", "m")
        } else {
            openai::decode(&body, "p", "m")
        };
        assert!(r.is_ok());
    }
}

#[test]
fn invalid_tool_arguments_pass_through_for_the_agent() {
    let body = br#"{"model":"m","choices":[{"message":{"role":"assistant","content":null,
        "tool_calls":[{"id":"call_1","type":"function","function":{"name":"search","arguments":"{\"q\": \"unterminated"}},
                      {"id":"call_2","type":"function","function":{"name":"noargs","arguments":""}}]},
        "finish_reason":"tool_calls"}]}"#;
    let r = openai::decode(body, "p", "m").unwrap();
    let bad = &r.tool_calls[0];
    assert_eq!(bad.name, "search");
    assert_eq!(bad.arguments, serde_json::Value::Null);
    let err = bad.arguments_error.as_ref().unwrap();
    assert_eq!(err.raw, "{\"q\": \"unterminated");
    assert!(err.message.contains("EOF"), "{}", err.message);
    assert_eq!(r.tool_calls[1].arguments, serde_json::json!({}));
    assert!(r.tool_calls[1].arguments_error.is_none());
    // Re-encoded for OpenAI the raw text goes back verbatim; for Anthropic as {}.
    let req = crate::provider::GenerateRequest {
        model: "m".into(),
        messages: vec![r.to_message()],
        ..Default::default()
    };
    let o = openai::encode(&req, crate::provider::ProviderKind::Openai);
    assert_eq!(
        o["messages"][0]["tool_calls"][0]["function"]["arguments"],
        "{\"q\": \"unterminated"
    );
    let a = anthropic::encode(&req);
    assert_eq!(
        a["messages"][0]["content"][0]["input"],
        serde_json::json!({})
    );
}

#[test]
fn mistral_ids_are_deterministic_nine_alphanumerics() {
    for id in [
        "call_abc123",
        "toolu_01PQjhxo3eirCdKNvCJrKc8f",
        "",
        "x",
        "call_00_9V0vrf86Pc9aelHCJMZqnJBo",
    ] {
        let a = openai::mistral_call_id(id);
        assert_eq!(a, openai::mistral_call_id(id));
        assert_eq!(a.len(), 9);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
    assert_ne!(
        openai::mistral_call_id("call_1"),
        openai::mistral_call_id("call_2")
    );
    assert_eq!(openai::mistral_call_id("gSIMJiOkT"), "gSIMJiOkT");
}

#[test]
fn openai_uses_max_completion_tokens_and_others_max_tokens() {
    use crate::provider::model::ToolChoice;
    use crate::provider::{GenerateRequest, ProviderKind, ToolDefinition};
    let req = GenerateRequest {
        model: "m".into(),
        max_tokens: Some(50),
        temperature: Some(1.5),
        tools: vec![ToolDefinition {
            name: "t".into(),
            description: "d".into(),
            parameters: serde_json::json!({"type":"object"}),
        }]
        .into(),
        tool_choice: ToolChoice::Required,
        ..Default::default()
    };
    let o = openai::encode(&req, ProviderKind::Openai);
    assert_eq!(o["max_completion_tokens"], 50);
    assert!(o.get("max_tokens").is_none());
    assert_eq!(o["tool_choice"], "required");
    let d = openai::encode(&req, ProviderKind::Deepseek);
    assert_eq!(d["max_tokens"], 50);
    let m = openai::encode(&req, ProviderKind::Mistral);
    assert_eq!(m["tool_choice"], "any");
    let a = anthropic::encode(&req);
    assert_eq!(a["tool_choice"], serde_json::json!({"type": "any"}));
    assert_eq!(a["temperature"], 1.0);
    let no_tools = GenerateRequest {
        model: "m".into(),
        ..Default::default()
    };
    assert!(openai::encode(&no_tools, ProviderKind::Openai)
        .get("tool_choice")
        .is_none());
    assert_eq!(
        anthropic::encode(&no_tools)["max_tokens"],
        anthropic::DEFAULT_MAX_TOKENS
    );
}

#[test]
fn content_as_parts_and_missing_ids_decode() {
    // Mistral (magistral) and some proxies send content as typed parts.
    let body = br#"{"model":"magistral-small","choices":[{"message":{"role":"assistant",
        "content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]},
                   {"type":"text","text":"Hello "},{"type":"text","text":"world"}],
        "tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},
        "finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
    let r = openai::decode(body, "p", "m").unwrap();
    assert_eq!(r.text, "Hello world");
    assert_eq!(r.tool_calls[0].id, "call_0");
    assert_eq!(r.tool_calls[0].arguments, serde_json::json!({"a": 1}));
    assert_eq!(r.usage.total(), 7);
    // No choices is malformed, not a panic or an empty answer.
    let e = openai::decode(br#"{"choices":[]}"#, "p", "m").unwrap_err();
    assert_eq!(e.kind, ErrorKind::MalformedResponse);
    let e = anthropic::decode(b"  \n", "p", "m").unwrap_err();
    assert!(e.message.contains("empty"));
}

proptest! {
    #[test]
    fn header_parsing_and_limiter_never_panic(
        values in proptest::collection::vec(
            prop_oneof![
                "[ -~]{0,24}",
                "[0-9]{1,30}",
                "[0-9]{1,20}(\\.[0-9]{1,5})?(ms|s|m|h)?([0-9]{1,3}(ms|s))?",
                "-?[0-9]{1,3}(\\.[0-9])?e[0-9]{1,3}",
            ],
            8,
        ),
        actual in any::<u64>(),
    ) {
        use std::sync::Arc;
        use std::time::Duration;
        use reqwest::header::HeaderValue;
        use crate::provider::headers::{rate_limits, retry_wait};
        use crate::provider::clock::ManualClock;
        use crate::provider::ratelimit::{RateLimitConfig, RateLimiter};
        let names = [
            "retry-after-ms", "retry-after", "x-ratelimit-reset-requests",
            "x-ratelimit-remaining-requests", "x-ratelimit-limit-tokens",
            "anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-tokens-remaining",
            "x-should-retry",
        ];
        let mut h = HeaderMap::new();
        for (n, v) in names.iter().zip(&values) {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(*n, v);
            }
        }
        let now = SystemTime::now();
        let _ = retry_wait(&h, now);
        let clock = Arc::new(ManualClock::new());
        let l = RateLimiter::new(
            RateLimitConfig { requests_per_minute: Some(1), tokens_per_minute: Some(1) },
            clock,
        );
        l.observe(&rate_limits(&h, now));
        l.settle(0, actual);
        let _ = l.reserve(actual);
        let _ = l.reserve_within(1, Duration::from_secs(60));
        let _ = l.snapshot();
    }
}

/// A `modelConfig` that sets no temperature or token cap sends neither
/// (the provider's defaults apply, and the request is smaller), except the
/// cap Anthropic requires; one that sets them sends them.
#[test]
fn unset_sampling_settings_are_not_sent() {
    use crate::provider::route::ModelConfig;
    use crate::provider::ProviderKind;
    let plain = ModelConfig::new("p", "m").request(
        "s".into(),
        vec![crate::provider::Message::user("hi")],
        std::sync::Arc::new([]),
    );
    for kind in [
        ProviderKind::Openai,
        ProviderKind::Deepseek,
        ProviderKind::Mistral,
        ProviderKind::OpenaiCompatible,
    ] {
        let body = openai::encode(&plain, kind);
        for key in ["temperature", "max_tokens", "max_completion_tokens"] {
            assert!(body.get(key).is_none(), "{kind:?} sent {key}: {body}");
        }
    }
    let a = anthropic::encode(&plain);
    assert!(a.get("temperature").is_none());
    assert_eq!(a["max_tokens"], anthropic::DEFAULT_MAX_TOKENS);
    let set = ModelConfig {
        temperature: Some(0.0),
        max_tokens: Some(64),
        ..ModelConfig::new("p", "m")
    }
    .request("s".into(), Vec::new(), std::sync::Arc::new([]));
    let body = openai::encode(&set, ProviderKind::Deepseek);
    assert_eq!(
        (body["temperature"].as_f64(), body["max_tokens"].as_u64()),
        (Some(0.0), Some(64))
    );
}
