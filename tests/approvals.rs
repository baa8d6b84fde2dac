//! Human approval of tool calls, end to end: an agent whose `send_message`
//! needs approval, its model an OpenAI-compatible server on 127.0.0.1
//! (wiremock) that asks for the call and then answers, the real tool
//! actors, the job engine on a sled store, and the control API served on
//! 127.0.0.1 (decisions go through HTTP as a person's would).
//!
//! - approve: the task parks (`waiting`, visible in status and metrics),
//!   the approval runs the call once and the task completes; a second
//!   decision is refused (409);
//! - deny: the model gets the reason as the call's error (asserted on the
//!   request the model server received), nothing is sent;
//! - deadline: `approvalTimeout` denies by itself;
//! - racing deciders: exactly one wins;
//! - cancel while waiting: the approval is cancelled, deciding it says so;
//! - a waiting task holds no worker slot (concurrency 1, another task runs);
//! - a real `troupe run` killed with SIGKILL while a task waits, restarted,
//!   then approved through the CLI: the call runs once.
//!
//! Nothing sleeps to wait: conditions are polled until a deadline.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use troupe::TroupeConfig;
use troupe_actors::run_system;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use common::daemon::{error_of, eventually, start_with, Daemon};

/// What the model says: a prompt with "quick" is answered at once; any
/// other asks for one `send_message` call, and, once the call's result is
/// in the conversation, answers.
fn respond(request: &Request) -> ResponseTemplate {
    let body = String::from_utf8_lossy(&request.body);
    let message = if body.contains(r#""role":"tool""#) {
        json!({"role": "assistant", "content": "Done."})
    } else if body.contains("quick") {
        json!({"role": "assistant", "content": "Quick answer."})
    } else {
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "send_message", "arguments": "{\"content\":\"Deploy at 5pm\"}"}}
        ]})
    };
    let finish = if message.get("tool_calls").is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

async fn model_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(respond)
        .mount(&server)
        .await;
    server
}

/// The config text: Sarah on the model at `base_url`, `send_message`
/// needing approval, one task at a time, plus `extra` keys of hers.
fn config_text(base_url: &str, extra: &str) -> String {
    format!(
        r#"
[[providers]]
name = "llm"
type = "openai-compatible"
baseUrl = "{base_url}"

[[agents]]
id = "sarah"
name = "Sarah"
systemPrompt = "You are Sarah."
tools = ["send_message"]
approval = ["send_message"]
concurrency = 1
{extra}
[agents.modelConfig]
provider = "llm"
model = "gpt-test"
"#
    )
}

fn config(base_url: &str, extra: &str) -> TroupeConfig {
    toml::from_str(&config_text(base_url, extra)).unwrap()
}

