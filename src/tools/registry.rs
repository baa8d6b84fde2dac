//! [`ToolRegistry`]: the registered tools, their definitions for model
//! requests, and each tool's compiled argument validator.
//!
//! Built once by [`ToolsBuilder`](super::ToolsBuilder) and shared (cheap to
//! clone) by the router and the agents; it does not change while running, so
//! every schema is compiled exactly once, at registration.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use troupe_actors::ActorRef;

use super::actor::ToolActor;
use super::error::{ArgumentIssue, ToolError, MAX_ISSUES};
use super::tool::{Tool, ToolDefinition};

/// The longest validator message passed on; a message may quote the
/// offending value, and a model's 50 kB string should not come back whole.
const MAX_ISSUE_CHARS: usize = 300;

/// One registered tool.
pub(crate) struct ToolEntry {
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) definition: ToolDefinition,
    pub(crate) validator: jsonschema::Validator,
    pub(crate) timeout: Duration,
    /// Filled when the tool actors are connected after the tree starts;
    /// addresses stay valid across restarts, so this is set once.
    pub(crate) actor: OnceLock<ActorRef<ToolActor>>,
}

impl ToolEntry {
    pub(crate) fn new(tool: Arc<dyn Tool>, default_timeout: Duration) -> Result<Self, String> {
        let parameters = tool.parameters();
        let validator = jsonschema::validator_for(&parameters).map_err(|e| e.to_string())?;
        let timeout = tool.timeout().unwrap_or(default_timeout);
        if timeout.is_zero() {
            return Err("timeout must be greater than zero".into());
        }
        Ok(ToolEntry {
            definition: ToolDefinition {
                name: tool.name().to_string(),
                description: tool.description().to_string(),
                parameters,
            },
            tool,
            validator,
            timeout,
            actor: OnceLock::new(),
        })
    }

    /// Checks `args` against the tool's schema, listing what is wrong.
    pub(crate) fn validate(&self, args: &Value) -> Result<(), ToolError> {
        if self.validator.is_valid(args) {
            return Ok(());
        }
        let issues: Vec<ArgumentIssue> = self
            .validator
            .iter_errors(args)
            .take(MAX_ISSUES)
            .map(|e| ArgumentIssue {
                path: e.instance_path().as_str().to_string(),
                message: truncate(e.to_string()),
            })
            .collect();
        Err(ToolError::InvalidArguments { issues })
    }
}

fn truncate(mut s: String) -> String {
    if s.chars().count() > MAX_ISSUE_CHARS {
        s = s.chars().take(MAX_ISSUE_CHARS).collect();
        s.push('…');
    }
    s
}

/// The tools a runtime offers, by name.
///
/// Agents take their tool definitions for model requests from here
/// ([`definitions_for`](Self::definitions_for)), and a config loader checks
/// agents' tool lists against it ([`unknown`](Self::unknown)).
#[derive(Clone)]
pub(crate) struct ToolRegistry {
    pub(crate) entries: Arc<BTreeMap<String, ToolEntry>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.names())
            .finish()
    }
}

impl ToolRegistry {
    /// Every tool's name, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Whether a tool of that name is registered.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// One tool's definition.
    pub(crate) fn get(&self, name: &str) -> Option<&ToolDefinition> {
        self.entries.get(name).map(|e| &e.definition)
    }

    /// Every tool's definition, sorted by name.
    #[cfg(test)]
    pub(crate) fn definitions(&self) -> Vec<ToolDefinition> {
        self.entries
            .values()
            .map(|e| e.definition.clone())
            .collect()
    }

    /// The definitions of the tools in `allowed` that exist, in `allowed`'s
    /// order: what an agent's model request offers.
    pub(crate) fn definitions_for(&self, allowed: &[String]) -> std::sync::Arc<[ToolDefinition]> {
        allowed
            .iter()
            .filter_map(|name| self.get(name).cloned())
            .collect()
    }

    /// Whether every call of `name` needs a person's approval (the tool
    /// says so: [`Tool::requires_approval`]).
    pub(crate) fn requires_approval(&self, name: &str) -> bool {
        self.entries
            .get(name)
            .is_some_and(|e| e.tool.requires_approval())
    }

    /// The names in `names` that are not registered (a config naming a tool
    /// that does not exist should be refused at start).
    pub(crate) fn unknown(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|n| !self.contains(n))
            .cloned()
            .collect()
    }

    /// The time limit of one call of `name`.
    #[cfg(test)]
    pub(crate) fn timeout(&self, name: &str) -> Option<Duration> {
        self.entries.get(name).map(|e| e.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_registry_can_cross_threads() {
        assert_send_sync::<ToolRegistry>();
    }

    #[test]
    fn long_messages_are_cut() {
        let s = truncate("x".repeat(1000));
        assert_eq!(s.chars().count(), MAX_ISSUE_CHARS + 1);
        assert_eq!(truncate("short".into()), "short");
    }
}
