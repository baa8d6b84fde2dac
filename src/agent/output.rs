//! Structured output: a task's `outputSchema`, and the check of its answer.
//!
//! A task may ask for its final answer as JSON that validates against a
//! JSON Schema. The schema goes three ways: into the system prompt as an
//! instruction (every provider, so a failover to one without a native mode
//! still knows what to answer), into the request as the provider's native
//! JSON mode where it has one (`GenerateRequest::output_schema`; the
//! provider decides how to send it), and into this check of the answer.
//! An answer that does not validate goes back to the model with what is
//! wrong, up to the agent's `maxOutputCorrections`; then the task fails,
//! naming the last errors.

use std::sync::Arc;

use serde_json::Value;

/// At most this many validation errors are sent back to the model (and
/// named in a failure): the first ones say enough to correct the answer.
const MAX_ERRORS: usize = 8;

/// A compiled output schema.
pub(crate) struct OutputSchema {
    schema: Arc<Value>,
    validator: jsonschema::Validator,
}

impl OutputSchema {
    /// Compiles `schema`, or says why it is not a usable JSON Schema.
    pub(crate) fn compile(schema: Value) -> Result<Self, String> {
        check_schema(&schema)?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(OutputSchema {
            schema: Arc::new(schema),
            validator,
        })
    }

    /// The schema, shared with every request of the task.
    pub(crate) fn schema(&self) -> &Arc<Value> {
        &self.schema
    }

    /// What the system prompt says about the answer's form.
    pub(crate) fn instructions(&self) -> String {
        format!(
            "Your final answer must be one JSON value, and nothing else (no prose, no code \
             fences), that validates against this JSON Schema:\n{}",
            self.schema
        )
    }

    /// The answer parsed as JSON if it validates, else what is wrong with
    /// it (each line one error, the first naming where in the answer).
    pub(crate) fn check(&self, answer: &str) -> Result<Value, Vec<String>> {
        let value: Value = serde_json::from_str(strip_fences(answer))
            .map_err(|e| vec![format!("the answer is not JSON: {e}")])?;
        if self.validator.is_valid(&value) {
            return Ok(value);
        }
        Err(self
            .validator
            .iter_errors(&value)
            .take(MAX_ERRORS)
            .map(|e| {
                let path = e.instance_path().as_str().to_string();
                let at = if path.is_empty() {
                    "/".to_string()
                } else {
                    path
                };
                format!("at {at}: {e}")
            })
            .collect())
    }
}

/// `schema` with every object closed (`additionalProperties: false` where
/// it says nothing): the schema of a Rust type, whose deserializer ignores
/// unknown fields anyway, so that providers' strict modes take it (OpenAI's
/// requires closed objects).
pub(crate) fn closed(mut schema: Value) -> Value {
    fn close(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let is_object = map.get("type").and_then(Value::as_str) == Some("object")
                    || map.contains_key("properties");
                if is_object && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                for (key, sub) in map.iter_mut() {
                    // Property names and enum values are not schemas.
                    if key == "properties" || key == "$defs" || key == "definitions" {
                        if let Value::Object(subs) = sub {
                            subs.values_mut().for_each(close);
                        }
                    } else if key != "enum" && key != "const" && key != "examples" {
                        close(sub);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut schema);
    schema
}

/// The message that sends an answer back to the model.
pub(crate) fn correction(errors: &[String]) -> String {
    format!(
        "Your answer does not validate against the required JSON Schema:\n- {}\n\
         Reply again with only the corrected JSON.",
        errors.join("\n- ")
    )
}

/// Whether `schema` can be an output schema: a JSON Schema object (or
/// `true`) that compiles. Checked when a task is queued, so a bad schema is
/// refused then and not after the task's first model call.
pub(crate) fn check_schema(schema: &Value) -> Result<(), String> {
    if !schema.is_object() {
        return Err(format!(
            "must be a JSON Schema object, such as {{\"type\": \"object\", \"properties\": {{…}}}}; got {}",
            kind(schema)
        ));
    }
    jsonschema::validator_for(schema)
        .map(drop)
        .map_err(|e| format!("is not a valid JSON Schema: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The answer without a Markdown code fence around it: models asked for
/// JSON alone still wrap it in ```json now and then, and the JSON inside is
/// what was asked for.
fn strip_fences(answer: &str) -> &str {
    let t = answer.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let Some(body) = rest.strip_suffix("```") else {
        return t;
    };
    // Drop the info string (`json`) on the opening fence's line.
    match body.split_once('\n') {
        Some((info, inner)) if !info.trim_start().starts_with(['{', '[']) => inner.trim(),
        _ => body.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person() -> OutputSchema {
        OutputSchema::compile(json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
            "required": ["name", "age"],
            "additionalProperties": false
        }))
        .unwrap()
    }

    #[test]
    fn a_valid_answer_is_parsed() {
        let out = person().check(r#"{"name": "Ada", "age": 36}"#).unwrap();
        assert_eq!(out, json!({"name": "Ada", "age": 36}));
    }

    #[test]
    fn a_fenced_answer_is_read_inside_its_fence() {
        let s = person();
        let fenced = "```json\n{\"name\": \"Ada\", \"age\": 36}\n```";
        assert_eq!(s.check(fenced).unwrap()["name"], "Ada");
        assert_eq!(
            s.check("```{\"name\": \"A\", \"age\": 1}```").unwrap()["age"],
            1
        );
    }

    #[test]
    fn errors_name_where_and_what() {
        let errors = person().check(r#"{"name": 7, "age": -1}"#).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().any(|e| e.starts_with("at /name:")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with("at /age:")),
            "{errors:?}"
        );
        let missing = person().check(r#"{"name": "Ada"}"#).unwrap_err();
        assert!(
            missing[0].starts_with("at /:") && missing[0].contains("age"),
            "{missing:?}"
        );
    }

    #[test]
    fn a_closed_schema_closes_every_object_and_nothing_else() {
        let schema = closed(json!({
            "type": "object",
            "properties": {
                "properties": {"type": "object", "properties": {"a": {"type": "string"}}},
                "tags": {"type": "array", "items": {"type": "object", "additionalProperties": true}},
                "kind": {"enum": [{"type": "object"}]}
            }
        }));
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["properties"]["additionalProperties"],
            false
        );
        assert!(schema["properties"].get("additionalProperties").is_none());
        assert_eq!(
            schema["properties"]["tags"]["items"]["additionalProperties"],
            true
        );
        assert_eq!(
            schema["properties"]["kind"]["enum"][0],
            json!({"type": "object"})
        );
    }

    #[test]
    fn prose_is_not_json() {
        let errors = person().check("Ada is 36.").unwrap_err();
        assert!(errors[0].contains("not JSON"), "{errors:?}");
        assert!(correction(&errors).contains("not JSON"));
    }

    #[test]
    fn bad_schemas_are_refused_with_the_reason() {
        assert!(check_schema(&json!("object"))
            .unwrap_err()
            .contains("a string"));
        let err = check_schema(&json!({"type": "objekt"})).unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
        assert!(check_schema(&json!({"type": "object"})).is_ok());
    }
}
