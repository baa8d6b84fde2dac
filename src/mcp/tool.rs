//! [`McpTool`]: one tool of an MCP server, registered with the ToolRouter
//! like any other: named `<server>_<tool>`, its schema the server's
//! `inputSchema` (so the router validates the arguments before the call),
//! its timeout the server's `timeout`.
//!
//! The router calls it in the caller's task (it is one of the router's live
//! tools), after checking the agent's permission and the arguments against
//! the schema of the server's last listing. A call waits for the server's
//! connection (within the call's timeout: the server may be restarting),
//! then sends `tools/call` through the
//! connection's `Peer`. What comes back becomes the seed's
//! `{"ok":true,"data":…}`; an `isError` result, a JSON-RPC error or a
//! connection lost mid-call a [`ToolError`] the model sees.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{Peer, RoleClient, ServiceError};
use serde_json::{Map, Value};

use crate::tools::{Tool, ToolContext, ToolError};

use super::link::{McpLink, RemoteTool};

/// The longest text of a server's error passed to the model.
const MAX_ERROR_CHARS: usize = 2_000;

/// One tool of one MCP server, as one listing gave it; see the module
/// docs. A listing that changes it makes a new one (see the catalog).
pub(crate) struct McpTool {
    /// `<server>_<tool>`: what agents and the model call it.
    name: String,
    /// The server's own name for it.
    remote: String,
    listed: RemoteTool,
    timeout: Duration,
    link: Arc<McpLink>,
    /// Whether every call waits for approval (the server's `approval`).
    approval: bool,
}

impl McpTool {
    pub(crate) fn new(
        name: String,
        remote: String,
        listed: RemoteTool,
        timeout: Duration,
        link: Arc<McpLink>,
        approval: bool,
    ) -> Self {
        McpTool {
            name,
            remote,
            listed,
            timeout,
            link,
            approval,
        }
    }

    /// The live connection: at once when there is one (a read of the
    /// link), else once the server's actor has connected again (the caller
    /// bounds the wait with the call's timeout).
    async fn peer(&self) -> Result<Peer<RoleClient>, ToolError> {
        if let Some(peer) = self.link.peer() {
            return Ok(peer);
        }
        let mut state = self.link.subscribe();
        loop {
            if let Some(peer) = state
                .borrow_and_update()
                .peer
                .as_ref()
                .filter(|p| !p.is_transport_closed())
            {
                return Ok(peer.clone());
            }
            // The sender lives in the link, which this tool holds.
            if state.changed().await.is_err() {
                return Err(ToolError::failed("the MCP server's link is gone"));
            }
        }
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.listed.description
    }

    fn parameters(&self) -> Value {
        self.listed.schema.clone()
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    fn requires_approval(&self) -> bool {
        self.approval
    }

    async fn call(&self, args: Value, _: ToolContext) -> Result<Value, ToolError> {
        let peer = self.peer().await?;
        let Value::Object(arguments) = args else {
            return Err(ToolError::invalid_argument("", "must be a JSON object"));
        };
        let params = CallToolRequestParams::new(self.remote.clone()).with_arguments(arguments);
        match peer.call_tool(params).await {
            Ok(result) => answer(result),
            Err(ServiceError::McpError(e)) => Err(ToolError::failed(cut(format!(
                "the MCP server `{}` refused the call: {}",
                self.link.server, e.message
            )))),
            Err(e) if peer.is_transport_closed() || matches!(e, ServiceError::TransportClosed) => {
                Err(ToolError::Crashed {
                    message: format!(
                        "the connection to MCP server `{}` ended during the call; it is being restarted",
                        self.link.server
                    ),
                })
            }
            Err(e) => Err(ToolError::failed(cut(format!(
                "MCP server `{}`: {e}",
                self.link.server
            )))),
        }
    }
}

/// A `tools/call` result as the model sees it: `structuredContent` when
/// the server gives it, else the text (the blocks joined by newlines),
/// else the content blocks as JSON; an `isError` result is a failure.
fn answer(result: CallToolResult) -> Result<Value, ToolError> {
    let texts: Option<Vec<&str>> = result
        .content
        .iter()
        .map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect();
    if result.is_error == Some(true) {
        let message = match (&texts, &result.structured_content) {
            (Some(texts), _) if !texts.is_empty() => texts.join("\n"),
            (_, Some(structured)) => structured.to_string(),
            _ => serde_json::to_string(&result.content).unwrap_or_default(),
        };
        return Err(ToolError::failed(cut(message)));
    }
    let data = match (result.structured_content, texts) {
        (Some(structured), _) => structured,
        (None, Some(texts)) if texts.len() == 1 => Value::String(texts[0].to_string()),
        (None, Some(texts)) => Value::String(texts.join("\n")),
        (None, None) => serde_json::to_value(&result.content)
            .map_err(|e| ToolError::failed(format!("the MCP result cannot be read: {e}")))?,
    };
    // `ok_answer`'s shape, built around `data` without copying it.
    let mut answer = Map::with_capacity(2);
    answer.insert("ok".into(), Value::Bool(true));
    answer.insert("data".into(), data);
    Ok(Value::Object(answer))
}

fn cut(mut text: String) -> String {
    if text.chars().count() > MAX_ERROR_CHARS {
        text = text.chars().take(MAX_ERROR_CHARS).collect();
        text.push('…');
    }
    text
}
