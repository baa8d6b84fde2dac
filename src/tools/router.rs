//! The ToolRouter actor: the one way agents run tools.
//!
//! Owns: the [`ToolRegistry`] (definitions, compiled validators, the tool
//! actors' addresses). Takes: [`ToolRequest`] from agents (one per
//! [`ToolCall`](crate::provider::ToolCall) the model made), answered with the
//! call's `Result<Value, ToolError>`.
//!
//! For each call it checks, in order: the tool exists (else
//! [`ToolError::UnknownTool`]), the agent may use it ([`ToolError::Denied`]),
//! the arguments match its JSON Schema ([`ToolError::InvalidArguments`] with
//! every issue's path and message). Then it sends [`RunTool`] to that tool's
//! actor and waits at most the tool's timeout ([`ToolError::TimedOut`]); a
//! call error from the tool actor means it crashed ([`ToolError::Crashed`]).
//! Calls run as reply futures, so a slow tool never holds up another call.
//!
//! What the model chose (the tool's name, the call's id, and so the error
//! messages quoting them) is logged through [`Escaped`], which escapes
//! newlines and other control characters (ANSI escapes among them): a name
//! such as `"x\n… ERROR …"` cannot forge a line of a text log, while a
//! plain name logs as itself (in JSON logs too).

use crate::escape::Escaped;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use troupe_actors::{Actor, CallError, Context, Handler, Message, Reply};

use crate::provider::model::ToolResult;

use super::actor::RunTool;
use super::error::ToolError;
use super::registry::{LiveEntry, ToolRegistry};
use super::tool::ToolContext;

/// Routes tool calls to tool actors; see the module docs.
pub(crate) struct ToolRouter {
    registry: ToolRegistry,
}

impl ToolRouter {
    pub(crate) fn new(registry: ToolRegistry) -> Self {
        ToolRouter { registry }
    }
}

impl Actor for ToolRouter {}

/// An agent's request to the router to run one tool call the model made:
/// run tool `name` with `args`, if the agent may.
///
/// The model's side of the call is [`crate::provider::ToolCall`]; this
/// message adds who asks and what they may use. `allowed` is the agent's
/// configured tool list (shared, so building a request does not copy it);
/// the calling agent is `ctx.agent_id`.
#[derive(Debug, Clone)]
pub(crate) struct ToolRequest {
    /// The tool the model asked for.
    pub name: String,
    /// The arguments the model gave.
    pub args: Value,
    /// Who calls, from which task, step and model call.
    pub ctx: ToolContext,
    /// The tools the calling agent may use.
    pub allowed: Arc<[String]>,
    /// The caller's span (its task's): the call's span is its child, so a
    /// trace shows the tool call inside the task across the actor hop.
    pub parent: tracing::Span,
}

impl ToolRequest {
    /// A request to run `name` with `args`, by the agent and task in `ctx`,
    /// allowed the tools in `allowed`.
    pub(crate) fn new(
        name: impl Into<String>,
        args: Value,
        ctx: ToolContext,
        allowed: Arc<[String]>,
    ) -> Self {
        ToolRequest {
            name: name.into(),
            args,
            ctx,
            allowed,
            parent: tracing::Span::current(),
        }
    }
}

impl Message for ToolRequest {
    type Result = Result<Value, ToolError>;
}

impl Handler<ToolRequest> for ToolRouter {
    fn handle(
        &mut self,
        call: ToolRequest,
        _: &mut Context<'_, Self>,
    ) -> Reply<Result<Value, ToolError>> {
        Reply::future(run(self.registry.clone(), call))
    }
}

/// One call, checked and routed, inside its `tool_call` span and logged.
/// The router runs it for the tools its actors host; [`Tools::call`]
/// (super::Tools::call) runs it in the caller's task for the live ones.
pub(super) fn run(
    registry: ToolRegistry,
    call: ToolRequest,
) -> impl std::future::Future<Output = Result<Value, ToolError>> {
    // `otel.*` and `gen_ai.*` are OpenTelemetry's names (GenAI
    // semantic conventions) for what the exported span is.
    let span = tracing::info_span!(
        parent: &call.parent,
        "tool_call",
        tool = %Escaped(&call.name),
        agent = %call.ctx.agent_id,
        job = %call.ctx.job_id,
        step = call.ctx.step,
        "otel.name" = %format_args!("execute_tool {}", Escaped(&call.name)),
        "gen_ai.operation.name" = "execute_tool",
        "gen_ai.tool.name" = %Escaped(&call.name),
        "gen_ai.tool.call.id" = %Escaped(&call.ctx.call_id),
        "error.type" = tracing::field::Empty,
    );
    tracing::Instrument::instrument(
        async move {
            let started = Instant::now();
            let name = call.name.clone();
            let ctx = call.ctx.clone();
            let result = route(&registry, call).await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match &result {
                Ok(_) => tracing::debug!(
                    tool = %Escaped(&name), agent = %ctx.agent_id, job = %ctx.job_id,
                    step = ctx.step, call = %Escaped(&ctx.call_id), elapsed_ms,
                    "tool call ok"
                ),
                Err(e) => {
                    tracing::Span::current().record("error.type", e.kind());
                    tracing::warn!(
                    tool = %Escaped(&name), agent = %ctx.agent_id, job = %ctx.job_id,
                    step = ctx.step, call = %Escaped(&ctx.call_id), elapsed_ms,
                    kind = e.kind(), error = %Escaped(&e.to_string()), "tool call failed"
                    )
                }
            }
            result
        },
        span,
    )
}

