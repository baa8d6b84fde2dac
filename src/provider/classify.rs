//! Turning a non-2xx response into a [`ProviderError`], by status and body.
//!
//! Status alone is not enough: a 429 may be a rate limit (wait) or an empty
//! account (fail over), a 400 may be an over-long context. Three body shapes
//! are understood: OpenAI/DeepSeek nested `{error:{type,code,message}}`,
//! Anthropic `{type:"error",error:{type,message}}`, Mistral flat
//! `{object:"error",message,type,code}`; plus `{error:"text"}` (Ollama) and
//! `{detail:…}` (FastAPI servers such as vLLM).

use std::time::SystemTime;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::error::{ErrorKind, ProviderError};
use super::headers;
use crate::secrets::ApiKey;

/// The fields of a provider error body that classification looks at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    /// `type` (OpenAI/Anthropic/Mistral).
    pub error_type: Option<String>,
    /// `code` (OpenAI/DeepSeek/Mistral), as text even when numeric.
    pub code: Option<String>,
    /// The message, or the raw body text when it is not JSON.
    pub message: String,
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Extracts type, code and message from any of the known error body shapes.
pub(crate) fn parse_error_body(body: &[u8]) -> ErrorBody {
    let raw = || {
        // Whole: it is cut to a readable length only after the key is
        // scrubbed from it ([`CallContext::error`]), so a key across the cut
        // cannot leave its prefix behind.
        String::from_utf8_lossy(body).trim().to_string()
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody {
            message: raw(),
            ..Default::default()
        };
    };
    let obj = match v.get("error") {
        Some(e @ Value::Object(_)) => e,
        Some(Value::String(s)) => {
            return ErrorBody {
                message: s.clone(),
                ..Default::default()
            };
        }
        _ => &v,
    };
    let message = obj
        .get("message")
        .or_else(|| obj.get("detail"))
        .and_then(text_of)
        .unwrap_or_else(raw);
    ErrorBody {
        error_type: obj.get("type").and_then(text_of),
        code: obj.get("code").and_then(text_of),
        message,
    }
}

/// Who the failed call was for; errors must name both.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallContext<'a> {
    /// Configured provider name.
    pub provider: &'a str,
    /// Model of the call.
    pub model: &'a str,
    /// The key, so it can be scrubbed from anything echoed back.
    pub key: Option<&'a ApiKey>,
}

impl CallContext<'_> {
    /// Removes the key from text that came from the network.
    pub(crate) fn scrub(&self, text: &str) -> String {
        match self.key {
            Some(k) => k.scrub(text),
            None => text.to_string(),
        }
    }

    /// An error of `kind` for this call with a scrubbed message, then cut
    /// to [`MAX_MESSAGE_CHARS`] (bodies of proxies can be whole HTML pages,
    /// and an error is stored with every attempt of a job).
    pub(crate) fn error(&self, kind: ErrorKind, message: &str) -> ProviderError {
        let message = cut(self.scrub(message), MAX_MESSAGE_CHARS);
        ProviderError::new(kind, self.provider, self.model, message)
    }
}

/// The longest provider message kept in an error, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 1000;

/// `text` cut to `max` characters, saying how much was left out.
pub(crate) fn cut(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text,
        Some((at, _)) => {
            let rest = text.len() - at;
            format!("{}… ({rest} more bytes)", &text[..at])
        }
    }
}

fn has(hay: &Option<String>, needle: &str) -> bool {
    hay.as_deref().is_some_and(|h| h == needle)
}

/// Decides the error kind from status and body fields.
pub(crate) fn kind_for(status: u16, body: &ErrorBody) -> ErrorKind {
    let t = &body.error_type;
    let c = &body.code;
    let msg = body.message.to_ascii_lowercase();
    let either = |s: &str| has(t, s) || has(c, s);

    if status == 402
        || either("insufficient_quota")
        || either("enforced_spend_limit_reached")
        || msg.contains("enforced_spend_limit_reached")
        || msg.contains("credit balance is too low")
        || msg.contains("insufficient balance")
    {
        return ErrorKind::QuotaExhausted;
    }
    if either("context_length_exceeded")
        || status == 413
        || either("request_too_large")
        || msg.contains("maximum context length")
        || msg.contains("context length")
        || msg.contains("context window")
        || msg.contains("prompt is too long")
    {
        return ErrorKind::ContextTooLong;
    }
    if status == 401 || either("authentication_error") || either("invalid_api_key") {
        return ErrorKind::Authentication;
    }
    if status == 403 || either("permission_error") {
        return ErrorKind::Permission;
    }
    if status == 404
        || either("model_not_found")
        || either("not_found_error")
        || either("invalid_model")
    {
        // Anthropic's `not_found_error` is usually the model, sometimes the path;
        // either way this provider cannot serve the call as configured.
        return ErrorKind::ModelNotFound;
    }
    if status == 429 || either("rate_limit_error") || either("rate_limit_exceeded") {
        return ErrorKind::RateLimited;
    }
    if status == 529 || status == 503 || either("overloaded_error") {
        return ErrorKind::Overloaded;
    }
    if status == 408 || status == 504 {
        return ErrorKind::Timeout;
    }
    if status == 409 || status >= 500 || either("api_error") {
        return ErrorKind::ServerError;
    }
    if (400..500).contains(&status) {
        return ErrorKind::BadRequest;
    }
    if (300..400).contains(&status) {
        // Redirects are not followed (they could carry the key elsewhere):
        // the base URL is not the endpoint's final address.
        return ErrorKind::InvalidConfig;
    }
    // A 1xx reaching us means a misconfigured endpoint too, or a broken one.
    ErrorKind::MalformedResponse
}

/// Builds the error for a non-2xx response.
pub(crate) fn classify(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    ctx: CallContext<'_>,
    now: SystemTime,
) -> ProviderError {
    let parsed = parse_error_body(body);
    let kind = kind_for(status, &parsed);
    let message = if (300..400).contains(&status) {
        let to = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nowhere given");
        format!("the endpoint redirects (HTTP {status}) to {to}; redirects are not followed, since they could carry the key elsewhere: set `baseUrl` to the final address")
    } else if parsed.message.is_empty() {
        format!("HTTP {status} with empty body")
    } else {
        parsed.message.clone()
    };
    let mut err = ctx.error(kind, &message);
    err.status = Some(status);
    err.code = parsed
        .code
        .or(parsed.error_type)
        .map(|c| ctx.scrub(&c).into_boxed_str());
    err.retry_after = headers::retry_wait(headers, now);
    err.should_retry = headers::should_retry(headers);
    err
}
