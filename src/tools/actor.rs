//! The tool actor: hosts one registered [`Tool`].
//!
//! Owns: the `Arc<dyn Tool>`. Takes: [`RunTool`] (from the ToolRouter only),
//! answered with the tool's `Result<Value, ToolError>`.
//!
//! Calls run as reply futures, so several calls of one tool run at once and
//! the mailbox keeps flowing. Each call is limited by the timeout the router
//! passes; when it passes the call's future is dropped, so the work stops.
//! A panic in `Tool::call` restarts this actor (troupe-actors catches it);
//! every call it was running then answers the router with a call error,
//! which the router reports as [`ToolError::Crashed`]. Other tools, the
//! router and the agents are untouched.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use troupe_actors::{Actor, Context, Handler, Message, Reply};

use super::error::ToolError;
use super::tool::{Tool, ToolContext};

/// Hosts one tool.
pub(crate) struct ToolActor {
    pub(crate) tool: Arc<dyn Tool>,
}

impl Actor for ToolActor {}

/// Run one validated call.
pub(crate) struct RunTool {
    pub(crate) args: Value,
    pub(crate) ctx: ToolContext,
    pub(crate) timeout: Duration,
}

impl Message for RunTool {
    type Result = Result<Value, ToolError>;
}

impl Handler<RunTool> for ToolActor {
    fn handle(
        &mut self,
        msg: RunTool,
        _: &mut Context<'_, Self>,
    ) -> Reply<Result<Value, ToolError>> {
        let tool = self.tool.clone();
        Reply::future(async move {
            match tokio::time::timeout(msg.timeout, tool.call(msg.args, msg.ctx)).await {
                Ok(result) => result,
                Err(_) => Err(ToolError::timed_out(msg.timeout)),
            }
        })
    }
}