async fn route(registry: &ToolRegistry, call: ToolRequest) -> Result<Value, ToolError> {
    let allowed_names = || -> Vec<String> {
        call.allowed
            .iter()
            .filter(|n| registry.contains(n))
            .cloned()
            .collect()
    };
    let denied = || ToolError::Denied {
        name: call.name.clone(),
        agent_id: call.ctx.agent_id.clone(),
        allowed: allowed_names(),
    };
    let Some(entry) = registry.entries.get(&call.name) else {
        let Some(live) = registry.live_entry(&call.name) else {
            return Err(ToolError::UnknownTool {
                name: call.name.clone(),
                available: allowed_names(),
            });
        };
        if !call.allowed.iter().any(|n| n == &call.name) {
            return Err(denied());
        }
        return call_live(&live, call).await;
    };
    if !call.allowed.iter().any(|n| n == &call.name) {
        return Err(denied());
    }
    entry.validate(&call.args)?;
    let Some(actor) = entry.actor.get() else {
        return Err(ToolError::failed(
            "the tool runtime is not connected (ToolMount::connect was not called)",
        ));
    };
    let timeout = entry.timeout;
    let run = actor.send(RunTool {
        args: call.args,
        ctx: call.ctx,
        timeout,
    });
    // The tool actor drops the call's future at the same limit; this bound
    // also covers time spent queued or waiting out a restart of the actor.
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(ToolError::timed_out(timeout)),
        Ok(Err(CallError::Timeout { .. })) => Err(ToolError::timed_out(timeout)),
        Ok(Err(e @ CallError::Dropped { .. })) => Err(ToolError::Crashed {
            message: e.to_string(),
        }),
        Ok(Ok(result)) => result,
    }
}

/// Runs a validated call of a live tool right here, within its timeout
/// (dropping the call's future when it passes). A panic in the tool is
/// caught and answered as [`ToolError::Crashed`], as a tool actor's restart
/// would be, so it never reaches the caller.
async fn call_live(live: &LiveEntry, call: ToolRequest) -> Result<Value, ToolError> {
    live.entry.validate(&call.args)?;
    let timeout = live.entry.timeout;
    let work = std::panic::AssertUnwindSafe(live.entry.tool.call(call.args, call.ctx));
    match tokio::time::timeout(timeout, futures::FutureExt::catch_unwind(work)).await {
        Err(_) => Err(ToolError::timed_out(timeout)),
        Ok(Err(_)) => Err(ToolError::Crashed {
            message: format!("tool `{}` panicked", live.entry.definition.name),
        }),
        Ok(Ok(result)) => result,
    }
}

/// The message that carries a tool call's outcome back to the model: the
/// result's JSON on success, [`ToolError::to_model_message`] marked as an
/// error otherwise.
pub(crate) fn tool_result(call_id: &str, result: &Result<Value, ToolError>) -> ToolResult {
    match result {
        Ok(value) => ToolResult {
            call_id: call_id.to_string(),
            content: value.to_string(),
            is_error: false,
        },
        Err(e) => ToolResult {
            call_id: call_id.to_string(),
            content: e.to_model_message(),
            is_error: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::escape::Escaped;

    #[test]
    fn escaped_leaves_plain_text_and_escapes_what_breaks_a_line() {
        assert_eq!(Escaped("remember").to_string(), "remember");
        assert_eq!(Escaped("née, 名前").to_string(), "née, 名前");
        assert_eq!(
            Escaped("x\n2030 ERROR y\r\u{1b}[2K\u{202e}").to_string(),
            "x\\u{a}2030 ERROR y\\u{d}\\u{1b}[2K\\u{202e}"
        );
    }
}
