//! The bearer token of the control API: required on every `/v1` route and
//! on `/metrics` when one is configured, and required to bind beyond
//! loopback. The token is a secret: it is never logged or shown in `Debug`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;

use super::server::ApiState;
use crate::api::ControlError;

/// A configured bearer token. `Debug` prints no part of it.
#[derive(Clone)]
pub struct HttpToken(String);

impl HttpToken {
    /// Wraps `token`; `None` when it is empty or only blanks (an empty token
    /// would let anyone in).
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        let token = token.trim().to_string();
        (!token.is_empty()).then_some(HttpToken(token))
    }

    /// Whether `given` is this token, compared in time independent of where
    /// they first differ (length still shows).
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for HttpToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpToken(<redacted>)")
    }
}

/// The token in an `Authorization: Bearer …` header, if there is one.
fn bearer(req: &ServiceRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Middleware: refuses the request with 401 unless it carries the
/// configured token (a no-op when none is configured).
pub(crate) async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let token = req
        .app_data::<web::Data<ApiState>>()
        .and_then(|s| s.token.clone());
    if let Some(token) = token {
        if !bearer(&req).is_some_and(|given| token.matches(given)) {
            return Err(ControlError::Unauthorized.into());
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly_and_never_print() {
        let t = HttpToken::new(" s3cret ").unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3creT"));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(HttpToken::new("  ").is_none());
    }
}
