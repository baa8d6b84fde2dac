//! A runtime on a fresh sled store, serving the control API on
//! 127.0.0.1:0 in this process, and a client for it. Run inside
//! `troupe_actors::run_system`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use troupe::http::{ControlServer, HttpConfig, HttpToken};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::Store;
use troupe::Troupe;
use troupe::TroupeConfig;

/// How long a condition is waited for before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A runtime and its control API.
pub struct Daemon {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub client: reqwest::Client,
    /// Sent as the bearer token when set (the server's, to begin with).
    pub token: Option<String>,
    pub server: ControlServer,
    pub troupe: Troupe,
    /// The store it runs on.
    pub store: Arc<dyn Store>,
    /// The config it runs.
    pub config: TroupeConfig,
    _dir: tempfile::TempDir,
}

/// One agent, Sarah, on the offline model.
pub fn config() -> TroupeConfig {
    toml::from_str(
        r#"
[[agents]]
id = "sarah"
name = "Sarah the Frontend Developer"
systemPrompt = "You are Sarah."
tools = ["send_message", "remember", "recall"]
[agents.modelConfig]
provider = "offline"
model = "offline"
"#,
    )
    .unwrap()
}

/// [`config`] served, with `token` required (a random one when not given).
pub async fn start(token: Option<&str>) -> Daemon {
    start_with(config(), token).await
}

/// `config` served, with `token` required (a random one when not given).
pub async fn start_with(config: TroupeConfig, token: Option<&str>) -> Daemon {
    let mut http = HttpConfig {
        addr: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    };
    if let Some(token) = token {
        http.token = HttpToken::new(token).unwrap();
    }
    start_http(config, http).await
}

/// `config` served as `http` says.
pub async fn start_http(config: TroupeConfig, http: HttpConfig) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(SledConfig::new(dir.path().join("data"))).unwrap());
    let troupe = Troupe::builder(config.clone())
        .store_arc(store.clone())
        .start()
        .await;
    let troupe = troupe.unwrap();
    let token = http.token.secret().to_string();
    let server = ControlServer::start(troupe.clone(), http).unwrap();
    Daemon {
        base: format!("http://{}", server.local_addr()),
        client: reqwest::Client::new(),
        token: Some(token),
        server,
        troupe,
        store,
        config,
        _dir: dir,
    }
}

impl Daemon {
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self.req(reqwest::Method::GET, path).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let resp = self
            .req(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET /metrics`, checking its status and content type.
    pub async fn metrics(&self) -> String {
        let resp = self
            .req(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        resp.text().await.unwrap()
    }

    pub async fn stop(self) {
        self.server.stop().await;
        self.troupe.shutdown().await.unwrap();
    }
}

/// Polls `check` until it returns `Some`, failing after the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The error message of an error body, checking its shape and status.
pub fn error_of(status: StatusCode, body: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["status"], json!(expected.as_u16()), "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}
