//! The control API's one error type, and its body on the wire.

use serde::{Deserialize, Serialize};

use crate::engine::EngineError;
use crate::runtime::RuntimeError;
use crate::store::StoreError;

/// Why an operation was refused or failed, whichever [`Control`](super::Control)
/// ran it. Each variant is one HTTP status class, so the daemon answers
/// with [`status`](Self::status) and the remote client turns that status
/// back into the same variant: a caller sees the same error locally and
/// through a daemon.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request cannot be read: bad JSON, a malformed id or query
    /// parameter (400).
    #[error("{0}")]
    BadRequest(String),
    /// No bearer token, or the wrong one (401).
    #[error("missing or wrong bearer token: send `Authorization: Bearer <token>`; the daemon's token is in `http.token` in its data directory, unless TROUPE_HTTP_TOKEN or `[http] token` set another (the CLI reads them in that order)")]
    Unauthorized,
    /// The request comes from a web page of another origin (403).
    #[error("{0}")]
    Forbidden(String),
    /// The job, worker, agent or conversation named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the record as it stands: an approval
    /// already decided, or cancelled with its task (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body did not arrive in time (408).
    #[error("{0}")]
    Timeout(String),
    /// The request body is larger than the daemon takes (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request body is not `application/json` (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request names a host this daemon does not answer to (421): a
    /// DNS rebinding page, or a name missing from `[http] allowedHosts`.
    #[error("{0}")]
    MisdirectedRequest(String),
    /// The JSON is well formed but a field is missing or invalid (422); the
    /// message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The store or another part failed (500).
    #[error("{0}")]
    Internal(String),
    /// The runtime is shutting down, a part of it does not answer, or the
    /// operation needs a running daemon (503).
    #[error("{0}")]
    Unavailable(String),
    /// The daemon could not be reached at all (no HTTP status: counted as
    /// 503, the daemon is not available).
    #[error("cannot reach the daemon at {url}: {source}")]
    Unreachable {
        /// The daemon's address.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// The daemon answered with a status no other variant stands for.
    #[error("{message}")]
    Other {
        /// The HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
}

impl ControlError {
    /// `field` of the request is missing or invalid: `reason` (422).
    pub fn field(field: &str, reason: impl std::fmt::Display) -> Self {
        ControlError::Invalid(format!("invalid field `{field}`: {reason}"))
    }

    /// Query parameter `name` is invalid: `reason` (400).
    pub fn param(name: &str, reason: impl std::fmt::Display) -> Self {
        ControlError::BadRequest(format!("invalid query parameter `{name}`: {reason}"))
    }

    /// A request body over `limit` bytes (413).
    pub fn too_large(limit: usize) -> Self {
        ControlError::TooLarge(format!(
            "request body is larger than the limit of {limit} bytes"
        ))
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::BadRequest(_) => 400,
            ControlError::Unauthorized => 401,
            ControlError::Forbidden(_) => 403,
            ControlError::NotFound(_) => 404,
            ControlError::Timeout(_) => 408,
            ControlError::Conflict(_) => 409,
            ControlError::TooLarge(_) => 413,
            ControlError::UnsupportedMediaType(_) => 415,
            ControlError::MisdirectedRequest(_) => 421,
            ControlError::Invalid(_) => 422,
            ControlError::Internal(_) => 500,
            ControlError::Unavailable(_) | ControlError::Unreachable { .. } => 503,
            ControlError::Other { status, .. } => *status,
        }
    }

    /// The error a daemon meant by answering `status` with `message`: the
    /// inverse of [`status`](Self::status).
    pub fn from_status(status: u16, message: String) -> Self {
        match status {
            400 => ControlError::BadRequest(message),
            401 => ControlError::Unauthorized,
            403 => ControlError::Forbidden(message),
            404 => ControlError::NotFound(message),
            408 => ControlError::Timeout(message),
            409 => ControlError::Conflict(message),
            413 => ControlError::TooLarge(message),
            415 => ControlError::UnsupportedMediaType(message),
            421 => ControlError::MisdirectedRequest(message),
            422 => ControlError::Invalid(message),
            500 => ControlError::Internal(message),
            503 => ControlError::Unavailable(message),
            status => ControlError::Other { status, message },
        }
    }

    /// The body this error is answered with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.status(), self.to_string())
    }
}

/// `{"error":{"status":…,"message":…}}`: every failure of the control API,
/// so a script reads one shape whatever went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The HTTP status, repeated for clients that only keep the body.
    pub status: u16,
    /// What was wrong, naming the field, id or name at fault.
    pub message: String,
}

impl ErrorBody {
    /// The body for `status` with `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                status,
                message: message.into(),
            },
        }
    }
}

impl From<EngineError> for ControlError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownWorker { .. } | EngineError::JobNotFound { .. } => {
                ControlError::NotFound(e.to_string())
            }
            EngineError::InvalidJob(_)
            | EngineError::InvalidWorker { .. }
            | EngineError::DuplicateWorker { .. } => ControlError::Invalid(e.to_string()),
            EngineError::Stopped(_) => ControlError::Unavailable(e.to_string()),
            EngineError::Store(s) => s.into(),
            EngineError::Start(_) => ControlError::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            // Said as the engine says it, so a job is "not found" in the
            // same words whichever way it was looked for.
            StoreError::JobNotFound { id } => EngineError::JobNotFound { id }.into(),
            StoreError::NotFound { .. } | StoreError::ScheduleNotFound { .. } => {
                ControlError::NotFound(e.to_string())
            }
            StoreError::InvalidJob { .. } | StoreError::InvalidInput { .. } => {
                ControlError::Invalid(e.to_string())
            }
            StoreError::Failed { .. } => ControlError::Unavailable(e.to_string()),
            other => ControlError::Internal(other.to_string()),
        }
    }
}

impl From<RuntimeError> for ControlError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::UnknownAgent { .. } => ControlError::NotFound(e.to_string()),
            RuntimeError::OutputSchema { reason } => ControlError::field("outputSchema", reason),
            RuntimeError::Engine(engine) => engine.into(),
            RuntimeError::Store(store) => store.into(),
            other => ControlError::Internal(other.to_string()),
        }
    }
}

impl From<crate::job::JobError> for ControlError {
    fn from(e: crate::job::JobError) -> Self {
        ControlError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_back_to_its_variant() {
        for e in [
            ControlError::BadRequest("b".into()),
            ControlError::Unauthorized,
            ControlError::Forbidden("f".into()),
            ControlError::NotFound("n".into()),
            ControlError::Timeout("t".into()),
            ControlError::too_large(8),
            ControlError::UnsupportedMediaType("m".into()),
            ControlError::MisdirectedRequest("h".into()),
            ControlError::field("x", "bad"),
            ControlError::Internal("i".into()),
            ControlError::Unavailable("u".into()),
            ControlError::Other {
                status: 405,
                message: "m".into(),
            },
        ] {
            let back = ControlError::from_status(e.status(), e.to_string());
            assert_eq!(back.status(), e.status());
            assert_eq!(back.to_string(), e.to_string());
        }
    }
}
