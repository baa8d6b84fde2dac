//! The [`Tool`] trait a Rust user implements to give agents a new ability,
//! the typed variant [`TypedTool`] whose JSON Schema is generated from a Rust
//! type, and the [`ToolContext`] every call receives.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::JobId;

use super::error::ToolError;

/// Who is calling a tool and from where: the agent, its task (job), the step
/// of the task loop and the model's call id, plus the user and conversation
/// the task is for and how deep it is in a chain of tasks. The built-in
/// tools act on that user and conversation only, unless the agent's config
/// grants more.
///
/// A task may run again after a crash or a retry and repeat a step; the
/// [`idempotency_key`](Self::idempotency_key) is the same each time, so a
/// tool with side effects can recognise a call it has already carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolContext {
    /// The calling agent's id (its worker name).
    pub agent_id: String,
    /// The task (job) the call belongs to.
    pub job_id: JobId,
    /// Which step of the task loop (0-based: the n-th model reply).
    pub step: u32,
    /// The model's id for this call, unique within the step.
    pub call_id: String,
    /// The user the task is done for, from the job's ctx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The conversation the task belongs to, from the job's ctx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// How deep the task is in a chain of tasks creating tasks: 0 for a
    /// task from outside, one more for each `create_task` (the job's
    /// `ctx.depth`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ToolContext {
    /// The context of call `call_id` in step `step` of task `job_id`.
    pub fn new(
        agent_id: impl Into<String>,
        job_id: JobId,
        step: u32,
        call_id: impl Into<String>,
    ) -> Self {
        ToolContext {
            agent_id: agent_id.into(),
            job_id,
            step,
            call_id: call_id.into(),
            user_id: None,
            conversation_id: None,
            depth: 0,
        }
    }

    /// Sets the user the task is for.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the conversation the task belongs to.
    pub fn conversation(mut self, conversation_id: impl Into<String>) -> Self {
        self.conversation_id = Some(conversation_id.into());
        self
    }

    /// Sets how deep the task is in a chain of tasks creating tasks.
    pub fn depth(mut self, depth: u32) -> Self {
        self.depth = depth;
        self
    }

    /// `tool:<job>:<step>:<call>`: identical whenever the same step of the
    /// same task repeats the same call, and different for any other call.
    /// Side-effecting tools key their effect on it (e.g. with the tool name
    /// prepended) so a replayed step does nothing twice.
    pub fn idempotency_key(&self) -> String {
        format!("tool:{}:{}:{}", self.job_id, self.step, self.call_id)
    }
}

/// A tool agents can call: a name and description the model chooses it by,
/// a JSON Schema for its arguments, and the call itself.
///
/// The router validates the arguments against [`parameters`](Self::parameters)
/// before `call` runs, so `call` sees only schema-valid input. Each tool runs
/// in its own supervised actor: a panic in `call` restarts that actor only
/// and the caller gets [`ToolError::Crashed`]. `call` may be dropped at any
/// await point (timeout, shutdown).
///
/// Most tools are easier to write as a [`TypedTool`], which implements this
/// trait with a schema generated from a Rust type.
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// The name the model calls it by (`[a-zA-Z0-9_-]{1,64}`, as the model
    /// APIs require).
    fn name(&self) -> &str;
    /// What it does and when to use it; the model picks tools by this text.
    fn description(&self) -> &str;
    /// The JSON Schema of the arguments object.
    fn parameters(&self) -> Value;
    /// This tool's own time limit per call; `None` uses the router's default.
    fn timeout(&self) -> Option<Duration> {
        None
    }
    /// Whether every call of this tool waits for a person's approval,
    /// whatever the agent's `approval` list says (a tool that pays, deletes
    /// or sends outside). The task parks until `troupe approve` or `troupe
    /// deny`; see the agent's `approval` key for approval per agent.
    fn requires_approval(&self) -> bool {
        false
    }
    /// Runs one call; the value is the result the model sees.
    async fn call(&self, args: Value, ctx: ToolContext) -> Result<Value, ToolError>;
}

