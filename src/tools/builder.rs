//! Assembling the tool runtime: [`ToolsBuilder`] collects tools and checks
//! them, [`ToolSystem`] is the supervision subtree to mount, and [`Tools`]
//! is the handle agents call through.
//!
//! ```text
//! tools (one_for_one)
//! ├── tool:<name>    ToolActor, one per registered tool
//! └── router         ToolRouter
//! ```
//!
//! The runtime starts them as a tree of their own
//! (`ToolsBuilder::new()`, `.build()?.start()?`); the tests also mount the
//! subtree under a supervisor of theirs (`ToolSystem::into_parts`, then
//! `ToolMount::connect` once the tree has started).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use troupe_actors::{ActorRef, ChildSpec, Intensity, Strategy, SupervisorSpec, Tree};

use super::actor::ToolActor;
use super::error::ToolError;
use super::registry::{LiveTools, ToolEntry, ToolRegistry};
use super::router::{ToolRequest, ToolRouter};
use super::tool::{check_name, Tool};

/// The time limit of a tool call when neither the tool nor the builder says.
pub(crate) const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// The tool runtime could not be assembled or connected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolSetupError {
    /// A tool is unusable as declared (name, schema or timeout).
    #[error("tool `{name}`: {reason}")]
    InvalidTool {
        /// The tool's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Two tools share a name; calls are routed by name.
    #[error("two tools are named `{name}`")]
    Duplicate {
        /// The shared name.
        name: String,
    },
    /// The actors could not be started or found in the tree.
    #[error("tool runtime: {0}")]
    Start(String),
}

/// Collects tools and settings for the tool runtime.
pub(crate) struct ToolsBuilder {
    id: String,
    tools: Vec<Arc<dyn Tool>>,
    live: Option<Arc<LiveTools>>,
    default_timeout: Duration,
    mailbox: usize,
}

impl Default for ToolsBuilder {
    fn default() -> Self {
        ToolsBuilder {
            id: "tools".to_string(),
            tools: Vec::new(),
            live: None,
            default_timeout: DEFAULT_TOOL_TIMEOUT,
            mailbox: 1024,
        }
    }
}

impl std::fmt::Debug for ToolsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolsBuilder")
            .field("id", &self.id)
            .field(
                "tools",
                &self.tools.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field("default_timeout", &self.default_timeout)
            .finish()
    }
}

impl ToolsBuilder {
    /// An empty runtime whose supervisor is called `tools`.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Registers a tool.
    #[cfg(test)]
    pub(crate) fn tool(self, tool: impl Tool) -> Self {
        self.tool_arc(Arc::new(tool))
    }

    /// Registers a shared tool.
    pub(crate) fn tool_arc(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// Adds the tools that come and go while running (the MCP servers');
    /// their names are checked by whoever publishes them.
    pub(crate) fn live(mut self, live: Arc<LiveTools>) -> Self {
        self.live = Some(live);
        self
    }

    /// Checks every tool (name, unique, schema compiles, timeout) and
    /// compiles each schema once. Nothing starts yet.
    pub(crate) fn build(self) -> Result<ToolSystem, ToolSetupError> {
        let mut entries = BTreeMap::new();
        for tool in self.tools {
            let name = tool.name().to_string();
            check_name(&name).map_err(|reason| ToolSetupError::InvalidTool {
                name: name.clone(),
                reason,
            })?;
            if entries.contains_key(&name) {
                return Err(ToolSetupError::Duplicate { name });
            }
            let entry = ToolEntry::new(tool, self.default_timeout).map_err(|reason| {
                ToolSetupError::InvalidTool {
                    name: name.clone(),
                    reason,
                }
            })?;
            entries.insert(name, entry);
        }
        let registry = ToolRegistry {
            entries: Arc::new(entries),
            live: self.live,
        };
        // A tool crash is per call, not corrupted state, so restarting always
        // helps: the intensity only stops a tight crash loop from spinning.
        let mut spec = SupervisorSpec::new(self.id.clone())
            .strategy(Strategy::OneForOne)
            .intensity(Intensity::new(100, Duration::from_secs(10)));
        for (name, entry) in registry.entries.iter() {
            let tool = entry.tool.clone();
            spec = spec.child(
                ChildSpec::new(child_id(name), move || ToolActor { tool: tool.clone() })
                    .mailbox(self.mailbox),
            );
        }
        let for_router = registry.clone();
        spec = spec.child(
            ChildSpec::new("router", move || ToolRouter::new(for_router.clone()))
                .mailbox(self.mailbox),
        );
        Ok(ToolSystem {
            spec,
            mount: ToolMount { registry },
        })
    }
}

fn child_id(tool: &str) -> String {
    format!("tool:{tool}")
}

/// The checked tool runtime, not started: a supervisor spec to mount and the
/// means to connect to it once started.
pub(crate) struct ToolSystem {
    spec: SupervisorSpec,
    mount: ToolMount,
}

impl std::fmt::Debug for ToolSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSystem")
            .field("registry", &self.mount.registry)
            .finish()
    }
}

