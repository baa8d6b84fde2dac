//! Event ids across a daemon restart: a real `troupe run` is killed with
//! SIGKILL in the middle of a task (its second model call held by the
//! model server), a follower that read the first process's events over
//! `GET /v1/jobs/{id}/events` reconnects to the restarted daemon with the
//! last id it saw (`Last-Event-ID`), and gets every event of the new
//! process (the recovered task's next attempt), in order, none it had
//! already. The model is an OpenAI-shaped server on 127.0.0.1 (wiremock).
//! Nothing sleeps to wait: conditions are polled until a deadline.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::sse::Follower;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "events-restart-test-token-0123456789abcdef";

/// The model: a `send_message` call first; once the call's result is in
/// the conversation, the answer — held for long the first time (the
/// process asking is killed meanwhile), at once after.
struct Script {
    answers: AtomicUsize,
}

impl Respond for Script {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body);
        let (message, finish, hold) = if body.contains(r#""role":"tool""#) {
            let first = self.answers.fetch_add(1, Ordering::SeqCst) == 0;
            let message = json!({"role": "assistant", "content": "Announced."});
            (message, "stop", first)
        } else {
            let message = json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "send_message", "arguments": "{\"content\":\"Deploy at 5pm\"}"}}
            ]});
            (message, "tool_calls", false)
        };
        let answer = ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }));
        if hold {
            answer.set_delay(Duration::from_secs(20))
        } else {
            answer
        }
    }
}

fn daemon(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    common::cli::command()
        .args(["run", "--http", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("TROUPE_HTTP_TOKEN", TOKEN)
        .env("RUST_LOG", "troupe=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Polls `check` every 20 ms until it gives a value; fails after a minute,
/// showing the daemons' `log`.
async fn within_a_minute<T, F, Fut>(what: &str, log: &Path, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the daemons' log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The address of daemon `child`, once it serves the store in `data`.
async fn serving(data: &Path, child: &Child, log: &Path) -> String {
    let pid = child.id();
    within_a_minute("the daemon to serve", log, || async {
        let said = std::fs::read_to_string(data.join("daemon.json")).ok()?;
        let said: Value = serde_json::from_str(&said).ok()?;
        (said["pid"] == pid).then(|| said["url"].as_str().unwrap().to_string())
    })
    .await
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_resuming_after_sigkill_and_restart_gets_every_new_event_once() {
    let model = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Script {
            answers: AtomicUsize::new(0),
        })
        .mount(&model)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("troupe.toml");
    let log = dir.path().join("daemon.log");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
dataDir = "{}"

[[providers]]
name = "llm"
type = "openai-compatible"
baseUrl = "{}"

[[agents]]
id = "sarah"
name = "Sarah"
systemPrompt = "You are Sarah."
tools = ["send_message"]
[agents.modelConfig]
provider = "llm"
model = "gpt-test"
"#,
            data.display(),
            model.uri()
        ),
    )
    .unwrap();

    let mut first = daemon(&config, &log);
    let base = serving(&data, &first, &log).await;
    let created = reqwest::Client::new()
        .post(format!("{base}/v1/agents/sarah/tasks"))
        .bearer_auth(TOKEN)
        .json(&json!({"prompt": "Announce the deploy", "conversationId": "ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let job: Value = created.json().await.unwrap();
    let job = job["id"].as_str().unwrap().to_string();

    // Followed live up to the tool's result; then the second model call,
    // held by the model server, is under way when the daemon is killed.
    let mut follower = Follower::open(&base, TOKEN, &job, None).await;
    let before = follower.until("toolResult").await;
    assert_eq!(
        types(&before),
        ["attemptStarted", "modelCall", "toolCall", "toolResult"]
    );
    assert_eq!(before[0]["attempt"], 1);
    within_a_minute("the second model call", &log, || async {
        let requests = model.received_requests().await?;
        (requests.len() >= 2).then_some(())
    })
    .await;
    let last = *seqs(&before).last().unwrap();
    first.kill().unwrap(); // SIGKILL, mid-task
    first.wait().unwrap();
    drop(follower);

    // Restarted: the task is recovered and runs its next attempt here,
    // numbered after everything the first process numbered.
    let mut second = daemon(&config, &log);
    let base = serving(&data, &second, &log).await;
    let resumed = Follower::open(&base, TOKEN, &job, Some(last))
        .await
        .rest()
        .await;
    assert_eq!(
        types(&resumed),
        ["attemptStarted", "modelCall", "text", "completed"],
        "{resumed:#?}"
    );
    assert_eq!(resumed[0]["attempt"], 2);
    assert_eq!(resumed[2]["text"], "Announced.");
    let whole: Vec<u64> = seqs(&before).into_iter().chain(seqs(&resumed)).collect();
    assert!(
        whole.windows(2).all(|w| w[0] < w[1]),
        "the ids grow across the restart, none repeated: {whole:?}"
    );
    // All of the new process's events: a follower from the start of its
    // log gets the same.
    let all_here = Follower::open(&base, TOKEN, &job, None).await.rest().await;
    assert_eq!(all_here, resumed);
    // Resumed from the middle of the new process's events: the rest, once.
    let tail = Follower::open(&base, TOKEN, &job, Some(seqs(&resumed)[1]))
        .await
        .rest()
        .await;
    assert_eq!(tail, resumed[2..]);

    common::cluster::signal(&second, libc::SIGTERM);
    second.wait().unwrap();
}
