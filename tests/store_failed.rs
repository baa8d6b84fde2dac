//! A daemon whose store has failed (a write could not be made durable), in
//! process on a real sled store: writes through the control API are
//! answered 503 naming why, at once; `/readyz` fails and says it is the
//! store; reads go on. The failure is set with `SledStore::mark_failed`,
//! the path a failed flush takes (`tests/disk_full.rs` fills a real disk).

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use troupe::http::{ControlServer, HttpConfig, HttpToken};
use troupe::sled::{SledConfig, SledStore};
use troupe::Troupe;
use troupe_actors::run_system;

use common::daemon::{config, error_of};

/// A client of the control API at `base`.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
}

const REASON: &str = "sled flush: No space left on device (os error 28)";
const TOKEN: &str = "store-failed-test-token";

#[test]
fn a_failed_store_answers_writes_503_and_fails_readiness_while_reads_go_on() {
    run_system(async {
        let dir = tempfile::tempdir().unwrap();
        let sled = SledStore::open(SledConfig::new(dir.path().join("data"))).unwrap();
        let troupe = Troupe::builder(config())
            .store(sled.clone())
            .start()
            .await
            .unwrap();
        let server = ControlServer::start(
            troupe.clone(),
            HttpConfig {
                addr: "127.0.0.1:0".into(),
                token: HttpToken::new(TOKEN).unwrap(),
                ..HttpConfig::default()
            },
        )
        .unwrap();
        let d = Api {
            base: format!("http://{}", server.local_addr()),
            client: reqwest::Client::new(),
        };
        let (s, before) = d
            .post("/v1/jobs", json!({"workerName": "echo", "args": {}}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{before}");
        let (s, ready) = d.get("/readyz").await;
        assert_eq!(s, StatusCode::OK, "{ready}");

        sled.mark_failed(REASON);
        let (s, body) = d
            .post("/v1/jobs", json!({"workerName": "echo", "args": {}}))
            .await;
        let message = error_of(s, &body, StatusCode::SERVICE_UNAVAILABLE);
        assert!(message.contains(REASON), "the reason is named: {message}");
        let (s, body) = d
            .post("/v1/agents/sarah/tasks", json!({"prompt": "hello"}))
            .await;
        let message = error_of(s, &body, StatusCode::SERVICE_UNAVAILABLE);
        assert!(message.contains(REASON), "{message}");

        let (s, ready) = d.get("/readyz").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
        assert_eq!(ready["ready"], false);
        assert_eq!(ready["store"]["ok"], false);
        let error = ready["store"]["error"].as_str().unwrap_or_default();
        assert!(error.contains(REASON), "{ready}");

        let (s, job) = d
            .get(&format!("/v1/jobs/{}", before["id"].as_str().unwrap()))
            .await;
        assert_eq!(s, StatusCode::OK, "reads go on: {job}");
        let (s, jobs) = d.get("/v1/jobs").await;
        assert_eq!(s, StatusCode::OK, "{jobs}");
        server.stop().await;
        // The drain meets the failed store; it still ends.
        let _ = troupe.shutdown().await;
    });
}
