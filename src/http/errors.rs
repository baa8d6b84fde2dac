//! The control API's one error type: every failure is answered as JSON
//! `{"error":{"status":…,"message":…}}` with a message naming the problem.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::engine::EngineError;
use crate::runtime::RuntimeError;
use crate::store::StoreError;

/// Why a request was refused or failed. The variant fixes the status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be read: bad JSON, a malformed id or parameter (400).
    #[error("{0}")]
    BadRequest(String),
    /// No bearer token, or the wrong one (401).
    #[error("missing or wrong bearer token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The job, worker, agent or conversation named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method (405).
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The body is larger than the limit (413).
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The JSON is well formed but a field is missing or invalid (422); the
    /// message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The runtime is shutting down or a part of it does not answer (503).
    #[error("{0}")]
    Unavailable(String),
    /// The store or another part failed (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// `field` of the request is missing or invalid: `reason`.
    pub fn field(field: &str, reason: impl std::fmt::Display) -> Self {
        ApiError::Invalid(format!("invalid field `{field}`: {reason}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "control API request failed");
        }
        let mut response = HttpResponse::build(status);
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({
            "error": { "status": status.as_u16(), "message": self.to_string() }
        }))
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownWorker { .. } | EngineError::JobNotFound { .. } => {
                ApiError::NotFound(e.to_string())
            }
            EngineError::InvalidJob(_)
            | EngineError::InvalidWorker { .. }
            | EngineError::DuplicateWorker { .. } => ApiError::Invalid(e.to_string()),
            EngineError::Stopped(_) => ApiError::Unavailable(e.to_string()),
            EngineError::Store(s) => s.into(),
            EngineError::Start(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::JobNotFound { .. }
            | StoreError::NotFound { .. }
            | StoreError::ScheduleNotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::InvalidJob { .. } | StoreError::InvalidInput { .. } => {
                ApiError::Invalid(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::UnknownAgent { .. } => ApiError::NotFound(e.to_string()),
            RuntimeError::Engine(engine) => engine.into(),
            RuntimeError::Store(store) => store.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