impl ToolSystem {
    /// The supervisor spec to add under a parent
    /// ([`SupervisorSpec::supervisor`]) and the [`ToolMount`] to call once
    /// the tree has started.
    #[cfg(test)]
    pub(crate) fn into_parts(self) -> (SupervisorSpec, ToolMount) {
        (self.spec, self.mount)
    }

    /// Starts the tools as a tree of their own on the current actix system
    /// (for a runtime that does not mount them, and for tests).
    pub(crate) fn start(self) -> Result<(Tree, Tools), ToolSetupError> {
        let tree = self
            .spec
            .start()
            .map_err(|e| ToolSetupError::Start(e.to_string()))?;
        let tools = self.mount.connect(&tree, "")?;
        Ok((tree, tools))
    }
}

/// Connects the router to the tool actors once the tree holding them runs.
pub(crate) struct ToolMount {
    registry: ToolRegistry,
}

impl std::fmt::Debug for ToolMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolMount")
            .field("registry", &self.registry)
            .finish()
    }
}

impl ToolMount {
    /// Looks up the actors in `tree`, where the tools supervisor sits at
    /// `path` (e.g. `"tools"`; `""` when it is the root), and returns the
    /// handle agents use. Call it right after the tree starts, before the
    /// first tool call (a call before it fails with a tool error).
    pub(crate) fn connect(self, tree: &Tree, path: &str) -> Result<Tools, ToolSetupError> {
        let at = |child: &str| {
            if path.is_empty() {
                child.to_string()
            } else {
                format!("{path}/{child}")
            }
        };
        for (name, entry) in self.registry.entries.iter() {
            let actor: ActorRef<ToolActor> = tree
                .actor(&at(&child_id(name)))
                .map_err(|e| ToolSetupError::Start(e.to_string()))?;
            if entry.actor.set(actor).is_err() {
                return Err(ToolSetupError::Start(
                    "this tool system is already connected".into(),
                ));
            }
        }
        let router = tree
            .actor::<ToolRouter>(&at("router"))
            .map_err(|e| ToolSetupError::Start(e.to_string()))?;
        Ok(Tools {
            router,
            registry: self.registry,
        })
    }
}

/// What agents hold to run tools: the router's address and the registry.
/// Cheap to clone; addresses stay valid across restarts.
#[derive(Clone)]
pub(crate) struct Tools {
    router: ActorRef<ToolRouter>,
    registry: ToolRegistry,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools")
            .field("registry", &self.registry)
            .finish()
    }
}

impl Tools {
    /// Runs one call through the router. Never fails other than with a
    /// [`ToolError`]: if the router itself was restarted mid-call, the call
    /// is reported as crashed.
    ///
    /// A call of a tool no actor hosts (a live tool, or an unknown name) is
    /// checked and run in the caller's task by the router's code, without
    /// the router's mailbox: nothing of it needs the router's actor.
    pub(crate) async fn call(&self, call: ToolRequest) -> Result<Value, ToolError> {
        if self.registry.live.is_some() && !self.registry.entries.contains_key(&call.name) {
            return super::router::run(self.registry.clone(), call).await;
        }
        match self.router.send(call).await {
            Ok(result) => result,
            Err(e) => Err(ToolError::Crashed {
                message: e.to_string(),
            }),
        }
    }

    /// The registered tools.
    pub(crate) fn registry(&self) -> &ToolRegistry {
        &self.registry
    }
}
