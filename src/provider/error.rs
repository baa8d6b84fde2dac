//! The provider layer's one error type.
//!
//! Failures are values: the agent loop, the retry policy, the failover list
//! and the scheduler all decide from [`ErrorKind`], [`ProviderError::retryable`]
//! (in-line retries), [`ProviderError::fails_over`] (failover),
//! [`ProviderError::job_retry`] (the job engine) and
//! [`ProviderError::retry_after`] — never from message text.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What went wrong, in the terms callers act on.
///
/// Serializable so job records and metrics can store the class, not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// Too many requests or tokens right now; clears after `retry_after`.
    RateLimited,
    /// Out of credit or over a spend limit; waiting does not help.
    QuotaExhausted,
    /// The key is missing, wrong or revoked.
    Authentication,
    /// The key is valid but may not use this model or endpoint.
    Permission,
    /// The model (or the endpoint) does not exist at this provider.
    ModelNotFound,
    /// The conversation is longer than the model's context window.
    ContextTooLong,
    /// The provider rejected the request as invalid; resending will not help.
    BadRequest,
    /// The provider is overloaded (Anthropic 529, DeepSeek 503).
    Overloaded,
    /// A 5xx (other than overload) at the provider.
    ServerError,
    /// No answer within the configured timeout.
    Timeout,
    /// Could not connect, or the connection broke mid-response.
    Connection,
    /// A 2xx whose body is empty, not JSON, or not the expected shape.
    MalformedResponse,
    /// This provider's circuit breaker is open; the call was not sent.
    CircuitOpen,
    /// The provider's config is unusable (missing key, base URL…).
    InvalidConfig,
    /// A failover list with no candidates.
    NoCandidates,
    /// The agent has spent its daily budget (tokens or cost); the call was
    /// not sent. Clears at the next UTC day (`retry_after` says when).
    BudgetExceeded,
    /// The provider's stored key is past its expiry date; the call was not
    /// sent. Store a new key (`troupe secrets set PROVIDER`).
    KeyExpired,
    /// The provider's actor stopped or restarted before it answered; the
    /// request may or may not have reached the provider.
    Unavailable,
}

