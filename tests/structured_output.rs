//! Structured output end to end: a task with an `outputSchema` against
//! OpenAI- and Anthropic-shaped servers on 127.0.0.1 (the real provider
//! clients, actors and sled store). The answer validates the first time, is
//! corrected on the next step, or never validates and fails clearly; a bad
//! schema is refused when the task is queued.

mod common;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use troupe::sled::{SledConfig, SledStore};
use troupe::{AgentConfig, ApiKey, ModelConfig, ProviderConfig, ProviderKind, TroupeConfig};
use troupe::{RuntimeError, TaskError, TaskOptions, Troupe};
use troupe_actors::run_system;
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use common::scripted::{anthropic_text, openai_text};

/// Matches a request that holds `n` corrections (answers sent back).
struct Corrections(usize);

impl Match for Corrections {
    fn matches(&self, request: &Request) -> bool {
        let body = String::from_utf8_lossy(&request.body);
        body.matches("does not validate against the required JSON Schema")
            .count()
            == self.0
    }
}

/// The answer the model gives once it has been sent back `corrections` times.
async fn answer(server: &MockServer, route: &str, corrections: usize, body: Value) {
    Mock::given(method("POST"))
        .and(path(route))
        .and(Corrections(corrections))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

fn provider(kind: ProviderKind, server: &MockServer) -> ProviderConfig {
    let mut p = ProviderConfig::new("llm", kind)
        .with_base_url(server.uri())
        .with_api_key(ApiKey::new("sk-test-structured-0123456789"));
    p.retry.backoff.initial = std::time::Duration::from_millis(1);
    p.retry.backoff.max = std::time::Duration::from_millis(5);
    p
}

fn config(kind: ProviderKind, server: &MockServer, corrections: u32) -> TroupeConfig {
    let mut agent = AgentConfig {
        id: "ana".into(),
        name: "Ana".into(),
        system_prompt: "You extract facts.".into(),
        model_config: ModelConfig::new("llm", "gpt-test"),
        max_steps: 6,
        ..AgentConfig::default()
    };
    agent.limits.max_output_corrections = corrections;
    let mut config = TroupeConfig {
        providers: vec![provider(kind, server)],
        agents: vec![agent],
        ..TroupeConfig::default()
    };
    config.engine.drain_timeout = "2s".into();
    config
}

/// What the tasks ask for, as a Rust type (schemars makes its schema).
#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
struct Person {
    name: String,
    age: u32,
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
        "additionalProperties": false
    })
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[test]
fn a_valid_answer_comes_back_typed_and_the_request_asks_natively() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        answer(
            &server,
            "/chat/completions",
            0,
            openai_text(r#"{"name": "Ada", "age": 36}"#),
        )
        .await;
        let troupe = Troupe::builder(config(ProviderKind::Openai, &server, 2))
            .store(SledStore::open(SledConfig::new(dir.path())).unwrap())
            .start()
            .await
            .unwrap();
        let options = TaskOptions::default().output_type::<Person>();
        let answer = troupe
            .ask("ana", "Ada Lovelace was 36.", options)
            .await
            .unwrap();
        assert_eq!(
            answer.output_as::<Person>().unwrap(),
            Person {
                name: "Ada".into(),
                age: 36
            }
        );
        assert_eq!(answer.output, Some(json!({"name": "Ada", "age": 36})));
        assert_eq!(answer.steps, 1);
        let sent = bodies(&server).await;
        assert_eq!(sent.len(), 1);
        // OpenAI's native mode, strict since schemars' schema of a struct
        // of required fields is closed; the instruction is in the prompt too.
        let format = &sent[0]["response_format"];
        assert_eq!(format["type"], "json_schema", "{format}");
        assert_eq!(format["json_schema"]["strict"], true, "{format}");
        assert_eq!(
            format["json_schema"]["schema"]["required"],
            json!(["name", "age"])
        );
        let system = sent[0]["messages"][0]["content"].as_str().unwrap();
        assert!(system.starts_with("You extract facts."), "{system}");
        assert!(
            system.contains("validates against this JSON Schema"),
            "{system}"
        );
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn an_answer_that_does_not_validate_is_corrected_on_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        answer(
            &server,
            "/chat/completions",
            0,
            openai_text(r#"{"name": "Ada", "age": "thirty-six"}"#),
        )
        .await;
        answer(
            &server,
            "/chat/completions",
            1,
            openai_text("```json\n{\"name\": \"Ada\", \"age\": 36}\n```"),
        )
        .await;
        let troupe = Troupe::builder(config(ProviderKind::Openai, &server, 2))
            .store(SledStore::open(SledConfig::new(dir.path())).unwrap())
            .start()
            .await
            .unwrap();
        let options = TaskOptions::default().output_schema(person_schema());
        let answer = troupe.ask("ana", "Ada was 36.", options).await.unwrap();
        assert_eq!(answer.output, Some(json!({"name": "Ada", "age": 36})));
        assert_eq!(answer.steps, 2);
        let sent = bodies(&server).await;
        assert_eq!(sent.len(), 2);
        // The second request holds the first answer and what was wrong with it.
        let messages = sent[1]["messages"].as_array().unwrap();
        let n = messages.len();
        assert_eq!(messages[n - 2]["role"], "assistant");
        assert_eq!(messages[n - 1]["role"], "user");
        let correction = messages[n - 1]["content"].as_str().unwrap();
        assert!(correction.contains("at /age:"), "{correction}");
        // The result keeps the answer as text and as JSON.
        let job = troupe.engine().get_job(answer.job_id).await.unwrap();
        assert_eq!(job.result.unwrap()["output"]["age"], 36);
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn an_answer_that_never_validates_fails_the_task_clearly() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        for corrections in 0..3 {
            answer(
                &server,
                "/chat/completions",
                corrections,
                openai_text("Ada Lovelace, aged 36."),
            )
            .await;
        }
        let troupe = Troupe::builder(config(ProviderKind::Openai, &server, 1))
            .store(SledStore::open(SledConfig::new(dir.path())).unwrap())
            .start()
            .await
            .unwrap();
        let options = TaskOptions::default().output_schema(person_schema());
        let err = troupe.ask("ana", "Ada was 36.", options).await.unwrap_err();
        let TaskError::Failed {
            error, attempts, ..
        } = &err
        else {
            panic!("expected a failure, got {err:?}");
        };
        assert!(error.contains("outputSchema"), "{error}");
        assert!(error.contains("maxOutputCorrections = 1"), "{error}");
        assert!(error.contains("not JSON"), "{error}");
        // A permanent failure: one attempt, the answer and one correction.
        assert_eq!(*attempts, 1);
        assert_eq!(bodies(&server).await.len(), 2);
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn anthropic_is_held_to_the_schema_by_instruction_and_check() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        answer(
            &server,
            "/messages",
            0,
            anthropic_text(r#"{"name": "Ada"}"#),
        )
        .await;
        answer(
            &server,
            "/messages",
            1,
            anthropic_text(r#"{"name": "Ada", "age": 36}"#),
        )
        .await;
        let troupe = Troupe::builder(config(ProviderKind::Anthropic, &server, 2))
            .store(SledStore::open(SledConfig::new(dir.path())).unwrap())
            .start()
            .await
            .unwrap();
        let options = TaskOptions::default().output_schema(person_schema());
        let answer = troupe.ask("ana", "Ada was 36.", options).await.unwrap();
        assert_eq!(answer.output, Some(json!({"name": "Ada", "age": 36})));
        let sent = bodies(&server).await;
        assert_eq!(sent.len(), 2);
        assert!(sent[0].get("response_format").is_none());
        let system = sent[0]["system"].to_string();
        assert!(
            system.contains("validates against this JSON Schema"),
            "{system}"
        );
        let last = sent[1]["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .to_string();
        assert!(last.contains("age"), "{last}");
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn a_bad_schema_is_refused_when_the_task_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let server = MockServer::start().await;
        let troupe = Troupe::builder(config(ProviderKind::Openai, &server, 2))
            .store(SledStore::open(SledConfig::new(dir.path())).unwrap())
            .start()
            .await
            .unwrap();
        for (schema, says) in [
            (json!("object"), "a string"),
            (json!({"type": "objekt"}), "not a valid JSON Schema"),
        ] {
            let options = TaskOptions::default().output_schema(schema);
            let err = troupe.task("ana", "x", options).await.unwrap_err();
            assert!(matches!(err, RuntimeError::OutputSchema { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("outputSchema") && text.contains(says),
                "{text}"
            );
        }
        assert!(server.received_requests().await.unwrap().is_empty());
        let page = troupe
            .engine()
            .list_jobs(&Default::default())
            .await
            .unwrap();
        assert!(page.jobs.is_empty(), "{page:?}");
        troupe.shutdown().await.unwrap();
    });
}
