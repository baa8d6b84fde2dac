//! Provider configuration: the `[[providers]]` table of the config file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::breaker::BreakerConfig;
use super::error::{ErrorKind, ProviderError};
use super::ratelimit::RateLimitConfig;
use super::retry::{self, RetryPolicy};
use crate::secrets::ApiKey;

/// Which wire protocol and defaults a provider uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI chat completions at api.openai.com.
    Openai,
    /// DeepSeek (OpenAI-compatible, own error codes).
    Deepseek,
    /// Mistral (OpenAI-compatible, 9-character tool-call ids, flat errors).
    Mistral,
    /// Anthropic Messages API.
    Anthropic,
    /// Any other OpenAI-compatible server (Ollama, vLLM, llama.cpp, OpenRouter); needs `baseUrl`.
    OpenaiCompatible,
}

impl ProviderKind {
    /// Base URL used when the config gives none; `None` when one is required.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Openai => Some("https://api.openai.com/v1"),
            ProviderKind::Deepseek => Some("https://api.deepseek.com"),
            ProviderKind::Mistral => Some("https://api.mistral.ai/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com/v1"),
            ProviderKind::OpenaiCompatible => None,
        }
    }

    /// Whether this provider speaks the OpenAI chat-completions protocol.
    pub fn is_openai_protocol(self) -> bool {
        !matches!(self, ProviderKind::Anthropic)
    }

    /// Whether a call without a key is a configuration error (all but
    /// `openai-compatible`, whose local servers often need none).
    pub fn needs_key(self) -> bool {
        !matches!(self, ProviderKind::OpenaiCompatible)
    }
}

/// One configured provider, as read from the config file.
///
/// The key is not read from the file itself: `apiKeyEnv` names an environment
/// variable, or the caller sets `api_key` (e.g. from the secrets store).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// Name agents use to refer to this provider.
    pub name: String,
    /// Protocol and defaults.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// API root, e.g. `https://api.openai.com/v1`; the path (`/chat/completions`,
    /// `/messages`) is appended. Optional for the known kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Environment variable holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The key itself, when supplied by code (never serialized).
    #[serde(skip)]
    pub api_key: Option<ApiKey>,
    /// Extra headers sent with every request (e.g. OpenRouter's `HTTP-Referer`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout in seconds (connect + response); default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Requests/tokens per minute to stay under; learned from headers when absent.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Circuit-breaker thresholds.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// In-line retries: the `retry` table (`maxAttempts`, `initialBackoffMs`,
    /// `maxBackoffMs`, `multiplier`, `jitter`, `maxTotalSecs`,
    /// `maxInlineWaitSecs`). Defaults: 4 attempts, 500 ms doubling to at
    /// most 20 s with ±25 % jitter, 120 s in all, waits over 60 s handed
    /// back.
    #[serde(default = "retry::default_policy", with = "retry::keys")]
    pub retry: RetryPolicy,
    /// Largest response body read, in bytes (`maxResponseBytes`; default
    /// 32 MiB): a bigger one fails the call as a malformed response
    /// instead of filling memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
}

impl std::fmt::Debug for ProviderConfig {
    /// Custom headers may carry secrets (e.g. Azure's `api-key`), so only
    /// their names are printed; the key prints as `[REDACTED]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key_env", &self.api_key_env)
            .field("api_key", &self.api_key)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_secs", &self.timeout_secs)
            .field("rate_limit", &self.rate_limit)
            .field("breaker", &self.breaker)
            .field("retry", &self.retry)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// The default `maxResponseBytes`: 32 MiB, far above any real completion,
/// far below what would hurt the process.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

impl ProviderConfig {
    /// A config with defaults for everything but name, kind and key.
    pub fn new(name: impl Into<String>, kind: ProviderKind) -> Self {
        ProviderConfig {
            name: name.into(),
            kind,
            base_url: None,
            api_key_env: None,
            api_key: None,
            headers: BTreeMap::new(),
            timeout_secs: None,
            rate_limit: RateLimitConfig::default(),
            breaker: BreakerConfig::default(),
            retry: retry::default_policy(),
            max_response_bytes: None,
        }
    }

    /// Sets the base URL (builder style, for code and tests).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the key (builder style).
    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The request timeout to use.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.unwrap_or(120))
    }

    /// The largest response body read (`maxResponseBytes`, default 32 MiB).
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
            .map_or(DEFAULT_MAX_RESPONSE_BYTES, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            })
    }

    /// The base URL to use, without a trailing slash.
    pub fn resolved_base_url(&self) -> Result<String, ProviderError> {
        let url = match (&self.base_url, self.kind.default_base_url()) {
            (Some(u), _) => u.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(self.config_error("`baseUrl` is required for type openai-compatible"))
            }
        };
        Ok(url.trim_end_matches('/').to_string())
    }

    /// The key to use: the explicit one, else the named environment variable.
    pub fn resolved_api_key(&self) -> Result<Option<ApiKey>, ProviderError> {
        if let Some(k) = &self.api_key {
            return Ok(Some(k.clone()));
        }
        if let Some(var) = &self.api_key_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(ApiKey::new(v))),
                _ => Err(self.config_error(&format!("environment variable {var} is not set"))),
            };
        }
        if self.kind.needs_key() {
            return Err(self.config_error("no API key: set `apiKeyEnv` or store a secret"));
        }
        Ok(None)
    }

    fn config_error(&self, msg: &str) -> ProviderError {
        ProviderError::new(ErrorKind::InvalidConfig, &self.name, "-", msg.to_string())
    }
}