/// A tool whose arguments, answer and error are Rust types: the JSON Schema
/// the model sees is generated from `Args` (with `schemars`, as Zod does for
/// the seed), the arguments arrive deserialised, and [`run`](Self::run)
/// returns its own `Output` or `Error`, so schema, code and answer cannot
/// drift apart and the tool can be called and tested as plain Rust.
///
/// The seed's JSON is made in one place, when the router dispatches the call
/// (the blanket [`Tool`] impl): `Ok(output)` becomes `{"ok":true,"data":output}`,
/// `Err(error)` a [`ToolError`] (sent to the model as an error, recorded as
/// [`ToolError::to_result_value`]). A tool never writes that envelope itself.
///
/// ```
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
/// use troupe::{async_trait, ToolContext, ToolError, TypedTool};
///
/// /// Arguments of `add`.
/// #[derive(Deserialize, JsonSchema)]
/// struct AddArgs {
///     /// First term.
///     a: i64,
///     /// Second term.
///     b: i64,
/// }
///
/// /// What `add` answers: `{"ok":true,"data":{"sum":…}}`.
/// #[derive(Serialize)]
/// struct Sum {
///     sum: i64,
/// }
///
/// struct Add;
///
/// #[async_trait]
/// impl TypedTool for Add {
///     type Args = AddArgs;
///     type Output = Sum;
///     type Error = ToolError;
///     fn name(&self) -> &str { "add" }
///     fn description(&self) -> &str { "Adds two integers." }
///     async fn run(&self, args: AddArgs, _ctx: ToolContext) -> Result<Sum, ToolError> {
///         let sum = args.a.checked_add(args.b).ok_or_else(|| ToolError::failed("overflow"))?;
///         Ok(Sum { sum })
///     }
/// }
/// ```
#[async_trait]
pub trait TypedTool: Send + Sync + 'static {
    /// The arguments; its doc comments become the schema's descriptions.
    type Args: DeserializeOwned + JsonSchema + Send + 'static;
    /// What a call answers: the `data` of `{"ok":true,"data":…}`.
    type Output: Serialize + Send + 'static;
    /// Why a call fails: a [`ToolError`] (to name a bad argument, use
    /// [`ToolError::invalid_argument`]), or an error of the tool's own with
    /// `From<TheError> for ToolError` (e.g. through [`ToolError::failed`]),
    /// converted at dispatch. `std::convert::Infallible` for a tool that
    /// cannot fail.
    type Error: Into<ToolError> + Send + 'static;
    /// As [`Tool::name`].
    fn name(&self) -> &str;
    /// As [`Tool::description`].
    fn description(&self) -> &str;
    /// As [`Tool::timeout`].
    fn timeout(&self) -> Option<Duration> {
        None
    }
    /// As [`Tool::requires_approval`].
    fn requires_approval(&self) -> bool {
        false
    }
    /// Runs one call with its arguments already parsed.
    async fn run(&self, args: Self::Args, ctx: ToolContext) -> Result<Self::Output, Self::Error>;
}

#[async_trait]
impl<T: TypedTool> Tool for T {
    fn name(&self) -> &str {
        TypedTool::name(self)
    }

    fn description(&self) -> &str {
        TypedTool::description(self)
    }

    fn parameters(&self) -> Value {
        schema_for::<T::Args>()
    }

    fn timeout(&self) -> Option<Duration> {
        TypedTool::timeout(self)
    }

    fn requires_approval(&self) -> bool {
        TypedTool::requires_approval(self)
    }

    async fn call(&self, args: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        let args = parse_args::<T::Args>(args)?;
        let output = self.run(args, ctx).await.map_err(Into::into)?;
        ok_answer(&output)
    }
}

/// The seed's answer of a call that succeeded, `{"ok":true,"data":…}`; the
/// one place it is written (its failure twin is [`ToolError::to_result_value`]).
/// An output that cannot be written as JSON (a map with non-string keys) is
/// the tool's failure.
pub(crate) fn ok_answer<T: Serialize + ?Sized>(data: &T) -> Result<Value, ToolError> {
    #[derive(Serialize)]
    struct Answer<'a, T: ?Sized> {
        ok: bool,
        data: &'a T,
    }
    serde_json::to_value(Answer { ok: true, data })
        .map_err(|e| ToolError::failed(format!("the tool's answer cannot be written as JSON: {e}")))
}

