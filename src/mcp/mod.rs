//! MCP client tools: the tools of the `[[mcpServers]]` of the config,
//! reached with `rmcp` (the official Rust SDK) and given to agents through
//! the ToolRouter like the built-in tools.
//!
//! ```text
//! mcp (one_for_one)
//! └── server:<name>   McpServerActor: the connection to one server
//! ```
//!
//! Each server's connection is a supervised actor ([`actor`]): it connects
//! when it starts (a child process on stdio, or streamable HTTP), lists the
//! server's tools, lists them again on `notifications/tools/list_changed`,
//! and fails when the connection ends, so its supervisor restarts it (with
//! backoff) and it connects again. What it has (the live `Peer`, the tools
//! listed) it shares with that server's tools through an [`McpLink`].
//!
//! At start ([`McpServers::start`]) every server must connect and list its
//! tools within its timeout; each (allowed) tool becomes an `McpTool`
//! named `<server>_<tool>`, and a name that is not a valid tool name
//! (letters, digits, `_`, `-`, at most 64 characters) or that another tool
//! already has is refused, naming both. The tools are the router's live
//! tools ([`LiveTools`]): every later listing publishes them again
//! ([`catalog`]), so a tool a server adds is offered to the agents allowed
//! it, and one it drops is unknown from then on; a later tool with an
//! unusable name is left out with a warning.

mod actor;
mod catalog;
mod connect;
mod link;
mod tool;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use troupe_actors::{BackoffPolicy, ChildSpec, Intensity, Strategy, SupervisorSpec, Tree};

use crate::config::McpServerConfig;
use crate::tools::LiveTools;

use actor::McpServerActor;
use catalog::Catalog;
use connect::ServerSetup;
use link::McpLink;

/// Why the MCP servers could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// A server's settings cannot work.
    #[error("MCP server `{server}`: `{key}`: {reason}")]
    Config {
        /// The server's name.
        server: String,
        /// The key at fault (below `mcpServers[…]`).
        key: String,
        /// Why.
        reason: String,
    },
    /// Two servers have the same name.
    #[error("two MCP servers are named `{server}`")]
    Duplicate {
        /// The name.
        server: String,
    },
    /// A server could not be reached, or its tools listed, at start.
    #[error("MCP server `{server}` is not usable: {reason}")]
    Unreachable {
        /// The server's name.
        server: String,
        /// The last attempt's error.
        reason: String,
    },
    /// A server's tool would get a name the model APIs refuse.
    #[error("MCP server `{server}`: tool `{tool}` would be named `{name}`, which {reason}")]
    InvalidName {
        /// The server's name.
        server: String,
        /// The server's name of the tool.
        tool: String,
        /// `<server>_<tool>`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A server's tool would get the name another tool has.
    #[error(
        "MCP server `{server}`: tool `{tool}` would be named `{name}`, which {other} already has"
    )]
    NameClash {
        /// The server's name.
        server: String,
        /// The server's name of the tool.
        tool: String,
        /// `<server>_<tool>`.
        name: String,
        /// Who has it: a built-in or custom tool, or another server's.
        other: String,
    },
    /// A server's tool has an input schema that cannot be compiled.
    #[error("MCP server `{server}`: tool `{tool}`: {reason}")]
    InvalidTool {
        /// The server's name.
        server: String,
        /// The server's name of the tool.
        tool: String,
        /// Why its schema is unusable.
        reason: String,
    },
    /// The actors could not be started.
    #[error("the MCP actors could not start: {0}")]
    Start(String),
}

/// The MCP servers, started: their tree and their tools.
pub(crate) struct McpServers {
    tree: Option<Tree>,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for McpServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.catalog.servers().iter().map(|(_, link)| link))
            .finish()
    }
}

/// How an MCP server actor is restarted: soon at first, then backing off
/// to a try every 30 s while the server stays down.
fn restart_backoff() -> BackoffPolicy {
    BackoffPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(30),
        multiplier: 2.0,
        jitter: 0.2,
        immediate_first: true,
        reset_after: Duration::from_secs(30),
    }
}

impl McpServers {
    /// Starts one actor per server and waits until each has connected and
    /// listed its tools, or failed a first time (then every actor is
    /// stopped and the first failure returned).
    pub(crate) async fn start(configs: &[McpServerConfig]) -> Result<Self, McpError> {
        let mut names = BTreeSet::new();
        let mut servers = Vec::new();
        for config in configs {
            if !names.insert(config.name.as_str()) {
                return Err(McpError::Duplicate {
                    server: config.name.clone(),
                });
            }
            let setup = Arc::new(ServerSetup::resolve(config)?);
            servers.push((setup.clone(), McpLink::new(&config.name)));
        }
        let catalog = Catalog::new(servers);
        if catalog.servers().is_empty() {
            return Ok(McpServers {
                tree: None,
                catalog,
            });
        }
        // A server that stays down is retried for ever, 30 s apart: the
        // backoff bounds the rate, so the intensity never escalates.
        let mut spec = SupervisorSpec::new("mcp")
            .strategy(Strategy::OneForOne)
            .intensity(Intensity::new(1_000, Duration::from_secs(60)));
        for (setup, link) in catalog.servers() {
            let (setup, link, for_actor) = (setup.clone(), link.clone(), catalog.clone());
            spec = spec.child(
                ChildSpec::new(format!("server:{}", setup.name), move || {
                    McpServerActor::new(setup.clone(), link.clone(), for_actor.clone())
                })
                .backoff(restart_backoff()),
            );
        }
        let tree = spec.start().map_err(|e| McpError::Start(e.to_string()))?;
        let started = McpServers {
            tree: Some(tree),
            catalog,
        };
        if let Err(e) = started.first_listings().await {
            started.shutdown().await;
            return Err(e);
        }
        Ok(started)
    }

    /// Waits for every server's first attempt to end.
    async fn first_listings(&self) -> Result<(), McpError> {
        for (setup, link) in self.catalog.servers() {
            let mut state = link.subscribe();
            // The attempt itself is bounded by the server's timeout.
            let ended = state
                .wait_for(|s| s.attempts > 0)
                .await
                .map(|s| s.clone())
                .map_err(|_| McpError::Start("the server's link is gone".into()))?;
            if ended.peer.is_none() {
                return Err(McpError::Unreachable {
                    server: setup.name.clone(),
                    reason: ended
                        .last_error
                        .unwrap_or_else(|| "it did not connect".into()),
                });
            }
        }
        Ok(())
    }

    /// The servers' tools as listed at start, named `<server>_<tool>`,
    /// published as the router's live tools, which follow every later
    /// listing; `taken` are the names of the other tools. A name that is
    /// invalid or taken, or a schema that does not compile, is refused.
    pub(crate) fn live(&self, taken: BTreeSet<String>) -> Result<Arc<LiveTools>, McpError> {
        self.catalog.first(taken)
    }

    /// The tree to keep with the runtime's (none without servers).
    pub(crate) fn into_tree(self) -> Option<Tree> {
        self.tree
    }

    /// Stops every actor (and so every server process).
    pub(crate) async fn shutdown(&self) {
        if let Some(tree) = &self.tree {
            tree.shutdown().await;
        }
    }
}
