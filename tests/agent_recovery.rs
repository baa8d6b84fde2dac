//! A `troupe run` daemon killed with SIGKILL in the middle of an agent task
//! resumes it after a restart from its last checkpoint: the model call that
//! was already answered is not made again, the tool round that already ran
//! is not run again (one message, one follow-up task), and the task
//! completes once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use troupe::job::JobStatus;
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::ConversationStore;
use troupe::store::ListQuery;
use wiremock::matchers::method;
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

struct ToolResults(usize);

impl Match for ToolResults {
    fn matches(&self, request: &Request) -> bool {
        String::from_utf8_lossy(&request.body)
            .matches(r#""role":"tool""#)
            .count()
            == self.0
    }
}

fn tool_calls() -> Value {
    let calls = json!([
        {"id": "call_1", "type": "function", "function": {"name": "send_message", "arguments": "{\"content\":\"Deploy at 5pm\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "create_task", "arguments": "{\"agentId\":\"bob\",\"prompt\":\"Check the deploy\"}"}}
    ]);
    json!({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
    })
}

fn answer() -> Value {
    json!({
        "id": "c2", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Announced and handed to Bob."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 8, "total_tokens": 68}
    })
}

fn write_config(path: &Path, data_dir: &Path, base_url: &str) {
    let text = format!(
        r#"
[store]
dataDir = "{}"

[[providers]]
name = "llm"
type = "openai-compatible"
baseUrl = "{base_url}"

[[agents]]
id = "sarah"
name = "Sarah"
systemPrompt = "You are Sarah."
tools = ["send_message", "create_task"]
[agents.modelConfig]
provider = "llm"
model = "gpt-test"

[[agents]]
id = "bob"
name = "Bob"
systemPrompt = "You are Bob."
[agents.modelConfig]
provider = "offline"
model = "offline"
"#,
        data_dir.display()
    );
    std::fs::write(path, text).unwrap();
}

fn daemon(config: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["run", "--config"])
        .arg(config)
        .args(extra)
        .env_remove("TROUPE_DATA_DIR")
        .env("RUST_LOG", "troupe=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_task_resumes_from_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("troupe.toml");

    // First life: the model answers with two tool calls, then hangs on the
    // second call, where the process is killed.
    let first = MockServer::start().await;
    Mock::given(method("POST"))
        .and(ToolResults(0))
        .respond_with(ResponseTemplate::new(200).set_body_json(tool_calls()))
        .mount(&first)
        .await;
    Mock::given(method("POST"))
        .and(ToolResults(2))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(answer())
                .set_delay(Duration::from_secs(600)),
        )
        .mount(&first)
        .await;
    write_config(&config, &data, &first.uri());

    let out = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args([
            "task",
            "sarah",
            "Announce the deploy and hand the check to Bob",
            "--conversation",
            "ops",
            "--config",
        ])
        .arg(&config)
        .env_remove("TROUPE_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task_id: uuid::Uuid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();

    let mut child = daemon(&config, &[]);
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let requests = first.received_requests().await.unwrap();
        if requests.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the task never reached its second model call"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL, mid-call
    child.wait().unwrap();

    // Second life: a server that only ever answers; a first-step request
    // would mean the answered call was paid for again.
    let second = MockServer::start().await;
    Mock::given(method("POST"))
        .and(ToolResults(0))
        .respond_with(ResponseTemplate::new(200).set_body_json(tool_calls()))
        .expect(0)
        .named("step 1 again")
        .mount(&second)
        .await;
    Mock::given(method("POST"))
        .and(ToolResults(2))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer()))
        .expect(1)
        .mount(&second)
        .await;
    write_config(&config, &data, &second.uri());
    let mut child = daemon(&config, &["--exit-when-idle"]);
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second run did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = log.join().unwrap();
    assert!(status.success(), "{status:?}: {log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("resuming task from its checkpoint")),
        "{log:?}"
    );
    second.verify().await;
    assert_eq!(first.received_requests().await.unwrap().len(), 2);

    let store = SledStore::open(SledConfig::new(&data)).unwrap();
    let task = store.get_job(task_id).await.unwrap().unwrap();
    assert_eq!(task.status, JobStatus::Completed, "{task:?}");
    assert_eq!(task.attempt, 2, "interrupted once, completed once");
    let result = task.result.unwrap();
    assert_eq!(result["response"], "Announced and handed to Bob.");
    assert_eq!(result["toolCalls"].as_array().unwrap().len(), 2);

    let messages = ConversationStore::list_messages(&store, "ops")
        .await
        .unwrap();
    let announcements = messages
        .iter()
        .filter(|m| m.content == "Deploy at 5pm")
        .count();
    assert_eq!(announcements, 1, "send_message ran once: {messages:?}");
    let query = ListQuery {
        worker: Some("bob".into()),
        ..ListQuery::default()
    };
    let bob = JobStore::list_jobs(&store, &query).await.unwrap().jobs;
    assert_eq!(bob.len(), 1, "create_task ran once");
    assert_eq!(bob[0].status, JobStatus::Completed);
}