/// The JSON Schema of `T` as the model APIs take it: one self-contained
/// object (subschemas inlined, no `$schema`, `$defs` only for recursive
/// types), with doc comments as descriptions.
pub(crate) fn schema_for<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .for_deserialize()
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(obj) = schema.as_object_mut() {
        // The type's Rust name and doc comment mean nothing to the model;
        // the tool's description says what the arguments are for.
        obj.remove("title");
        obj.remove("description");
    }
    collapse_documented_enums(&mut schema);
    drop_rust_formats(&mut schema);
    schema
}

/// schemars tags Rust's number types with `format`s no JSON Schema
/// validator or model knows (`uint32`, `double` …): bytes in every request
/// that say nothing (`minimum`, which schemars writes beside them for an
/// unsigned type, carries what matters). Standard formats (`date-time`,
/// `uri` …) stay.
fn drop_rust_formats(schema: &mut Value) {
    const RUST_FORMATS: &[&str] = &[
        "int", "int8", "int16", "int32", "int64", "int128", "uint", "uint8", "uint16", "uint32",
        "uint64", "uint128", "float", "double",
    ];
    match schema {
        Value::Object(obj) => {
            if obj
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| RUST_FORMATS.contains(&f))
            {
                obj.remove("format");
            }
            obj.values_mut().for_each(drop_rust_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_rust_formats),
        _ => {}
    }
}

/// schemars writes a unit enum with documented variants as
/// `oneOf: [{const, description}…]`; this turns it into the plainer
/// `enum: […]` with the variants' descriptions appended to the field's, which
/// models read more reliably and which validates with a clearer message
/// (`"x" is not one of [...]` rather than "not valid under any of the
/// schemas listed in the 'oneOf' keyword").
fn collapse_documented_enums(schema: &mut Value) {
    match schema {
        Value::Object(obj) => {
            if let Some(Value::Array(variants)) = obj.get("oneOf") {
                let consts: Option<Vec<(Value, Option<String>)>> = variants
                    .iter()
                    .map(|v| {
                        let o = v.as_object()?;
                        let known = o
                            .keys()
                            .all(|k| matches!(k.as_str(), "const" | "description" | "type"));
                        let c = o.get("const")?;
                        known.then(|| {
                            (
                                c.clone(),
                                o.get("description")
                                    .and_then(Value::as_str)
                                    .map(str::to_string),
                            )
                        })
                    })
                    .collect();
                if let Some(consts) = consts.filter(|c| !c.is_empty()) {
                    obj.remove("oneOf");
                    let mut description = obj
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    for (value, doc) in &consts {
                        if let Some(doc) = doc {
                            if !description.is_empty() {
                                description.push('\n');
                            }
                            description.push_str(&format!("- {value}: {doc}"));
                        }
                    }
                    if consts.iter().all(|(v, _)| v.is_string()) {
                        obj.insert("type".into(), Value::from("string"));
                    }
                    obj.insert(
                        "enum".into(),
                        Value::Array(consts.into_iter().map(|(v, _)| v).collect()),
                    );
                    if !description.is_empty() {
                        obj.insert("description".into(), Value::from(description));
                    }
                }
            }
            for value in obj.values_mut() {
                collapse_documented_enums(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(collapse_documented_enums),
        _ => {}
    }
}

/// Deserialises schema-checked arguments into `T`. A failure here means the
/// schema let through something the type refuses (a custom `Deserialize`),
/// reported as invalid arguments so the model can still fix it.
pub(crate) fn parse_args<T: DeserializeOwned>(args: Value) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::invalid_argument("", e))
}

/// A tool as the model sees it; the same type the provider layer sends.
pub(crate) use crate::provider::model::ToolDefinition;

/// Checks a tool name the way the model APIs do (OpenAI and Anthropic both
/// accept `^[a-zA-Z0-9_-]{1,64}$`), so a bad name fails at registration and
/// not at the first model request.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("may contain only ASCII letters, digits, `_` and `-`".into());
    }
    Ok(())
}

