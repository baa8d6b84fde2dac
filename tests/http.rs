//! The control API against a real server on 127.0.0.1:0, a real sled store
//! in a temporary directory and agents on the offline model: every endpoint
//! with good and bad requests, the token, and metrics changing as jobs run.
//! Nothing sleeps to wait: conditions are polled until a deadline.

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use troupe::http::{ControlServer, HttpConfig, HttpError};
use troupe::{ApiKey, ModelRef, ProviderConfig, ProviderKind};
use troupe_actors::run_system;

use common::daemon::{config, error_of, eventually, start, start_with};

/// Sends `body` as a chunked request (no length declared up front) over a
/// raw connection, with `token`; returns what the server answered. Writing
/// stops if the server answers early and closes.
async fn chunked_post(base: &str, token: &str, path: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if conn.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The value of the sample `series` (name and labels exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn health_readiness_and_unknown_routes() {
    run_system(async {
        let d = start(None).await;
        let (s, body) = d.get("/healthz").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        let (s, body) = d.get("/readyz").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["ready"], true);
        assert_eq!(body["store"]["ok"], true);
        let names: Vec<_> = body["supervisors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["troupe", "engine", "tools"]);
        let (s, body) = d.get("/nowhere").await;
        assert!(error_of(s, &body, StatusCode::NOT_FOUND).contains("/nowhere"));
        let (s, body) = d.get("/v1/nowhere").await;
        error_of(s, &body, StatusCode::NOT_FOUND);
        let resp = d
            .req(reqwest::Method::DELETE, "/v1/jobs")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(error_of(status, &body, StatusCode::METHOD_NOT_ALLOWED).contains("DELETE"));
        d.stop().await;
    });
}

#[test]
fn jobs_enqueue_list_show_cancel() {
    run_system(async {
        let d = start(None).await;
        let (s, job) = d
            .post(
                "/v1/jobs",
                json!({"workerName": "echo", "args": {"x": 1}, "ctx": {"userId": "u1", "source": "test"},
                       "priority": 3, "maxAttempts": 2, "timeoutMs": 5000}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{job}");
        assert_eq!(job["workerName"], "echo");
        assert_eq!(job["priority"], 3);
        assert_eq!(job["maxAttempts"], 2);
        assert_eq!(job["ctx"]["userId"], "u1");
        let id = job["id"].as_str().unwrap().to_string();
        let done = eventually("the echo job to complete", || async {
            let (_, j) = d.get(&format!("/v1/jobs/{id}")).await;
            (j["status"] == "completed").then_some(j)
        })
        .await;
        assert_eq!(done["result"], json!({"x": 1}));

        // A second job, then pages of one.
        let (s, _) = d.post("/v1/jobs", json!({"workerName": "echo"})).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, page) = d.get("/v1/jobs?worker=echo&limit=1").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
        let cursor = page["nextCursor"].as_str().unwrap().to_string();
        let (_, next) = d
            .get(&format!("/v1/jobs?worker=echo&limit=1&cursor={cursor}"))
            .await;
        assert_eq!(next["jobs"][0]["id"], json!(id));
        let (_, completed) = d.get("/v1/jobs?status=completed").await;
        assert!(completed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == json!(id)));

        // A delayed job with a unique key: the repeat returns it (200).
        let delayed = json!({"workerName": "echo", "delayMs": 3_600_000, "uniqueKey": "k1"});
        let (s, first) = d.post("/v1/jobs", delayed.clone()).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, again) = d.post("/v1/jobs", delayed).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(first["id"], again["id"]);
        let at = json!({"workerName": "echo", "runAt": "2999-01-01T00:00:00Z"});
        let (s, later) = d.post("/v1/jobs", at).await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(later["runAt"], "2999-01-01T00:00:00Z");

        let qid = first["id"].as_str().unwrap();
        let (s, c) = d.post(&format!("/v1/jobs/{qid}/cancel"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{c}");
        assert_eq!(c["outcome"], "cancelled");
        assert_eq!(c["job"]["status"], "cancelled");
        let (_, c) = d.post(&format!("/v1/jobs/{qid}/cancel"), json!({})).await;
        assert_eq!(c["outcome"], "alreadyEnded");
        d.stop().await;
    });
}

#[test]
fn jobs_bad_requests_name_the_problem() {
    run_system(async {
        let d = start(None).await;
        let (s, b) = d.post_raw("/v1/jobs", "{not json").await;
        assert!(error_of(s, &b, StatusCode::BAD_REQUEST).contains("not valid JSON"));
        let (s, b) = d.post_raw("/v1/jobs", "[1,2]").await;
        assert!(error_of(s, &b, StatusCode::BAD_REQUEST).contains("JSON object"));
        let (s, b) = d.post("/v1/jobs", json!({"args": {}})).await;
        assert!(error_of(s, &b, StatusCode::UNPROCESSABLE_ENTITY).contains("`workerName`"));
        let (s, b) = d.post("/v1/jobs", json!({"workerName": "nobody"})).await;
        let m = error_of(s, &b, StatusCode::NOT_FOUND);
        assert!(m.contains("`nobody`") && m.contains("echo"), "{m}");
        for (field, body) in [
            (
                "maxAttempts",
                json!({"workerName": "echo", "maxAttempts": 0}),
            ),
            (
                "maxAttempts",
                json!({"workerName": "echo", "maxAttempts": -1}),
            ),
            (
                "priority",
                json!({"workerName": "echo", "priority": "high"}),
            ),
            ("delayMs", json!({"workerName": "echo", "delayMs": 1.5})),
            ("timeoutMs", json!({"workerName": "echo", "timeoutMs": 0})),
            ("runAt", json!({"workerName": "echo", "runAt": "tomorrow"})),
            ("uniqueKey", json!({"workerName": "echo", "uniqueKey": ""})),
            ("ctx", json!({"workerName": "echo", "ctx": [1]})),
            ("ctx", json!({"workerName": "echo", "ctx": {"userId": 5}})),
            ("colour", json!({"workerName": "echo", "colour": "red"})),
            (
                "runAt",
                json!({"workerName": "echo", "delayMs": 5, "runAt": "2999-01-01T00:00:00Z"}),
            ),
        ] {
            let (s, b) = d.post("/v1/jobs", body.clone()).await;
            let m = error_of(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(m.contains(&format!("`{field}`")), "{body} → {m}");
        }
        // Oversized: declared length and a streamed (chunked) body.
        let big = json!({"workerName": "echo", "args": {"blob": "x".repeat(2 << 20)}}).to_string();
        let (s, b) = d.post_raw("/v1/jobs", big.clone()).await;
        assert!(error_of(s, &b, StatusCode::PAYLOAD_TOO_LARGE).contains("1048576"));
        let head = chunked_post(
            &d.base,
            d.token.as_deref().unwrap(),
            "/v1/jobs",
            big.as_bytes(),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        assert!(head.contains("\"status\":413"), "{head}");

        let (s, b) = d.get("/v1/jobs/not-a-uuid").await;
        assert!(error_of(s, &b, StatusCode::BAD_REQUEST).contains("not-a-uuid"));
        let unknown = "0190f0c4-0000-7000-8000-000000000000";
        let (s, b) = d.get(&format!("/v1/jobs/{unknown}")).await;
        assert!(error_of(s, &b, StatusCode::NOT_FOUND).contains(unknown));
        let (s, b) = d
            .post(&format!("/v1/jobs/{unknown}/cancel"), json!({}))
            .await;
        error_of(s, &b, StatusCode::NOT_FOUND);
        for (param, path) in [
            ("status", "/v1/jobs?status=sleeping"),
            ("limit", "/v1/jobs?limit=0"),
            ("limit", "/v1/jobs?limit=lots"),
            ("cursor", "/v1/jobs?cursor=zzz"),
            ("colour", "/v1/jobs?colour=red"),
        ] {
            let (s, b) = d.get(path).await;
            let m = error_of(s, &b, StatusCode::BAD_REQUEST);
            assert!(m.contains(&format!("`{param}`")), "{path} → {m}");
        }
        d.stop().await;
    });
}

#[test]
fn workers_agents_pause_and_resume() {
    run_system(async {
        let d = start(None).await;
        let (s, w) = d.get("/v1/workers").await;
        assert_eq!(s, StatusCode::OK);
        let names: Vec<_> = w["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect();
        for n in ["echo", "sleep", "sarah", "memory_compaction_worker"] {
            assert!(names.iter().any(|x| x == n), "{names:?}");
        }
        let (s, a) = d.get("/v1/agents").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(a["agents"][0]["id"], "sarah");
        assert_eq!(a["agents"][0]["provider"], "offline");
        assert_eq!(a["agents"][0]["paused"], false);

        // Pause one worker: its new job stays queued until resumed.
        let (s, p) = d.post("/v1/pause", json!({"worker": "echo"})).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(p["paused"]["workers"], json!(["echo"]));
        let (_, job) = d.post("/v1/jobs", json!({"workerName": "echo"})).await;
        let id = job["id"].as_str().unwrap().to_string();
        let (_, w) = d.get("/v1/workers").await;
        let echo = w["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "echo")
            .unwrap()
            .clone();
        assert_eq!(echo["paused"], true);
        let (_, j) = d.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(j["status"], "queued");
        let (s, p) = d.post("/v1/resume", json!({"worker": "echo"})).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(p["paused"]["workers"], json!([]));
        eventually("the resumed job to complete", || async {
            let (_, j) = d.get(&format!("/v1/jobs/{id}")).await;
            (j["status"] == "completed").then_some(())
        })
        .await;

        // An agent, everything, and the errors.
        let (_, p) = d.post("/v1/pause", json!({"agent": "sarah"})).await;
        assert_eq!(p["paused"]["workers"], json!(["sarah"]));
        let (_, a) = d.get("/v1/agents").await;
        assert_eq!(a["agents"][0]["paused"], true);
        let (_, p) = d.post("/v1/resume", json!({"agent": "sarah"})).await;
        assert_eq!(p["paused"]["workers"], json!([]));
        let (_, p) = d.post_raw("/v1/pause", "").await;
        assert_eq!(p["paused"]["all"], true);
        let (_, p) = d.post("/v1/resume", json!({})).await;
        assert_eq!(p["paused"]["all"], false);
        let (s, b) = d.post("/v1/pause", json!({"worker": "nobody"})).await;
        assert!(error_of(s, &b, StatusCode::NOT_FOUND).contains("`nobody`"));
        let (s, b) = d.post("/v1/resume", json!({"agent": "nobody"})).await;
        assert!(error_of(s, &b, StatusCode::NOT_FOUND).contains("`nobody`"));
        let (s, b) = d
            .post("/v1/pause", json!({"worker": "echo", "agent": "sarah"}))
            .await;
        error_of(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, b) = d.post("/v1/pause", json!({"worker": 7})).await;
        assert!(error_of(s, &b, StatusCode::UNPROCESSABLE_ENTITY).contains("`worker`"));
        let (s, b) = d.post_raw("/v1/pause", "{").await;
        error_of(s, &b, StatusCode::BAD_REQUEST);
        d.stop().await;
    });
}

#[test]
fn agent_tasks_memories_and_conversations() {
    run_system(async {
        let d = start(None).await;
        let (s, result) = d
            .post(
                "/v1/agents/sarah/tasks",
                json!({"prompt": "Hello Sarah", "conversationId": "c-1", "userId": "ann", "wait": true}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{result}");
        assert_eq!(result["success"], true, "{result}");
        assert!(result["response"].is_string(), "{result}");

        let (s, job) = d
            .post(
                "/v1/agents/sarah/tasks",
                json!({"prompt": "Again", "conversationId": "c-1"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{job}");
        assert_eq!(job["workerName"], "sarah");
        assert_eq!(job["ctx"]["source"], "api");

        let (s, m) = d.get("/v1/conversations/c-1/messages").await;
        assert_eq!(s, StatusCode::OK, "{m}");
        let messages = m["messages"].as_array().unwrap();
        assert!(messages.len() >= 2, "{m}");
        assert_eq!(messages[0]["content"], "Hello Sarah");
        let (s, b) = d.get("/v1/conversations/none-such/messages").await;
        assert!(error_of(s, &b, StatusCode::NOT_FOUND).contains("none-such"));

        let (s, mem) = d
            .get("/v1/agents/sarah/memories?userId=ann&archived=true")
            .await;
        assert_eq!(s, StatusCode::OK, "{mem}");
        assert!(mem["memories"].is_array());
        let (s, mem) = d.get("/v1/agents/sarah/memories").await;
        assert_eq!(s, StatusCode::OK, "{mem}");
        let (s, b) = d.get("/v1/agents/nobody/memories").await;
        assert!(error_of(s, &b, StatusCode::NOT_FOUND).contains("`nobody`"));
        let (s, b) = d.get("/v1/agents/sarah/memories?archived=maybe").await;
        assert!(error_of(s, &b, StatusCode::BAD_REQUEST).contains("`archived`"));

        let (s, b) = d
            .post("/v1/agents/nobody/tasks", json!({"prompt": "x"}))
            .await;
        assert!(error_of(s, &b, StatusCode::NOT_FOUND).contains("`nobody`"));
        let (s, b) = d.post("/v1/agents/sarah/tasks", json!({})).await;
        assert!(error_of(s, &b, StatusCode::UNPROCESSABLE_ENTITY).contains("`prompt`"));
        let (s, b) = d
            .post(
                "/v1/agents/sarah/tasks",
                json!({"prompt": "x", "wait": "yes"}),
            )
            .await;
        assert!(error_of(s, &b, StatusCode::UNPROCESSABLE_ENTITY).contains("`wait`"));
        let (s, b) = d
            .post(
                "/v1/agents/sarah/tasks",
                json!({"prompt": "x", "userId": ""}),
            )
            .await;
        assert!(error_of(s, &b, StatusCode::UNPROCESSABLE_ENTITY).contains("`userId`"));
        let (s, b) = d
            .post(
                "/v1/agents/sarah/tasks",
                json!({"prompt": "x", "outputSchema": {"type": "objekt"}}),
            )
            .await;
        let err = error_of(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.contains("`outputSchema`") && err.contains("not a valid JSON Schema"),
            "{err}"
        );
        // A task with an output schema answers its JSON in `output`.
        let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
        let (s, result) = d
            .post(
                "/v1/agents/sarah/tasks",
                json!({"prompt": "Check the build", "outputSchema": schema, "wait": true}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{result}");
        assert_eq!(result["output"], json!({"ok": true}), "{result}");
        let (s, b) = d.post_raw("/v1/agents/sarah/tasks", "prompt=hi").await;
        error_of(s, &b, StatusCode::BAD_REQUEST);
        d.stop().await;
    });
}

#[test]
fn a_token_guards_v1_and_metrics() {
    run_system(async {
        let mut d = start(Some("s3cret-token")).await;
        let (s, _) = d.get("/v1/workers").await;
        assert_eq!(s, StatusCode::OK);
        let good = d.token.take();
        let (s, b) = d.get("/v1/workers").await;
        error_of(s, &b, StatusCode::UNAUTHORIZED);
        let (s, b) = d.post("/v1/jobs", json!({"workerName": "echo"})).await;
        error_of(s, &b, StatusCode::UNAUTHORIZED);
        let resp = d
            .req(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        d.token = Some("s3cret-tokeN".into());
        let (s, b) = d.get("/v1/jobs").await;
        let m = error_of(s, &b, StatusCode::UNAUTHORIZED);
        assert!(!m.contains("s3cret"), "{m}");
        // Health and readiness stay open for probes.
        let (s, _) = d.get("/healthz").await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = d.get("/readyz").await;
        assert_eq!(s, StatusCode::OK);
        d.token = good;
        let (s, _) = d.post("/v1/jobs", json!({"workerName": "echo"})).await;
        assert_eq!(s, StatusCode::CREATED);

        // Beyond loopback with no names to answer to: refused, naming the
        // address.
        let err = ControlServer::start(
            d.troupe.clone(),
            HttpConfig {
                addr: "0.0.0.0:0".into(),
                ..HttpConfig::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, HttpError::HostsRequired { .. }), "{err}");
        assert!(err.to_string().contains("0.0.0.0:0"));
        assert!(err.to_string().contains("allowedHosts"));
        let err = ControlServer::start(
            d.troupe.clone(),
            HttpConfig {
                addr: "127.0.0.1:0".into(),
                allowed_hosts: vec!["https://troupe.lan".into()],
                ..HttpConfig::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, HttpError::InvalidHost { .. }), "{err}");
        let err = ControlServer::start(
            d.troupe.clone(),
            HttpConfig {
                addr: "not an address".into(),
                ..HttpConfig::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, HttpError::InvalidAddr { .. }), "{err}");
        d.stop().await;
    });
}

#[test]
fn metrics_change_as_jobs_run() {
    run_system(async {
        let d = start(None).await;
        let before = d.metrics().await;
        assert_eq!(sample(&before, "troupe_up{version=\"0.1.0\"}"), Some(1.0));
        assert_eq!(
            sample(&before, "troupe_scrape_errors"),
            Some(0.0),
            "{before}"
        );
        let completed = "troupe_jobs{worker=\"echo\",status=\"completed\"}";
        assert_eq!(sample(&before, completed), Some(0.0));
        assert!(before.contains("# TYPE troupe_job_run_seconds histogram"));
        for series in [
            "troupe_actor_restarts_total{actor=\"engine/scheduler\"}",
            "troupe_actor_mailbox_depth{actor=\"engine/workers/worker:echo\"}",
            "troupe_actor_mailbox_capacity{actor=\"troupe/memory\"}",
            "troupe_actor_up{actor=\"tools/router\",kind=\"actor\",state=\"running\"}",
            "troupe_paused{worker=\"*\"}",
            "troupe_queue_depth_total",
        ] {
            assert!(
                sample(&before, series).is_some(),
                "{series} missing:\n{before}"
            );
        }

        for i in 0..5 {
            let (s, _) = d
                .post("/v1/jobs", json!({"workerName": "echo", "args": {"i": i}}))
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
        let (s, _) = d
            .post(
                "/v1/jobs",
                json!({"workerName": "sleep", "args": {"fail": true}, "maxAttempts": 2}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let after = eventually("metrics to show the finished jobs", || async {
            let text = d.metrics().await;
            let done = sample(&text, completed)? >= 5.0;
            let retried = sample(&text, "troupe_job_retries_total{worker=\"sleep\"}")? >= 1.0;
            (done && retried).then_some(text)
        })
        .await;
        assert!(sample(&after, "troupe_job_run_seconds_count{worker=\"echo\"}").unwrap() >= 5.0);
        assert!(
            sample(
                &after,
                "troupe_job_queue_wait_seconds_bucket{worker=\"echo\",le=\"+Inf\"}"
            )
            .unwrap()
                >= 5.0
        );
        assert!(
            sample(
                &after,
                "troupe_jobs_finished_total{worker=\"echo\",status=\"completed\"}"
            )
            .unwrap()
                >= 5.0
        );
        assert!(sample(&after, "troupe_job_attempts_total{worker=\"sleep\"}").unwrap() >= 1.0);
        assert!(
            sample(
                &after,
                "troupe_actor_messages_handled_total{actor=\"engine/workers/worker:echo\"}"
            )
            .unwrap()
                >= 5.0
        );
        // Pausing shows at once.
        d.post("/v1/pause", json!({"worker": "echo"})).await;
        let paused = d.metrics().await;
        assert_eq!(sample(&paused, "troupe_paused{worker=\"echo\"}"), Some(1.0));
        d.stop().await;
    });
}

#[test]
fn troupe_run_refuses_a_public_address_without_allowed_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::cli::command()
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["run", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no `[http] allowedHosts`"), "{err}");
}

fn mock_provider(name: &str, server: &wiremock::MockServer) -> ProviderConfig {
    let mut p =
        ProviderConfig::new(name, ProviderKind::OpenaiCompatible).with_base_url(server.uri());
    p.api_key = Some(ApiKey::new("sk-test"));
    p.retry.backoff.initial = std::time::Duration::from_millis(1);
    p.retry.backoff.max = std::time::Duration::from_millis(5);
    p
}

#[test]
fn provider_calls_errors_tokens_and_circuits_in_metrics() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    run_system(async {
        let good = MockServer::start().await;
        let bad = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 80, "completion_tokens": 12, "total_tokens": 92}
            })))
            .mount(&good)
            .await;
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
            ))
            .mount(&bad)
            .await;
        let mut config = config();
        config.providers = vec![mock_provider("bad", &bad), mock_provider("good", &good)];
        let agent = &mut config.agents[0];
        agent.tools.clear();
        agent.model_config.provider = "bad".into();
        agent.model_config.model = "gpt-test".into();
        agent.model_config.fallbacks = vec![ModelRef {
            provider: "good".into(),
            model: "gpt-test".into(),
        }];
        let d = start_with(config, None).await;

        let (s, ready) = d.get("/readyz").await;
        assert_eq!(s, StatusCode::OK, "{ready}");
        let providers: Vec<_> = ready["providers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["circuit"].clone(),
                )
            })
            .collect();
        assert_eq!(
            providers,
            [
                ("bad".to_string(), json!("closed")),
                ("good".to_string(), json!("closed"))
            ]
        );

        let (s, result) = d
            .post(
                "/v1/agents/sarah/tasks",
                json!({"prompt": "Hello", "wait": true}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{result}");
        assert_eq!(result["success"], true, "{result}");
        let text = d.metrics().await;
        let calls_ok = "troupe_provider_calls_total{provider=\"good\",outcome=\"ok\"}";
        assert_eq!(sample(&text, calls_ok), Some(1.0), "{text}");
        let auth = "troupe_provider_errors_total{provider=\"bad\",class=\"authentication\"}";
        assert_eq!(sample(&text, auth), Some(1.0), "{text}");
        let tokens = "troupe_agent_tokens_today{agent=\"sarah\",direction=\"input\"}";
        assert_eq!(sample(&text, tokens), Some(80.0), "{text}");
        let out = "troupe_provider_tokens_today{provider=\"good\",direction=\"output\"}";
        assert_eq!(sample(&text, out), Some(12.0), "{text}");
        assert!(sample(&text, "troupe_agent_cost_usd_today{agent=\"sarah\"}").is_some());
        let closed = "troupe_provider_circuit{provider=\"good\",state=\"closed\"}";
        assert_eq!(sample(&text, closed), Some(1.0));
        assert!(sample(
            &text,
            "troupe_actor_restarts_total{actor=\"troupe/providers/good\"}"
        )
        .is_some());
        d.stop().await;
    });
}

#[test]
fn the_status_screen_in_one_answer() {
    run_system(async {
        let d = start(None).await;
        let (s, _) = d.post("/v1/pause", json!({"worker": "sleep"})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = d.post("/v1/jobs", json!({"workerName": "sleep"})).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, screen) = d.get("/v1/status").await;
        assert_eq!(s, StatusCode::OK, "{screen}");
        assert_eq!(screen["daemon"], json!(d.base), "{screen}");
        assert_eq!(screen["ready"], true);
        assert_eq!(screen["queueDepth"], 1);
        assert_eq!(screen["pausedAll"], false);
        assert_eq!(screen["spendTodayUsd"], 0.0);
        assert_eq!(screen["running"], json!([]));
        let sleep = screen["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "sleep")
            .unwrap()
            .clone();
        assert_eq!(sleep["paused"], true);
        assert_eq!(sleep["queued"], 1);
        assert_eq!(sleep["category"], "diagnostic");
        assert_eq!(screen["agents"][0]["id"], "sarah");
        assert_eq!(screen["agents"][0]["queued"], 0);
        let (s, b) = d.post("/v1/status", json!({})).await;
        assert!(error_of(s, &b, StatusCode::METHOD_NOT_ALLOWED).contains("POST"));
        d.stop().await;
    });
}
