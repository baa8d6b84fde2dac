//! [`Catalog`]: the MCP servers' tools as the ToolRouter offers them, made
//! again from every server's last listing each time one of them lists its
//! tools.
//!
//! At start ([`Catalog::first`]) a name that is not a valid tool name or
//! that another tool has refuses the start, naming both; later (a server's
//! `list_changed`, a reconnection) such a tool is left out with a warning
//! naming it, and the rest is published: the server actor never fails for
//! it. A name already offered keeps its owner, so a tool a server adds
//! later cannot take the name of a tool agents already use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::tools::{check_name, LiveEntry, LiveTools, ToolEntry};

use super::connect::ServerSetup;
use super::link::{McpLink, RemoteTool};
use super::tool::McpTool;
use super::McpError;

/// Every server's tools, published to the router's live tools.
pub(crate) struct Catalog {
    servers: Vec<(Arc<ServerSetup>, Arc<McpLink>)>,
    /// The built-in and custom tools' names, known once the start checked
    /// the first listings; nothing is published before.
    taken: OnceLock<BTreeSet<String>>,
    live: Arc<LiveTools>,
    /// One refresh at a time, so the last listing's is the one published.
    refreshing: Mutex<()>,
}

impl Catalog {
    pub(crate) fn new(servers: Vec<(Arc<ServerSetup>, Arc<McpLink>)>) -> Arc<Self> {
        let live = LiveTools::new(servers.iter().map(|(s, _)| s.name.clone()));
        Arc::new(Catalog {
            servers,
            taken: OnceLock::new(),
            live,
            refreshing: Mutex::new(()),
        })
    }

    pub(crate) fn servers(&self) -> &[(Arc<ServerSetup>, Arc<McpLink>)] {
        &self.servers
    }

    /// The first publication, at start: `taken` are the other tools'
    /// names; any tool whose name is invalid or taken, or whose schema does
    /// not compile, refuses the start.
    pub(crate) fn first(&self, taken: BTreeSet<String>) -> Result<Arc<LiveTools>, McpError> {
        let _one = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let tools = self.build(&taken, true)?;
        // Set once: a second start of the same catalog does not happen.
        let _ = self.taken.set(taken);
        self.live.publish(tools);
        Ok(self.live.clone())
    }

    /// Publishes the servers' tools as last listed (after the start; before
    /// it, the start's check does it). Problems are logged, never fatal.
    pub(crate) fn refresh(&self) {
        let Some(taken) = self.taken.get() else {
            return;
        };
        let _one = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match self.build(taken, false) {
            Ok(tools) => {
                let before = self.live.snapshot();
                let added: Vec<&String> =
                    tools.keys().filter(|n| !before.contains_key(*n)).collect();
                let removed: Vec<&String> =
                    before.keys().filter(|n| !tools.contains_key(*n)).collect();
                if !added.is_empty() || !removed.is_empty() {
                    tracing::info!(?added, ?removed, "the MCP servers' tools changed");
                }
                self.live.publish(tools);
            }
            // Not reached: a lenient build skips what it cannot use.
            Err(e) => tracing::warn!(error = %e, "the MCP servers' tools cannot be published"),
        }
    }

    /// The entries for every server's listed tools. `strict`: the first
    /// problem is the error; else a tool with a problem is left out with a
    /// warning.
    fn build(
        &self,
        taken: &BTreeSet<String>,
        strict: bool,
    ) -> Result<BTreeMap<String, Arc<LiveEntry>>, McpError> {
        let before = self.live.snapshot();
        let mut candidates: Vec<(&Arc<ServerSetup>, &Arc<McpLink>, String, RemoteTool)> =
            Vec::new();
        for (setup, link) in &self.servers {
            let state = link.snapshot();
            for (remote, listed) in state.tools.iter() {
                candidates.push((setup, link, remote.clone(), listed.clone()));
            }
        }
        // A name offered already keeps its owner: those go first.
        let owned = |setup: &ServerSetup, remote: &str| {
            before
                .get(&format!("{}_{remote}", setup.name))
                .is_some_and(|l| l.group == setup.name)
        };
        candidates.sort_by_key(|(setup, _, remote, _)| !owned(setup, remote));

        let mut out: BTreeMap<String, Arc<LiveEntry>> = BTreeMap::new();
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        for (setup, link, remote, listed) in candidates {
            let name = format!("{}_{remote}", setup.name);
            let other = if taken.contains(&name) {
                Some("a built-in or custom tool".to_string())
            } else {
                owners.get(&name).cloned()
            };
            let problem = match (name_problem(&name), other) {
                (Err(reason), _) => Some(McpError::InvalidName {
                    server: setup.name.clone(),
                    tool: remote.clone(),
                    name: name.clone(),
                    reason,
                }),
                (Ok(()), Some(other)) => Some(McpError::NameClash {
                    server: setup.name.clone(),
                    tool: remote.clone(),
                    name: name.clone(),
                    other,
                }),
                (Ok(()), None) => None,
            };
            let entry = match problem {
                Some(problem) => Err(problem),
                None => self.entry(&before, setup, link, &name, &remote, listed),
            };
            match entry {
                Ok(entry) => {
                    owners.insert(
                        name.clone(),
                        format!("tool `{remote}` of MCP server `{}`", setup.name),
                    );
                    out.insert(name, entry);
                }
                Err(e) if strict => return Err(e),
                Err(e) => {
                    tracing::warn!(server = %setup.name, tool = %remote, name = %name,
                        error = %e, "an MCP tool is left out");
                }
            }
        }
        Ok(out)
    }

    /// The entry of one tool: the one offered now when the server lists it
    /// unchanged (its schema compiled once), else a new one.
    fn entry(
        &self,
        before: &BTreeMap<String, Arc<LiveEntry>>,
        setup: &Arc<ServerSetup>,
        link: &Arc<McpLink>,
        name: &str,
        remote: &str,
        listed: RemoteTool,
    ) -> Result<Arc<LiveEntry>, McpError> {
        if let Some(existing) = before.get(name).filter(|l| {
            l.group == setup.name
                && l.entry.definition.description == listed.description
                && l.entry.definition.parameters == listed.schema
        }) {
            return Ok(existing.clone());
        }
        let approval = setup.approval.iter().any(|t| t == "*" || t == remote);
        let tool = McpTool::new(
            name.to_string(),
            remote.to_string(),
            listed,
            setup.timeout,
            link.clone(),
            approval,
        );
        let entry = ToolEntry::new(Arc::new(tool), setup.timeout).map_err(|reason| {
            McpError::InvalidTool {
                server: setup.name.clone(),
                tool: remote.to_string(),
                reason,
            }
        })?;
        Ok(Arc::new(LiveEntry {
            entry,
            group: setup.name.clone(),
        }))
    }
}

/// What is wrong with `name` as a tool name, in words for the operator.
fn name_problem(name: &str) -> Result<(), String> {
    if check_name(name).is_ok() {
        return Ok(());
    }
    Err(if name.len() > 64 {
        format!(
            "has {} characters, more than the 64 the model APIs accept",
            name.len()
        )
    } else {
        "holds characters other than the ASCII letters, digits, `_` and `-` \
         the model APIs accept"
            .to_string()
    })
}
