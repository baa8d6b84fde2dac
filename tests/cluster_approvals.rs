//! Human approval on a cluster: two `troupe run` processes share one
//! PostgreSQL schema; an agent's `send_message` needs approval; its model
//! is an OpenAI-compatible server on 127.0.0.1 (wiremock).
//!
//! Tasks park on whichever node claimed them; one node is SIGKILLed while
//! they wait; every approval is then decided twice at once — through the
//! surviving node's HTTP API and through `troupe approve`/`deny` on the
//! store directly — and exactly one of each pair wins. The tasks resume on
//! any node: an approved call runs once (counted in the database), a denied
//! one never, and its model request carries the reason. Skipped, saying
//! so, without `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use troupe::job::{EnqueueOptions, Job, JobCtx};
use troupe::store::prelude::*;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use common::cluster::{count, database_url, output_within, until, Cluster, CLUSTER_DEADLINE};

/// Tasks given; the first [`APPROVED`] are approved, the rest denied.
const TASKS: usize = 6;
const APPROVED: usize = 3;
const REASON: &str = "not during the freeze";

/// The model: asks for one `send_message` call (its text names the task's
/// conversation), and answers once the call's result is in.
fn respond(request: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let text = body.to_string();
    let message = if text.contains(r#""role":"tool""#) {
        json!({"role": "assistant", "content": "Done."})
    } else {
        let conv = text
            .split("Announce ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or("?")
            .to_string();
        let arguments = json!({"content": format!("Deploy {conv}")}).to_string();
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "send_message", "arguments": arguments}}
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

fn agents_config(base_url: &str) -> String {
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
concurrency = 4
[agents.modelConfig]
provider = "llm"
model = "gpt-test"
"#
    )
}

/// Task `n`, as `troupe task sarah "Announce n" --conversation conv-n`
/// queues it.
fn task(n: usize) -> Job {
    let conv = format!("conv-{n}");
    Job::new(
        "sarah",
        json!({"prompt": format!("Announce {n}"), "conversationId": conv}),
        JobCtx {
            conversation_id: Some(conv),
            source: Some("cli".into()),
            ..JobCtx::default()
        },
        &EnqueueOptions::default(),
        Utc::now(),
    )
    .unwrap()
}

/// A node's control API: its address (from its `daemon.json`) and token.
struct Api {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn of(data: &Path) -> Api {
        let (url, token) = until("the node to serve HTTP", CLUSTER_DEADLINE, || async {
            let said =
                std::fs::read_to_string(data.join("daemon.json")).map_err(|e| e.to_string())?;
            let said: Value = serde_json::from_str(&said).map_err(|e| e.to_string())?;
            let url = said["url"].as_str().ok_or("no url")?.to_string();
            let token =
                std::fs::read_to_string(data.join("http.token")).map_err(|e| e.to_string())?;
            Ok::<_, String>((url, token.trim().to_string()))
        })
        .await;
        Api {
            url,
            token,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.bearer_auth(&self.token).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.url)).json(&body))
            .await
    }
}

