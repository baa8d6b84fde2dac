//! Control errors as HTTP responses: the status of their class and the
//! body `{"error":{"status":…,"message":…}}` ([`crate::api::ErrorBody`]).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::api::{ControlError, ErrorBody};

impl ResponseError for ControlError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "control API request failed");
        }
        let mut response = HttpResponse::build(status);
        if matches!(self, ControlError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self.body())
    }
}

/// An error answer no [`ControlError`] stands for (a wrong method).
pub(crate) fn error_response(status: StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody::new(status.as_u16(), message))
}
