//! Request bodies and query strings: read within the size limit, parsed as
//! JSON, and taken apart field by field so each error names its field.

use std::collections::HashMap;

use actix_web::{web, HttpRequest};
use futures::StreamExt;
use serde_json::{Map, Value};

use super::errors::ApiError;

/// Reads the body (at most `limit` bytes, else 413) and parses it as a JSON
/// object. An empty body is `{}`.
pub(crate) async fn read_object(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Fields, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Fields::default());
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(Fields { map }),
        other => Err(ApiError::BadRequest(format!(
            "request body must be a JSON object, not {}",
            type_name(&other)
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of a JSON object body. `null` counts as absent.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Refuses fields not in `allowed`, naming the first.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(ApiError::Invalid(format!(
                "unknown field `{k}` (allowed: {})",
                allowed.join(", ")
            ))),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// Takes `name` out as it is (any JSON).
    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// A string field.
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(ApiError::field(
                name,
                format!("expected a string, got {}", type_name(v)),
            )),
        }
    }

    /// A string field that must be present and not blank.
    pub(crate) fn required_string(&self, name: &str) -> Result<String, ApiError> {
        match self.string(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ApiError::field(name, "must not be empty")),
            None => Err(ApiError::Invalid(format!("missing field `{name}`"))),
        }
    }

    /// A boolean field.
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(ApiError::field(
                name,
                format!("expected true or false, got {}", type_name(v)),
            )),
        }
    }

    /// An integer field within the range of `T`.
    pub(crate) fn int<T: TryFrom<i64>>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::field(name, format!("expected an integer in range, got {v}"))
                }),
        }
    }
}

/// The query string as name → value; a parameter not in `allowed` is refused.
pub(crate) fn query(
    req: &HttpRequest,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let params = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("cannot read the query string: {e}")))?
        .into_inner();
    if let Some(k) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unknown query parameter `{k}` (allowed: {})",
            allowed.join(", ")
        )));
    }
    Ok(params)
}
