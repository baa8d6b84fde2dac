//! The MCP server actor: one per `[[mcpServers]]` entry, under the `mcp`
//! supervisor.
//!
//! Owns: the connection to its server (an rmcp `RunningService`: the child
//! process or the HTTP session, and the task reading it), held by the
//! future that watches it, so the connection lives exactly as long as this
//! instance; and the writing side of the server's [`McpLink`].
//!
//! Takes (all its own or its connection's; tools never message it, they
//! call through the link's `Peer`):
//! - [`Connected`]: the connection attempt begun at start ended;
//! - [`Listed`]: a listing of the server's tools ended;
//! - [`ToolsChanged`]: the server sent `notifications/tools/list_changed`;
//!   the tools are listed again;
//! - [`Closed`]: the connection ended (the process exited, the HTTP
//!   session was lost).
//!
//! Every start connects: a failed attempt, a failed listing or a closed
//! connection fails the instance, and the supervisor restarts it after its
//! backoff, which connects again. Meanwhile the link has no peer, so calls
//! wait (within their timeout) for the next connection.

use std::sync::Arc;

use rmcp::service::{Peer, RoleClient};
use troupe_actors::{Actor, Context, Handler, Message, Reply};

use super::catalog::Catalog;
use super::connect::{connect, list_tools, Connection, Listing, Notifier, ServerSetup};
use super::link::McpLink;

/// Hosts the connection to one MCP server; see the module docs.
pub(crate) struct McpServerActor {
    setup: Arc<ServerSetup>,
    link: Arc<McpLink>,
    /// Where every listing is published to the router.
    catalog: Arc<Catalog>,
    /// The live connection's peer, once connected.
    peer: Option<Peer<RoleClient>>,
}

impl McpServerActor {
    pub(crate) fn new(setup: Arc<ServerSetup>, link: Arc<McpLink>, catalog: Arc<Catalog>) -> Self {
        McpServerActor {
            setup,
            link,
            catalog,
            peer: None,
        }
    }

    fn failed(&mut self, ctx: &mut Context<'_, Self>, reason: String) {
        tracing::warn!(server = %self.setup.name, reason = %reason, "MCP server connection failed");
        self.link.update(|s| {
            s.peer = None;
            s.attempts += 1;
            s.last_error = Some(reason.clone());
        });
        ctx.fail(format!("MCP server `{}`: {reason}", self.setup.name));
    }

    fn list(&self, ctx: &mut Context<'_, Self>, peer: Peer<RoleClient>) {
        let setup = self.setup.clone();
        let me = ctx.address();
        ctx.spawn(async move {
            let result = list_tools(&peer, setup.allow.as_deref()).await;
            let _ = me.send(Listed(result)).await;
        });
    }
}

impl Actor for McpServerActor {
    fn started(&mut self, ctx: &mut Context<'_, Self>) {
        self.link.update(|s| s.peer = None);
        let setup = self.setup.clone();
        let me = ctx.address();
        let for_notifier = me.clone();
        let notifier = Notifier {
            on_tools_changed: Arc::new(move || {
                // A full mailbox already holds a re-listing to come.
                let _ = for_notifier.try_send(ToolsChanged);
            }),
        };
        ctx.spawn(async move {
            let attempt = tokio::time::timeout(setup.timeout, connect(&setup, notifier)).await;
            let result = match attempt {
                Ok(result) => result,
                Err(_) => Err(format!("no MCP handshake within {:?}", setup.timeout)),
            };
            let connection = match result {
                Ok(connection) => connection,
                Err(reason) => {
                    let _ = me.send(Connected(Err(reason))).await;
                    return;
                }
            };
            // This future holds the connection from here on: it ends (and
            // the child process is killed, the session closed) when this
            // instance does.
            let _ = me.send(Connected(Ok(connection.peer().clone()))).await;
            watch(connection, me).await;
        });
    }
}

/// Waits for the connection to end and reports it.
async fn watch(connection: Connection, me: troupe_actors::ActorRef<McpServerActor>) {
    let reason = match connection.waiting().await {
        Ok(reason) => format!("the connection ended ({reason:?})"),
        Err(e) => format!("the connection's task failed: {e}"),
    };
    let _ = me.send(Closed(reason)).await;
}

/// The connection attempt ended: the live connection's peer, or why not.
pub(crate) struct Connected(Result<Peer<RoleClient>, String>);

impl Message for Connected {
    type Result = ();
}

impl Handler<Connected> for McpServerActor {
    fn handle(&mut self, msg: Connected, ctx: &mut Context<'_, Self>) -> Reply<()> {
        match msg.0 {
            Ok(peer) => {
                self.peer = Some(peer.clone());
                self.list(ctx, peer);
            }
            Err(reason) => self.failed(ctx, reason),
        }
        Reply::ready(())
    }
}

/// A listing of the server's tools ended.
pub(crate) struct Listed(Result<Listing, String>);

impl Message for Listed {
    type Result = ();
}

impl Handler<Listed> for McpServerActor {
    fn handle(&mut self, msg: Listed, ctx: &mut Context<'_, Self>) -> Reply<()> {
        match msg.0 {
            Ok((tools, missing)) => {
                if !missing.is_empty() {
                    let names = missing.join(", ");
                    // At the first connection it refuses the start (a
                    // misspelt name); later the server may drop a tool.
                    if self.link.snapshot().attempts == 0 {
                        let reason =
                            format!("`tools` names tools the server does not offer: {names}");
                        self.failed(ctx, reason);
                        return Reply::ready(());
                    }
                    tracing::warn!(server = %self.setup.name, tools = %names,
                        "the MCP server no longer offers tools its `tools` names");
                }
                let peer = self.peer.clone();
                self.link.update(|s| {
                    if s.peer.is_none() {
                        s.attempts += 1;
                    }
                    s.peer = peer;
                    s.tools = Arc::new(tools);
                    s.last_error = None;
                });
                // Offered to agents from their next task on (after the
                // start, which publishes the first listings itself).
                self.catalog.refresh();
                tracing::info!(server = %self.setup.name, "MCP server connected and its tools listed");
            }
            Err(reason) => self.failed(ctx, reason),
        }
        Reply::ready(())
    }
}

/// The server said its tool list changed.
pub(crate) struct ToolsChanged;

impl Message for ToolsChanged {
    type Result = ();
}

impl Handler<ToolsChanged> for McpServerActor {
    fn handle(&mut self, _: ToolsChanged, ctx: &mut Context<'_, Self>) -> Reply<()> {
        if let Some(peer) = self.peer.clone() {
            self.list(ctx, peer);
        }
        Reply::ready(())
    }
}

/// The connection ended.
pub(crate) struct Closed(String);

impl Message for Closed {
    type Result = ();
}

impl Handler<Closed> for McpServerActor {
    fn handle(&mut self, msg: Closed, ctx: &mut Context<'_, Self>) -> Reply<()> {
        self.peer = None;
        self.failed(ctx, msg.0);
        Reply::ready(())
    }
}
