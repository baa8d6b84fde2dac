//! The native JSON mode each provider is asked for when a request carries
//! an output schema, asserted on the body a 127.0.0.1 server received.

use std::sync::Arc;

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::provider::retry::RetryPolicy;
use crate::provider::{ApiKey, GenerateRequest, Message, Provider, ProviderConfig, ProviderKind};
use crate::test_support::fixture;

/// The body `kind`'s provider sends for a request asking for `schema`.
async fn body_for(kind: ProviderKind, schema: Value) -> Value {
    let server = MockServer::start().await;
    let reply = if kind == ProviderKind::Anthropic {
        fixture("anthropic-message-text-end-turn.json")
    } else {
        fixture("openai-chat-text-usage.json")
    };
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(reply))
        .mount(&server)
        .await;
    let mut cfg = ProviderConfig::new("p", kind)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new("sk-test-structured-0123456789"));
    cfg.retry = RetryPolicy::no_retries();
    let provider = Provider::new(cfg).unwrap();
    let request = GenerateRequest {
        model: "m".into(),
        messages: vec![Message::user("Ada was 36.")],
        output_schema: Some(Arc::new(schema)),
        ..Default::default()
    };
    provider.generate(request).await.unwrap();
    let received = server.received_requests().await.unwrap();
    serde_json::from_slice(&received[0].body).unwrap()
}

fn closed() -> Value {
    json!({
        "title": "Person record",
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {
            "type": "object", "properties": {"t": {"type": "string"}},
            "required": ["t"], "additionalProperties": false}}},
        "required": ["name", "tags"],
        "additionalProperties": false
    })
}

fn open() -> Value {
    json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
           "required": ["name"]})
}

#[tokio::test]
async fn openai_and_mistral_get_json_schema_strict_when_the_schema_allows() {
    for kind in [ProviderKind::Openai, ProviderKind::Mistral] {
        let body = body_for(kind, closed()).await;
        let format = &body["response_format"];
        assert_eq!(format["type"], "json_schema", "{kind:?}: {body}");
        assert_eq!(format["json_schema"]["name"], "Person_record");
        assert_eq!(format["json_schema"]["strict"], true);
        assert_eq!(format["json_schema"]["schema"], closed());
        // An open object (or an optional property) is sent non-strict, not refused.
        let body = body_for(kind, open()).await;
        assert_eq!(
            body["response_format"]["json_schema"]["strict"], false,
            "{kind:?}"
        );
        assert_eq!(body["response_format"]["json_schema"]["name"], "output");
    }
}

#[tokio::test]
async fn deepseek_gets_json_object_mode() {
    let body = body_for(ProviderKind::Deepseek, closed()).await;
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
}

#[tokio::test]
async fn anthropic_and_unknown_compatible_servers_get_no_native_mode() {
    for kind in [ProviderKind::Anthropic, ProviderKind::OpenaiCompatible] {
        let body = body_for(kind, closed()).await;
        assert!(body.get("response_format").is_none(), "{kind:?}: {body}");
        assert!(body.get("output_format").is_none(), "{kind:?}: {body}");
    }
}

#[tokio::test]
async fn a_schema_whose_answer_is_not_an_object_gets_no_native_mode() {
    // Both native modes produce objects; an array answer is held to its
    // schema by the instruction and the task's check alone.
    let schema = json!({"type": "array", "items": {"type": "string"}});
    for kind in [ProviderKind::Openai, ProviderKind::Deepseek] {
        let body = body_for(kind, schema.clone()).await;
        assert!(body.get("response_format").is_none(), "{kind:?}: {body}");
    }
}