impl ErrorKind {
    /// Default retry decision; a provider hint (`x-should-retry`) may override it.
    pub fn retryable_by_default(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Overloaded
                | ErrorKind::ServerError
                | ErrorKind::Timeout
                | ErrorKind::Connection
        )
    }

    /// Whether the next failover candidate should be tried.
    ///
    /// A bad request or an over-long context would fail the same way elsewhere
    /// (the job should fix its input, e.g. compact memory), so they stop the
    /// list; so does a spent budget (it is the agent's, whichever provider
    /// answers). Everything about *this* provider's health, account or
    /// credentials moves on.
    pub fn fails_over(self) -> bool {
        !matches!(
            self,
            ErrorKind::BadRequest
                | ErrorKind::ContextTooLong
                | ErrorKind::NoCandidates
                | ErrorKind::BudgetExceeded
        )
    }

    /// Whether the error says something about the provider's health and so
    /// counts toward opening its circuit breaker.
    pub fn counts_against_breaker(self) -> bool {
        matches!(
            self,
            ErrorKind::Overloaded
                | ErrorKind::ServerError
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::MalformedResponse
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::QuotaExhausted => "quota exhausted",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::Permission => "permission denied",
            ErrorKind::ModelNotFound => "model not found",
            ErrorKind::ContextTooLong => "context too long",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::ServerError => "server error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection failure",
            ErrorKind::MalformedResponse => "malformed response",
            ErrorKind::CircuitOpen => "circuit open",
            ErrorKind::InvalidConfig => "invalid provider config",
            ErrorKind::NoCandidates => "no provider candidates",
            ErrorKind::BudgetExceeded => "budget exceeded",
            ErrorKind::KeyExpired => "API key expired",
            ErrorKind::Unavailable => "provider actor unavailable",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call, naming the provider and model, never the key.
///
/// Messages that came from the network have been scrubbed of the key before
/// they are stored here (see [`ApiKey::scrub`](crate::ApiKey::scrub)).
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{provider} ({model}): {kind}{}: {message}", status_suffix(*.status))]
pub struct ProviderError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Configured provider name.
    pub provider: String,
    /// Model the call was for.
    pub model: String,
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The provider's own error type/code (e.g. `insufficient_quota`), if any.
    /// (Boxed to keep the error under 128 bytes; errors travel in `Result`s.)
    pub code: Option<Box<str>>,
    /// Human-readable detail (the provider's message, scrubbed).
    pub message: String,
    /// How long the provider asked us to wait, parsed from its headers.
    pub retry_after: Option<Duration>,
    /// The provider's explicit retry hint (Anthropic `x-should-retry`).
    pub should_retry: Option<bool>,
    /// Attempts made before giving up (1 when not retried).
    pub attempts: u32,
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl ProviderError {
    /// An error with only the required parts; the rest is filled in by builders.
    pub fn new(kind: ErrorKind, provider: &str, model: &str, message: String) -> Self {
        ProviderError {
            kind,
            provider: provider.to_string(),
            model: model.to_string(),
            status: None,
            code: None,
            message,
            retry_after: None,
            should_retry: None,
            attempts: 1,
        }
    }

    /// A 2xx body that could not be understood.
    pub fn malformed(provider: &str, model: &str, message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::MalformedResponse,
            provider,
            model,
            message.into(),
        )
    }

    /// Parses a 2xx body into a provider's wire type; an empty or
    /// unparsable body is a malformed-response error that says what was
    /// expected (`what`), never a panic.
    pub fn parse_body<T: serde::de::DeserializeOwned>(
        body: &[u8],
        provider: &str,
        model: &str,
        what: &str,
    ) -> Result<T, Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Self::malformed(provider, model, "empty response body"));
        }
        serde_json::from_slice(body)
            .map_err(|e| Self::malformed(provider, model, format!("not {what}: {e}")))
    }

    /// Whether retrying the same call may succeed: the provider's hint if it
    /// gave one, else the kind's default. Quota and auth errors never retry.
    pub fn retryable(&self) -> bool {
        match self.kind {
            ErrorKind::QuotaExhausted
            | ErrorKind::Authentication
            | ErrorKind::CircuitOpen
            | ErrorKind::InvalidConfig
            | ErrorKind::NoCandidates
            | ErrorKind::BudgetExceeded
            | ErrorKind::KeyExpired
            | ErrorKind::Unavailable => false,
            k => self
                .should_retry
                .unwrap_or_else(|| k.retryable_by_default()),
        }
    }

    /// Whether a failover list should move on to its next candidate.
    pub fn fails_over(&self) -> bool {
        self.kind.fails_over()
    }

    /// The earliest time another call makes sense, if known: the wait the
    /// provider asked for, the rest of an open circuit's cooldown, the time
    /// to the next UTC day for a spent budget. A wait over the in-line cap is
    /// not slept through; the job engine runs the job again after it.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// What the job engine should do with a job whose attempt ended in this
    /// error: the one place where a provider error's meaning becomes a job's
    /// fate (the agent's task loop and memory compaction both map through
    /// it).
    ///
    /// | kind | job | next attempt no earlier than |
    /// |---|---|---|
    /// | `RateLimited` | wait | the provider's `Retry-After` |
    /// | `Overloaded` | wait | the provider's `Retry-After`, if sent |
    /// | `CircuitOpen` | wait | the breaker's remaining cooldown (the soonest of all candidates') |
    /// | `BudgetExceeded` | wait | the next UTC day |
    /// | `ServerError` | retry | the provider's `Retry-After`, if sent |
    /// | `Timeout`, `Connection`, `MalformedResponse` | retry | the engine's backoff |
    /// | `Unavailable` (the provider actor restarted) | retry | the engine's backoff |
    /// | `QuotaExhausted`, `Authentication`, `Permission`, `KeyExpired` | fail | — |
    /// | `ModelNotFound`, `InvalidConfig`, `NoCandidates` | fail | — |
    /// | `BadRequest`, `ContextTooLong` | fail | — |
    ///
    /// Wait is for an outage that passes with time and says so (the
    /// provider's load, its limits, its open circuit, the day's budget): the
    /// attempt is not counted against `maxAttempts`, up to the engine's
    /// outage allowance. Retry is for a failure that may pass (a 5xx, a
    /// dropped connection), counted. Fail is for what waits for someone to
    /// change a key, an account, the config or the input. A malformed 2xx counts
    /// against the breaker as a health failure and is retried like one. This
    /// differs from [`retryable`](Self::retryable), which decides the
    /// in-line retries of one call: those must not sleep through an open
    /// circuit or a budget, and they follow the provider's `x-should-retry`
    /// hint, which speaks of resending now, not of a later attempt. After
    /// failover, the error is the one that clears soonest among the
    /// candidates', so it fails the job only when every candidate's error
    /// does. Attempts stay bounded by the job's `maxAttempts`.
    pub(crate) fn job_retry(&self) -> JobRetry {
        match self.kind {
            ErrorKind::RateLimited
            | ErrorKind::Overloaded
            | ErrorKind::CircuitOpen
            | ErrorKind::BudgetExceeded => JobRetry::Wait {
                after: self.retry_after,
            },
            ErrorKind::ServerError
            | ErrorKind::Timeout
            | ErrorKind::Connection
            | ErrorKind::MalformedResponse
            | ErrorKind::Unavailable => JobRetry::Retry {
                after: self.retry_after,
            },
            ErrorKind::QuotaExhausted
            | ErrorKind::Authentication
            | ErrorKind::Permission
            | ErrorKind::KeyExpired
            | ErrorKind::ModelNotFound
            | ErrorKind::InvalidConfig
            | ErrorKind::NoCandidates
            | ErrorKind::BadRequest
            | ErrorKind::ContextTooLong => JobRetry::Fail,
        }
    }
}

