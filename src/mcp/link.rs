//! [`McpLink`]: what an MCP server's actor shares with that server's tools:
//! the live connection (an rmcp `Peer`), the tools the server offers now,
//! and how the connection attempts went.
//!
//! The actor is the only writer; tools read it on every call (a `watch`
//! channel: a read is a read lock, and a call waiting for a reconnection
//! is woken by the actor's next write).

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::service::{Peer, RoleClient};
use serde_json::Value;
use tokio::sync::watch;

/// One tool as the server lists it (by its own name).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RemoteTool {
    /// The server's description ("" when it gives none).
    pub(crate) description: String,
    /// Its `inputSchema`.
    pub(crate) schema: Value,
}

/// What the connection is at one moment.
#[derive(Clone, Default)]
pub(crate) struct LinkState {
    /// The connection, once connected and listed; `None` while
    /// (re)connecting.
    pub(crate) peer: Option<Peer<RoleClient>>,
    /// The tools offered by the last listing, by the server's names (only
    /// those of the config's allow-list).
    pub(crate) tools: Arc<BTreeMap<String, RemoteTool>>,
    /// How many connection attempts have ended (connected and listed, or
    /// failed).
    pub(crate) attempts: u64,
    /// Why the last attempt or connection failed.
    pub(crate) last_error: Option<String>,
}

/// Shared between one server's actor (which writes) and its tools.
pub(crate) struct McpLink {
    /// The server's name.
    pub(crate) server: String,
    state: watch::Sender<LinkState>,
}

impl McpLink {
    pub(crate) fn new(server: impl Into<String>) -> Arc<Self> {
        Arc::new(McpLink {
            server: server.into(),
            state: watch::Sender::new(LinkState::default()),
        })
    }

    /// Changes the state and wakes whoever waits on it.
    pub(crate) fn update(&self, f: impl FnOnce(&mut LinkState)) {
        self.state.send_modify(f);
    }

    /// A receiver to read or wait on the state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    /// The live connection's peer now, if there is one and it is open.
    pub(crate) fn peer(&self) -> Option<Peer<RoleClient>> {
        self.state
            .borrow()
            .peer
            .as_ref()
            .filter(|p| !p.is_transport_closed())
            .cloned()
    }

    /// The state now.
    pub(crate) fn snapshot(&self) -> LinkState {
        self.state.borrow().clone()
    }
}

impl std::fmt::Debug for McpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("McpLink")
            .field("server", &self.server)
            .field("connected", &state.peer.is_some())
            .field("tools", &state.tools.keys().collect::<Vec<_>>())
            .field("attempts", &state.attempts)
            .finish()
    }
}
