//! Talking to a running daemon over its control API.
//!
//! A daemon holds the sled store alone, so while it runs the CLI's job,
//! task, memory and pause commands go through its HTTP API instead: to the
//! `--server URL` given, or, when the data directory is held, to the address
//! the daemon wrote into `daemon.json` beside its store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::sled::{SledConfig, SledStore};
use crate::store::StoreError;

use super::{CliError, Global};

/// The file, in the data directory, where a running daemon says where its
/// control API listens. Removed when it stops; a stale one (after a kill) is
/// harmless: the store is no longer held, so it is not read.
pub const DAEMON_FILE: &str = "daemon.json";

/// Where a daemon's file for `data_dir` lives.
pub fn daemon_file(data_dir: &Path) -> PathBuf {
    data_dir.join(DAEMON_FILE)
}

/// Writes the daemon file (best effort: without it, `--server` still works).
pub fn write_daemon_file(data_dir: &Path, url: &str) {
    let body = serde_json::json!({ "url": url, "pid": std::process::id() });
    if let Err(e) = std::fs::write(daemon_file(data_dir), body.to_string()) {
        tracing::warn!(error = %e, "could not write daemon.json; use --server to reach this daemon");
    }
}

/// Removes the daemon file at shutdown.
pub fn remove_daemon_file(data_dir: &Path) {
    let _ = std::fs::remove_file(daemon_file(data_dir));
}

/// A command's way to the data: the store itself, or a daemon that holds it.
pub enum Target {
    /// The store, opened by this process.
    Local(SledStore),
    /// A running daemon's control API.
    Remote(Remote),
}

/// Opens the data directory, or finds the daemon holding it.
pub fn open_target(global: &Global, dir: &Path) -> Result<Target, CliError> {
    if let Some(url) = &global.server {
        return Ok(Target::Remote(Remote::new(url, global.token.clone())?));
    }
    match SledStore::open(SledConfig::new(dir)) {
        Ok(store) => Ok(Target::Local(store)),
        Err(locked @ StoreError::Locked { .. }) => {
            let url = std::fs::read_to_string(daemon_file(dir))
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .and_then(|v| v["url"].as_str().map(str::to_string));
            match url {
                Some(url) => Ok(Target::Remote(Remote::new(&url, global.token.clone())?)),
                None => Err(CliError::Store(locked)),
            }
        }
        Err(e) => Err(CliError::Store(e)),
    }
}

/// A client of one daemon's control API.
pub struct Remote {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// A client for the daemon at `url` (e.g. `http://127.0.0.1:7700`).
    pub fn new(url: &str, token: Option<String>) -> Result<Self, CliError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--server `{url}` must start with http:// or https://"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3600))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build an HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Remote {
            base: url.trim_end_matches('/').to_string(),
            token,
            client,
            runtime,
        })
    }

    /// The daemon's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET path` → the JSON body.
    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call(reqwest::Method::GET, path, None)
    }

    /// `POST path` with a JSON body → the JSON body.
    pub fn post(&self, path: &str, body: Value) -> Result<Value, CliError> {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    /// `GET path` → the body as text (`/metrics`).
    pub fn get_text(&self, path: &str) -> Result<String, CliError> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let mut request = self.client.get(&url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|e| self.unreachable(e))?;
            response.text().await.map_err(|e| self.unreachable(e))
        })
    }

    fn unreachable(&self, e: reqwest::Error) -> CliError {
        CliError::Usage(format!("cannot reach the daemon at {}: {e}", self.base))
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let mut request = self.client.request(method, &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.map_err(|e| self.unreachable(e))?;
            let status = response.status();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(value);
            }
            let message = value["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}"));
            Err(CliError::Usage(format!(
                "daemon at {}: {message}",
                self.base
            )))
        })
    }
}
