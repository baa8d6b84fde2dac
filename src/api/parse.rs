//! Reading requests off the wire: a JSON body or a query string into its
//! typed request, every error naming the field or parameter at fault.
//!
//! The rules the daemon has always applied: an empty body is `{}`; a body
//! that is not JSON, or not a JSON object, is 400; a JSON object with an
//! unknown, missing or mistyped field is 422 naming it; `null` counts as
//! absent. Query strings: any bad or unknown parameter is 400 naming it.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ControlError;
use crate::job::JobId;

/// A request type: what it must satisfy beyond its shape. Each rule names
/// the field it is about.
pub trait Request: DeserializeOwned {
    /// Refuses values the types allow but the operation does not (empty
    /// names, zero attempts, two exclusive fields).
    fn validate(&self) -> Result<(), ControlError>;
}

/// Parses a JSON request body into `T` and validates it.
pub fn parse_body<T: Request>(body: &[u8]) -> Result<T, ControlError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ControlError::BadRequest(format!("request body is not valid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(ControlError::BadRequest(format!(
            "request body must be a JSON object, not {}",
            type_name(&value)
        )));
    }
    let request: T = serde_path_to_error::deserialize(value).map_err(body_error)?;
    request.validate()?;
    Ok(request)
}

/// Parses a query string (without the `?`) into `T` and validates it.
pub fn parse_query<T: Request>(query: &str) -> Result<T, ControlError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    let request: T = serde_path_to_error::deserialize(deserializer).map_err(query_error)?;
    request.validate()?;
    Ok(request)
}

/// A job id from a path segment or an argument (400 when it is none).
pub fn parse_job_id(id: &str) -> Result<JobId, ControlError> {
    JobId::parse_str(id)
        .map_err(|e| ControlError::BadRequest(format!("`{id}` is not a job id: {e}")))
}

/// A body's shape refused (422), naming the field.
fn body_error(e: serde_path_to_error::Error<serde_json::Error>) -> ControlError {
    let (field, rest) = split_path(e.path());
    let inner = e.into_inner().to_string();
    match field {
        // Unknown and missing fields: serde's message names them.
        Some(_) if is_unknown(&inner) => ControlError::Invalid(inner),
        None => ControlError::Invalid(inner),
        Some(field) => ControlError::field(&field, format!("{rest}{inner}")),
    }
}

/// A query string refused (400), naming the parameter.
fn query_error(e: serde_path_to_error::Error<serde::de::value::Error>) -> ControlError {
    let (param, _) = split_path(e.path());
    let inner = e.into_inner().to_string();
    match param {
        Some(_) if is_unknown(&inner) => {
            ControlError::BadRequest(inner.replacen("unknown field", "unknown query parameter", 1))
        }
        Some(param) => ControlError::param(&param, inner),
        None => ControlError::BadRequest(format!("invalid query string: {inner}")),
    }
}

/// Whether serde refused a field for not being one of the type's
/// (`deny_unknown_fields`): its message names the field and those allowed.
fn is_unknown(message: &str) -> bool {
    message.starts_with("unknown field `")
}

/// The top-level field a path starts with, and the rest of the path as a
/// prefix for the message (`` `userId`: `` inside `ctx`).
fn split_path(path: &serde_path_to_error::Path) -> (Option<String>, String) {
    let mut segments = path.iter().map(|s| s.to_string());
    let Some(first) = segments.next().filter(|s| !s.is_empty() && s != "?") else {
        return (None, String::new());
    };
    let rest: Vec<String> = segments.collect();
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("`{}`: ", rest.join("."))
    };
    (Some(first), rest)
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

/// Serde helpers for request fields.
pub(crate) mod fields {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};

    /// A field whose `null` means its default, as an absent one does.
    pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    /// An RFC 3339 time, saying so when the text is not one.
    pub(crate) fn rfc3339<'de, D>(d: D) -> Result<Option<DateTime<Utc>>, D::Error>
    where
        D: Deserializer<'de>,
    {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => DateTime::parse_from_rfc3339(&text)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "expected an RFC 3339 time, got `{text}`: {e}"
                    ))
                }),
        }
    }

    /// Whether a flag is off (left out when serialised).
    pub(crate) fn is_false(b: &bool) -> bool {
        !*b
    }
}