impl fmt::Display for ToolContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "agent {} job {} step {} call {}",
            self.agent_id, self.job_id, self.step, self.call_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// Arguments of the test tool `pair`.
    #[derive(Deserialize, JsonSchema)]
    struct PairArgs {
        /// How the call ends: `ok`, `own_error`, `tool_error` or `unwritable`.
        outcome: String,
    }

    /// A tool error of the test tool's own.
    #[derive(Debug, thiserror::Error)]
    #[error("the pair broke")]
    struct Broke;

    impl From<Broke> for ToolError {
        fn from(e: Broke) -> Self {
            ToolError::failed(e)
        }
    }

    #[derive(Debug)]
    enum PairError {
        Own(Broke),
        Tool(ToolError),
    }

    impl From<PairError> for ToolError {
        fn from(e: PairError) -> Self {
            match e {
                PairError::Own(e) => e.into(),
                PairError::Tool(e) => e,
            }
        }
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    enum PairOutput {
        Pair { left: u8, right: &'static str },
        Keyed(std::collections::BTreeMap<(u8, u8), u8>),
    }

    struct Pair;

    #[async_trait]
    impl TypedTool for Pair {
        type Args = PairArgs;
        type Output = PairOutput;
        type Error = PairError;
        fn name(&self) -> &str {
            "pair"
        }
        fn description(&self) -> &str {
            "Answers a pair, or fails as asked."
        }
        async fn run(&self, args: PairArgs, _: ToolContext) -> Result<PairOutput, PairError> {
            match args.outcome.as_str() {
                "ok" => Ok(PairOutput::Pair {
                    left: 1,
                    right: "b",
                }),
                "own_error" => Err(PairError::Own(Broke)),
                "unwritable" => Ok(PairOutput::Keyed([((1, 2), 3)].into())),
                _ => Err(PairError::Tool(ToolError::invalid_argument(
                    "/outcome", "unknown",
                ))),
            }
        }
    }

    fn call_pair(outcome: &str) -> Result<Value, ToolError> {
        let ctx = ToolContext::new("sarah", Uuid::nil(), 0, "c");
        futures::executor::block_on(Tool::call(
            &Pair,
            serde_json::json!({ "outcome": outcome }),
            ctx,
        ))
    }

    #[test]
    fn a_typed_tools_answer_is_put_in_the_seeds_envelope_at_dispatch() {
        let ok = call_pair("ok").unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"ok": true, "data": {"left": 1, "right": "b"}})
        );
        assert_eq!(
            ok.to_string(),
            r#"{"data":{"left":1,"right":"b"},"ok":true}"#
        );
    }

    #[test]
    fn a_typed_tools_error_becomes_a_tool_error_at_dispatch() {
        assert_eq!(
            call_pair("own_error").unwrap_err(),
            ToolError::failed("the pair broke")
        );
        assert_eq!(
            call_pair("tool_error").unwrap_err(),
            ToolError::invalid_argument("/outcome", "unknown")
        );
        let unwritable = call_pair("unwritable").unwrap_err();
        assert_eq!(unwritable.kind(), "failed");
        assert!(
            unwritable.to_string().contains("cannot be written as JSON"),
            "{unwritable}"
        );
    }

    #[test]
    fn the_idempotency_key_depends_on_job_step_and_call_only() {
        let job = Uuid::now_v7();
        let a = ToolContext::new("sarah", job, 2, "call_1").user("u1");
        let b = ToolContext::new("sarah", job, 2, "call_1").conversation("c9");
        assert_eq!(a.idempotency_key(), b.idempotency_key());
        assert_ne!(
            a.idempotency_key(),
            ToolContext::new("sarah", job, 3, "call_1").idempotency_key()
        );
        assert_ne!(
            a.idempotency_key(),
            ToolContext::new("sarah", job, 2, "call_2").idempotency_key()
        );
    }

    #[test]
    fn names_are_checked_like_the_model_apis_do() {
        assert!(check_name("send_message").is_ok());
        assert!(check_name("a-b_9").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}