/// Gives Sarah a task in conversation `ops`; its job id.
async fn task(d: &Daemon, prompt: &str) -> String {
    let (status, job) = d
        .post(
            "/v1/agents/sarah/tasks",
            json!({"prompt": prompt, "conversationId": "ops"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job["id"].as_str().unwrap().to_string()
}

/// Waits for the pending approval of job `job`; its id.
async fn pending_approval(d: &Daemon, job: &str) -> Value {
    eventually("the task to ask for approval", || async {
        let (_, body) = d.get("/v1/approvals").await;
        body["approvals"]
            .as_array()?
            .iter()
            .find(|a| a["id"].as_str().is_some_and(|id| id.starts_with(job)))
            .cloned()
    })
    .await
}

/// Waits until job `job` has `status`; the job.
async fn job_with_status(d: &Daemon, job: &str, status: &str) -> Value {
    eventually(&format!("job {job} to be {status}"), || async {
        let (_, body) = d.get(&format!("/v1/jobs/{job}")).await;
        (body["status"] == status).then_some(body)
    })
    .await
}

/// How many messages of conversation `ops` say "Deploy at 5pm".
async fn announcements(d: &Daemon) -> usize {
    let (status, body) = d.get("/v1/conversations/ops/messages").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["content"] == "Deploy at 5pm")
        .count()
}

/// One sample's value in a metrics text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn an_approved_call_runs_once_and_the_task_completes() {
    run_system(async {
        let model = model_server().await;
        let d = start_with(config(&model.uri(), ""), None).await;
        let job = task(&d, "Announce the deploy").await;
        let approval = pending_approval(&d, &job).await;
        assert_eq!(approval["tool"], "send_message");
        assert_eq!(approval["agentId"], "sarah");
        assert_eq!(approval["arguments"], json!({"content": "Deploy at 5pm"}));
        assert_eq!(approval["state"], "pending");
        assert_eq!(approval["id"], format!("{job}.1"));
        job_with_status(&d, &job, "waiting").await;
        assert_eq!(announcements(&d).await, 0, "nothing sent before approval");

        let (_, status) = d.get("/v1/status").await;
        assert_eq!(status["waiting"], 1, "{status}");
        assert_eq!(status["pendingApprovals"], 1, "{status}");
        let metrics = d.metrics().await;
        assert_eq!(sample(&metrics, "troupe_approvals_pending"), Some(1.0));
        assert_eq!(
            sample(&metrics, r#"troupe_jobs{worker="sarah",status="waiting"}"#),
            Some(1.0)
        );

        let id = approval["id"].as_str().unwrap();
        let (code, decided) = d
            .post(
                &format!("/v1/approvals/{id}/approve"),
                json!({"note": "ok by ops"}),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{decided}");
        assert_eq!(decided["approval"]["state"], "approved");
        assert_eq!(decided["approval"]["note"], "ok by ops");

        let done = job_with_status(&d, &job, "completed").await;
        assert_eq!(done["result"]["response"], "Done.");
        let call = &done["result"]["toolCalls"][0];
        assert_eq!(call["result"]["ok"], true, "{call}");
        assert_eq!(announcements(&d).await, 1, "sent once");
        assert_eq!(done["attempt"], 2, "parked once, resumed once");

        let (code, body) = d
            .post(
                &format!("/v1/approvals/{id}/deny"),
                json!({"reason": "late"}),
            )
            .await;
        let message = error_of(code, &body, StatusCode::CONFLICT);
        assert!(message.contains("already approved"), "{message}");
        let (_, list) = d.get("/v1/approvals").await;
        assert_eq!(list["approvals"], json!([]));
        // The task's events tell the approval's story, in order.
        let events = d
            .req(reqwest::Method::GET, &format!("/v1/jobs/{job}/events"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = |what: &str| {
            events
                .find(what)
                .unwrap_or_else(|| panic!("no {what} in {events}"))
        };
        assert!(
            at("\"approvalRequested\"") < at("\"approvalDecided\""),
            "{events}"
        );
        assert!(at("\"approvalDecided\"") < at("\"completed\""), "{events}");
        assert!(
            events.contains(&format!("\"approvalId\":\"{id}\"")),
            "{events}"
        );
        assert!(events.contains("\"note\":\"ok by ops\""), "{events}");
        let metrics = d.metrics().await;
        assert_eq!(sample(&metrics, "troupe_approvals_pending"), Some(0.0));
        assert_eq!(
            sample(
                &metrics,
                r#"troupe_approval_decisions_total{decision="approved"}"#
            ),
            Some(1.0)
        );
        d.stop().await;
    });
}

#[test]
fn a_denied_call_does_not_run_and_the_model_gets_the_reason() {
    run_system(async {
        let model = model_server().await;
        let d = start_with(config(&model.uri(), ""), None).await;
        let job = task(&d, "Announce the deploy").await;
        let approval = pending_approval(&d, &job).await;
        let id = approval["id"].as_str().unwrap();
        let (code, body) = d
            .post(&format!("/v1/approvals/{id}/deny"), json!({"reason": " "}))
            .await;
        let message = error_of(code, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message.contains("reason"), "{message}");
        let (code, decided) = d
            .post(
                &format!("/v1/approvals/{id}/deny"),
                json!({"reason": "no deploys on Friday"}),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{decided}");
        assert_eq!(decided["approval"]["state"], "denied");

        let done = job_with_status(&d, &job, "completed").await;
        let call = &done["result"]["toolCalls"][0];
        assert_eq!(call["result"]["ok"], false, "{call}");
        assert_eq!(call["result"]["error"]["kind"], "not_approved", "{call}");
        assert_eq!(announcements(&d).await, 0, "nothing sent");
        let requests = model.received_requests().await.unwrap();
        let last = String::from_utf8_lossy(&requests.last().unwrap().body).to_string();
        assert!(last.contains(r#""role":"tool""#), "{last}");
        assert!(last.contains("no deploys on Friday"), "{last}");
        assert!(last.contains("not approved"), "{last}");
        d.stop().await;
    });
}

#[test]
fn a_call_past_its_deadline_is_denied_by_itself() {
    run_system(async {
        let model = model_server().await;
        let d = start_with(config(&model.uri(), r#"approvalTimeout = "1s""#), None).await;
        let job = task(&d, "Announce the deploy").await;
        let approval = pending_approval(&d, &job).await;
        assert!(approval["deadline"].is_string(), "{approval}");
        let done = job_with_status(&d, &job, "completed").await;
        let call = &done["result"]["toolCalls"][0];
        assert_eq!(call["result"]["error"]["kind"], "not_approved", "{call}");
        assert_eq!(announcements(&d).await, 0, "nothing sent");
        let last = model.received_requests().await.unwrap();
        let last = String::from_utf8_lossy(&last.last().unwrap().body).to_string();
        assert!(last.contains("approval deadline passed"), "{last}");
        let (_, stored) = d.get(&format!("/v1/jobs/{job}")).await;
        assert_eq!(stored["approvals"][0]["state"], "expired", "{stored}");
        let id = approval["id"].as_str().unwrap();
        let (code, body) = d
            .post(&format!("/v1/approvals/{id}/approve"), json!({}))
            .await;
        let message = error_of(code, &body, StatusCode::CONFLICT);
        assert!(message.contains("deadline"), "{message}");
        let metrics = d.metrics().await;
        assert_eq!(
            sample(
                &metrics,
                r#"troupe_approval_decisions_total{decision="expired"}"#
            ),
            Some(1.0)
        );
        d.stop().await;
    });
}

#[test]
fn of_two_racing_decisions_exactly_one_wins() {
    run_system(async {
        let model = model_server().await;
        let d = start_with(config(&model.uri(), ""), None).await;
        let job = task(&d, "Announce the deploy").await;
        let approval = pending_approval(&d, &job).await;
        let id = approval["id"].as_str().unwrap().to_string();
        let (approve_path, deny_path) = (
            format!("/v1/approvals/{id}/approve"),
            format!("/v1/approvals/{id}/deny"),
        );
        let approve = d.post(&approve_path, json!({}));
        let deny = d.post(&deny_path, json!({"reason": "racing"}));
        let ((a, a_body), (b, b_body)) = futures::join!(approve, deny);
        let codes = [a, b];
        assert_eq!(
            codes.iter().filter(|c| **c == StatusCode::OK).count(),
            1,
            "{a_body} / {b_body}"
        );
        assert_eq!(
            codes.iter().filter(|c| **c == StatusCode::CONFLICT).count(),
            1,
            "{a_body} / {b_body}"
        );
        let winner = if a == StatusCode::OK {
            "approved"
        } else {
            "denied"
        };
        let loser = if a == StatusCode::OK {
            &b_body
        } else {
            &a_body
        };
        let message = loser["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("already {winner}")), "{message}");
        let done = job_with_status(&d, &job, "completed").await;
        assert_eq!(done["approvals"][0]["state"], winner);
        let sent = usize::from(winner == "approved");
        assert_eq!(announcements(&d).await, sent);
        d.stop().await;
    });
}

#[test]
fn the_approval_of_a_cancelled_task_cannot_be_decided() {
    run_system(async {
        let model = model_server().await;
        let d = start_with(config(&model.uri(), ""), None).await;
        let job = task(&d, "Announce the deploy").await;
        let approval = pending_approval(&d, &job).await;
        let (code, cancel) = d.post(&format!("/v1/jobs/{job}/cancel"), json!({})).await;
        assert_eq!(code, StatusCode::OK, "{cancel}");
        assert_eq!(cancel["outcome"], "cancelled", "{cancel}");
        assert_eq!(cancel["job"]["approvals"][0]["state"], "cancelled");
        let (_, list) = d.get("/v1/approvals").await;
        assert_eq!(list["approvals"], json!([]));
        let id = approval["id"].as_str().unwrap();
        let (code, body) = d
            .post(&format!("/v1/approvals/{id}/approve"), json!({}))
            .await;
        let message = error_of(code, &body, StatusCode::CONFLICT);
        assert!(message.contains("was cancelled"), "{message}");
        let (_, stored) = d.get(&format!("/v1/jobs/{job}")).await;
        assert_eq!(stored["status"], "cancelled");
        assert_eq!(announcements(&d).await, 0);
        let (code, body) = d.post("/v1/approvals/nope/approve", json!({})).await;
        let message = error_of(code, &body, StatusCode::BAD_REQUEST);
        assert!(message.contains("invalid approval id"), "{message}");
        let unknown = format!("{}.1", uuid::Uuid::now_v7());
        let (code, body) = d
            .post(&format!("/v1/approvals/{unknown}/approve"), json!({}))
            .await;
        error_of(code, &body, StatusCode::NOT_FOUND);
        d.stop().await;
    });
}

#[test]
fn a_waiting_task_holds_no_worker_slot() {
    run_system(async {
        let model = model_server().await;
        let d = start_with(config(&model.uri(), ""), None).await;
        let waiting = task(&d, "Announce the deploy").await;
        pending_approval(&d, &waiting).await;
        // Sarah runs one task at a time: this one runs only because the
        // waiting one gave its slot back.
        let quick = task(&d, "A quick question").await;
        let done = job_with_status(&d, &quick, "completed").await;
        assert_eq!(done["result"]["response"], "Quick answer.");
        let (_, still) = d.get(&format!("/v1/jobs/{waiting}")).await;
        assert_eq!(still["status"], "waiting");
        d.stop().await;
    });
}

/// `troupe run` on `config`, its log appended to `log`.
fn daemon(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["run", "--http", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_remove("TROUPE_DATA_DIR")
        .env_remove("TROUPE_SERVER")
        .env("RUST_LOG", "troupe=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// `troupe ARGS --json --config CONFIG`: its JSON if it succeeded (a
/// daemon starting holds the store before it says where it listens).
fn try_cli(config: &Path, args: &[&str]) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .args(["--json", "--config"])
        .arg(config)
        .env_remove("TROUPE_DATA_DIR")
        .env_remove("TROUPE_SERVER")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// `troupe ARGS --json --config CONFIG`, which must succeed; its JSON.
fn cli(config: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .args(["--json", "--config"])
        .arg(config)
        .env_remove("TROUPE_DATA_DIR")
        .env_remove("TROUPE_SERVER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "troupe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until the daemon `child` serves the store in `data` (its
/// `daemon.json` names it): a command run before would open the store
/// itself, and keep the daemon from starting.
async fn serving(data: &Path, child: &Child, log: &Path) {
    let pid = child.id();
    within_a_minute("the daemon to serve", log, || {
        let said = std::fs::read_to_string(data.join("daemon.json")).ok()?;
        let said: Value = serde_json::from_str(&said).ok()?;
        (said["pid"] == pid).then_some(())
    })
    .await;
}

/// Polls `check` every 20 ms until it gives a value; fails after a
/// minute, showing the daemons' `log`.
async fn within_a_minute<T>(what: &str, log: &Path, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_task_survives_sigkill_and_runs_its_call_once_when_approved() {
    let model = model_server().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("troupe.toml");
    let log = dir.path().join("daemon.log");
    let text = format!(
        "[store]\ndataDir = \"{}\"\n{}",
        data.display(),
        config_text(&model.uri(), "")
    );
    std::fs::write(&config, text).unwrap();

    // Queued in the store before any daemon holds it.
    let queued = cli(
        &config,
        &[
            "task",
            "sarah",
            "Announce the deploy",
            "--conversation",
            "ops",
        ],
    );
    let job = queued["id"].as_str().unwrap().to_string();
    let mut first = daemon(&config, &log);
    serving(&data, &first, &log).await;
    let approval = within_a_minute("the task to park", &log, || {
        let list = try_cli(&config, &["approvals"])?;
        list["approvals"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(approval["id"], format!("{job}.1"));
    first.kill().unwrap(); // SIGKILL, while the task waits
    first.wait().unwrap();
    assert_eq!(model.received_requests().await.unwrap().len(), 1);

    // With no daemon the store is read directly: still waiting.
    let stored = cli(&config, &["job", &job]);
    assert_eq!(stored["status"], "waiting", "{stored}");
    let listed = cli(&config, &["approvals"]);
    assert_eq!(listed["approvals"][0], approval);

    let mut second = daemon(&config, &log);
    serving(&data, &second, &log).await;
    let id = approval["id"].as_str().unwrap().to_string();
    let decided = within_a_minute("the restarted daemon to take the decision", &log, || {
        let out = Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args([
                "approve",
                &id,
                "--note",
                "after the restart",
                "--json",
                "--config",
            ])
            .arg(&config)
            .env_remove("TROUPE_DATA_DIR")
            .env_remove("TROUPE_SERVER")
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).ok())
            .flatten()
    })
    .await;
    assert_eq!(decided["approval"]["state"], "approved");
    let done = within_a_minute("the task to complete", &log, || {
        let job = try_cli(&config, &["job", &job])?;
        (job["status"] == "completed").then_some(job)
    })
    .await;
    assert_eq!(done["result"]["response"], "Done.");
    let messages = cli(&config, &["conversation", "ops"]);
    let sent = messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["content"] == "Deploy at 5pm")
        .count();
    assert_eq!(sent, 1, "the call ran once: {messages}");
    // One model call before the kill, one after the approval: the answered
    // call was not made again.
    assert_eq!(model.received_requests().await.unwrap().len(), 2);
    let again = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["deny", &id, "--reason", "too late", "--config"])
        .arg(&config)
        .env_remove("TROUPE_DATA_DIR")
        .env_remove("TROUPE_SERVER")
        .output()
        .unwrap();
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already approved"), "{said}");
    common::cluster::signal(&second, libc::SIGTERM);
    second.wait().unwrap();
}