/// What becomes of a job whose attempt ended in a provider error; see
/// [`ProviderError::job_retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobRetry {
    /// Run the job again: after the engine's backoff, and no earlier than
    /// `after` when the error says when it clears.
    Retry {
        /// The earliest time another attempt makes sense, if known.
        after: Option<Duration>,
    },
    /// Wait out an outage: run the job again no earlier than `after`,
    /// without counting the attempt (up to the engine's outage allowance).
    Wait {
        /// The earliest time another attempt makes sense, if known.
        after: Option<Duration>,
    },
    /// Fail the job now: no later attempt can succeed until someone changes
    /// something.
    Fail,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: ErrorKind, retry_after: Option<u64>) -> ProviderError {
        let mut e = ProviderError::new(kind, "p", "m", "x".into());
        e.retry_after = retry_after.map(Duration::from_secs);
        e
    }

    #[test]
    fn the_job_retry_table() {
        use ErrorKind::*;
        let retry = |after: Option<u64>| JobRetry::Retry {
            after: after.map(Duration::from_secs),
        };
        let wait = |after: Option<u64>| JobRetry::Wait {
            after: after.map(Duration::from_secs),
        };
        let table = [
            (RateLimited, Some(120), wait(Some(120))),
            (Overloaded, Some(3), wait(Some(3))),
            (Overloaded, None, wait(None)),
            (CircuitOpen, Some(30), wait(Some(30))),
            (BudgetExceeded, Some(3600), wait(Some(3600))),
            (ServerError, None, retry(None)),
            (ServerError, Some(5), retry(Some(5))),
            (Timeout, None, retry(None)),
            (Connection, None, retry(None)),
            (MalformedResponse, None, retry(None)),
            (Unavailable, None, retry(None)),
            (QuotaExhausted, None, JobRetry::Fail),
            // A quota error that names a wait still does not clear by waiting.
            (QuotaExhausted, Some(60), JobRetry::Fail),
            (Authentication, None, JobRetry::Fail),
            (Permission, None, JobRetry::Fail),
            (KeyExpired, None, JobRetry::Fail),
            (ModelNotFound, None, JobRetry::Fail),
            (InvalidConfig, None, JobRetry::Fail),
            (NoCandidates, None, JobRetry::Fail),
            (BadRequest, None, JobRetry::Fail),
            (ContextTooLong, None, JobRetry::Fail),
        ];
        for (kind, after, expected) in table {
            assert_eq!(error(kind, after).job_retry(), expected, "{kind}");
        }
    }

    #[test]
    fn in_line_retries_differ_where_the_engine_waits_instead() {
        // The engine waits these out; a call never sleeps through them.
        for kind in [ErrorKind::CircuitOpen, ErrorKind::BudgetExceeded] {
            let e = error(kind, Some(30));
            assert!(!e.retryable(), "{kind}");
            assert!(matches!(e.job_retry(), JobRetry::Wait { .. }), "{kind}");
        }
        let e = error(ErrorKind::Unavailable, Some(30));
        assert!(!e.retryable());
        assert!(matches!(e.job_retry(), JobRetry::Retry { .. }));
        // `x-should-retry: false` stops the in-line retries of an overload,
        // not the job, which waits it out.
        let mut e = error(ErrorKind::Overloaded, None);
        e.should_retry = Some(false);
        assert!(!e.retryable());
        assert_eq!(e.job_retry(), JobRetry::Wait { after: None });
    }
}
