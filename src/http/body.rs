//! Request bodies and query strings off the wire: a body is read within the
//! size limit, then both are parsed into their typed request by
//! [`crate::api`], which names the field at fault.

use actix_web::{web, HttpRequest};
use futures::StreamExt;

use crate::api::{parse_body, parse_query, ControlError, Request};

/// Reads the body (at most `limit` bytes, else 413) and parses it as `T`.
pub(crate) async fn read_body<T: Request>(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<T, ControlError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ControlError::too_large(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ControlError::BadRequest(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ControlError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    parse_body(&body)
}

/// Parses the query string as `T`.
pub(crate) fn read_query<T: Request>(req: &HttpRequest) -> Result<T, ControlError> {
    parse_query(req.query_string())
}