/// `troupe ARGS --config CONFIG --data-dir DATA --json` on the store
/// itself (no daemon holds `data`): whether it succeeded, and what it said.
fn cli(config: &Path, data: &Path, args: &[String]) -> (bool, String) {
    let mut command = common::cli::command();
    command
        .args(args)
        .arg("--json")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data);
    let out = output_within(command, Duration::from_secs(60));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_on_a_cluster_survive_a_node_kill_and_are_decided_once() {
    let Some(url) = database_url("approvals_on_a_cluster_survive_a_node_kill_and_are_decided_once")
    else {
        return;
    };
    let model = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(respond)
        .mount(&model)
        .await;
    let store_extra = "lease = \"2s\"\nheartbeat = \"500ms\"\npoll = \"250ms\"\npoolSize = 4";
    let mut cluster = Cluster::new(&url, store_extra, &agents_config(&model.uri()));
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    let args = ["--http", "127.0.0.1:0"];
    cluster.start(2, &args);
    store
        .insert_many((0..TASKS).map(task).collect())
        .await
        .unwrap();

    // Every task parks, on whichever node claimed it: waiting, holding no
    // slot, its pending call in the job record.
    let sql_ref = &sql;
    until(
        "every task to wait for approval",
        CLUSTER_DEADLINE,
        || async move {
            let waiting = count(
                sql_ref,
                "SELECT count(*) FROM jobs WHERE status = 'waiting'",
            )
            .await;
            if waiting == TASKS as i64 {
                Ok(())
            } else {
                Err(format!("{waiting} waiting"))
            }
        },
    )
    .await;
    assert_eq!(model.received_requests().await.unwrap().len(), TASKS);

    // Node 0 dies while they wait; nothing of them is lost: node 1 lists
    // them all, from the shared store.
    cluster.kill_and_restart(0, &args);
    let node1_data: PathBuf = cluster.dir.path().join("node1");
    let node1 = Api::of(&node1_data).await;
    let (status, listed) = node1.get("/v1/approvals").await;
    assert_eq!(status, 200, "{listed}");
    let mut approvals: Vec<Value> = listed["approvals"].as_array().unwrap().clone();
    assert_eq!(approvals.len(), TASKS, "{listed}");
    // In task order: task n's call announces conv-n.
    approvals.sort_by_key(|a| a["arguments"]["content"].as_str().unwrap().to_string());
    let logs_on_failure = || cluster.logs();

    // Each decided twice at once: node 1's API and the CLI on the store.
    let cli_data = cluster.dir.path().join("cli");
    let config = cluster.config_file.clone();
    for (i, approval) in approvals.iter().enumerate() {
        let id = approval["id"].as_str().unwrap().to_string();
        let approve = i < APPROVED;
        let (path, body, args) = if approve {
            (
                format!("/v1/approvals/{id}/approve"),
                json!({"note": "api"}),
                vec![
                    "approve".to_string(),
                    id.clone(),
                    "--note".into(),
                    "cli".into(),
                ],
            )
        } else {
            (
                format!("/v1/approvals/{id}/deny"),
                json!({"reason": REASON}),
                vec![
                    "deny".to_string(),
                    id.clone(),
                    "--reason".into(),
                    REASON.into(),
                ],
            )
        };
        let config = config.clone();
        let cli_data = cli_data.clone();
        let by_cli = tokio::task::spawn_blocking(move || cli(&config, &cli_data, &args));
        let (api_status, api_said) = node1.post(&path, body).await;
        let (cli_ok, cli_said) = by_cli.await.unwrap();
        let api_ok = api_status == 200;
        assert!(
            api_ok != cli_ok,
            "exactly one decision of {id} wins: api {api_status} {api_said}, cli {cli_ok} {cli_said}"
        );
        let loser = if api_ok {
            &cli_said
        } else {
            &api_said.to_string()
        };
        let word = if approve { "approved" } else { "denied" };
        assert!(
            loser.contains(&format!("already {word}")),
            "the loser of {id} is told it was already {word}: {loser}"
        );
    }

    // Every task ends, on either node, after its decision.
    until("every task to complete", CLUSTER_DEADLINE, || async move {
        let done = count(
            sql_ref,
            "SELECT count(*) FROM jobs WHERE status = 'completed'",
        )
        .await;
        if done == TASKS as i64 {
            Ok(())
        } else {
            Err(format!("{done} completed"))
        }
    })
    .await;

    // Approved: the call ran once, in its own conversation. Denied: never.
    for (i, approval) in approvals.iter().enumerate() {
        let text = approval["arguments"]["content"].as_str().unwrap();
        let conv = text.trim_start_matches("Deploy ");
        let posted = count(
            &sql,
            &format!(
                "SELECT count(*) FROM messages WHERE data->>'content' = '{text}' \
                 AND conversation_id = convert_to('conv-{conv}', 'UTF8')"
            ),
        )
        .await;
        let expected = i64::from(i < APPROVED);
        assert_eq!(posted, expected, "{text}: posted\n{}", logs_on_failure());
    }
    let posted_at_all = count(
        &sql,
        "SELECT count(*) FROM messages WHERE data->>'content' LIKE 'Deploy %'",
    )
    .await;
    assert_eq!(posted_at_all, APPROVED as i64);
    let states = count(
        &sql,
        "SELECT count(*) FROM jobs, json_array_elements(data->'approvals') a \
         WHERE a->>'state' IN ('approved', 'denied') AND a->>'decidedAt' IS NOT NULL",
    )
    .await;
    assert_eq!(states, TASKS as i64, "each approval decided once, durably");

    // One model call to ask, one after the decision: no call was asked
    // again after the node died. A denied call's result is the reason.
    let requests = model.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2 * TASKS, "{}", logs_on_failure());
    let told_reason = requests
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(REASON))
        .count();
    assert_eq!(told_reason, TASKS - APPROVED);
}
