//! [`ToolRegistry`]: the registered tools, their definitions for model
//! requests, and each tool's compiled argument validator.
//!
//! Built once by [`ToolsBuilder`](super::ToolsBuilder) and shared (cheap to
//! clone) by the router and the agents. Its fixed part (built-in and custom
//! tools, each hosted by a tool actor) does not change while running, so
//! every schema is compiled exactly once, at registration. Its live part
//! ([`LiveTools`]: the MCP servers' tools) is replaced whole when a server
//! lists its tools again; each entry's schema is compiled once per listing
//! that changed it, never per call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
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

/// One tool of the live part: its entry and the group (MCP server) it
/// belongs to.
pub(crate) struct LiveEntry {
    pub(crate) entry: ToolEntry,
    /// The group: an agent naming `<group>_*` may use every tool of it.
    pub(crate) group: String,
}

/// The tools that come and go while the runtime runs (the MCP servers'),
/// by group. Their calls run in the caller's task, not on a tool actor
/// (see [`Tools::call`](super::Tools::call)): such a tool is a client of a
/// connection some other actor owns, so a hop to an actor of its own would
/// only add a mailbox and a wake-up to every call.
pub(crate) struct LiveTools {
    groups: BTreeSet<String>,
    current: RwLock<Arc<BTreeMap<String, Arc<LiveEntry>>>>,
    /// Bumped by every [`publish`](Self::publish): agents rebuild what they
    /// offer the model when it moved.
    version: AtomicU64,
}

impl LiveTools {
    /// An empty set whose tools will belong to `groups`.
    pub(crate) fn new(groups: impl IntoIterator<Item = String>) -> Arc<Self> {
        Arc::new(LiveTools {
            groups: groups.into_iter().collect(),
            current: RwLock::default(),
            version: AtomicU64::new(0),
        })
    }

    /// Replaces the whole set.
    pub(crate) fn publish(&self, tools: BTreeMap<String, Arc<LiveEntry>>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tools);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The set now.
    pub(crate) fn snapshot(&self) -> Arc<BTreeMap<String, Arc<LiveEntry>>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One tool now.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<LiveEntry>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The group `pattern` stands for when it is `<group>_*` of a group of
    /// this set.
    fn wildcard<'a>(&self, pattern: &'a str) -> Option<&'a str> {
        pattern
            .strip_suffix("_*")
            .filter(|g| self.groups.contains(*g))
    }

    /// Whether `name` is, or may become, one of this set's tools: a
    /// `<group>_*` or a name starting `<group>_`.
    fn covers(&self, name: &str) -> bool {
        self.wildcard(name).is_some()
            || self.groups.iter().any(|g| {
                name.strip_prefix(g.as_str())
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|rest| !rest.is_empty())
            })
    }
}

impl std::fmt::Debug for LiveTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTools")
            .field("groups", &self.groups)
            .field("tools", &self.snapshot().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The tools a runtime offers, by name.
///
/// Agents take their tool definitions for model requests from here
/// ([`definitions_for`](Self::definitions_for)), and a config loader checks
/// agents' tool lists against it ([`unknown`](Self::unknown)).
#[derive(Clone)]
pub(crate) struct ToolRegistry {
    pub(crate) entries: Arc<BTreeMap<String, ToolEntry>>,
    /// The live part, when there is one.
    pub(crate) live: Option<Arc<LiveTools>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.names())
            .finish()
    }
}

impl ToolRegistry {
    /// Every tool's name now, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        if let Some(live) = &self.live {
            names.extend(live.snapshot().keys().cloned());
            names.sort();
        }
        names
    }

    /// Whether a tool of that name is registered now.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
            || self
                .live
                .as_ref()
                .is_some_and(|l| l.snapshot().contains_key(name))
    }

    /// One tool's definition now.
    pub(crate) fn get(&self, name: &str) -> Option<ToolDefinition> {
        match self.entries.get(name) {
            Some(e) => Some(e.definition.clone()),
            None => self.live_entry(name).map(|l| l.entry.definition.clone()),
        }
    }

    /// One tool of the live part, now.
    pub(crate) fn live_entry(&self, name: &str) -> Option<Arc<LiveEntry>> {
        self.live.as_ref().and_then(|l| l.get(name))
    }

    /// A number that moves whenever the live part changes.
    pub(crate) fn version(&self) -> u64 {
        self.live
            .as_ref()
            .map_or(0, |l| l.version.load(Ordering::Acquire))
    }

    /// An agent's tool list with each `<group>_*` replaced by the group's
    /// tools now (in name order); the other names as they are, each once.
    pub(crate) fn expand(&self, allowed: &[String]) -> Arc<[String]> {
        let snapshot = self.live.as_ref().map(|l| (l, l.snapshot()));
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(allowed.len());
        for name in allowed {
            let group = snapshot.as_ref().and_then(|(l, _)| l.wildcard(name));
            match (group, &snapshot) {
                (Some(group), Some((_, tools))) => {
                    for (tool, live) in tools.iter() {
                        if live.group == group && seen.insert(tool.as_str()) {
                            out.push(tool.clone());
                        }
                    }
                }
                _ => {
                    if seen.insert(name.as_str()) {
                        out.push(name.clone());
                    }
                }
            }
        }
        out.into()
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
        allowed.iter().filter_map(|name| self.get(name)).collect()
    }

    /// Whether every call of `name` needs a person's approval (the tool
    /// says so: [`Tool::requires_approval`]).
    pub(crate) fn requires_approval(&self, name: &str) -> bool {
        match self.entries.get(name) {
            Some(e) => e.tool.requires_approval(),
            None => self
                .live_entry(name)
                .is_some_and(|l| l.entry.tool.requires_approval()),
        }
    }

    /// The names in `names` that are not registered and cannot become so (a
    /// config naming a tool that does not exist should be refused at
    /// start). A `<group>_*` of the live part, or a name in a group's
    /// prefix that its server does not offer yet, is not unknown: the
    /// server may list it later.
    pub(crate) fn unknown(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|n| !self.contains(n) && !self.live.as_ref().is_some_and(|l| l.covers(n)))
            .cloned()
            .collect()
    }

    /// The time limit of one call of `name`.
    #[cfg(test)]
    pub(crate) fn timeout(&self, name: &str) -> Option<Duration> {
        match self.entries.get(name) {
            Some(e) => Some(e.timeout),
            None => self.live_entry(name).map(|l| l.entry.timeout),
        }
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

    struct Named(&'static str);

    #[async_trait::async_trait]
    impl Tool for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn description(&self) -> &str {
            ""
        }
        fn parameters(&self) -> Value {
            serde_json::json!({"type": "object"})
        }
        async fn call(&self, _: Value, _: super::super::ToolContext) -> Result<Value, ToolError> {
            Ok(Value::Null)
        }
    }

    fn live(tools: &[(&'static str, &str)]) -> BTreeMap<String, Arc<LiveEntry>> {
        tools
            .iter()
            .map(|(name, group)| {
                let entry = ToolEntry::new(Arc::new(Named(name)), Duration::from_secs(1)).unwrap();
                (
                    name.to_string(),
                    Arc::new(LiveEntry {
                        entry,
                        group: group.to_string(),
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn a_group_wildcard_follows_the_live_tools_and_names_may_come_later() {
        let fixed = ToolEntry::new(Arc::new(Named("a_local")), Duration::from_secs(1)).unwrap();
        let set = LiveTools::new(["a".to_string(), "a_b".to_string()]);
        set.publish(live(&[("a_x", "a"), ("a_b_y", "a_b")]));
        let registry = ToolRegistry {
            entries: Arc::new(BTreeMap::from([("a_local".to_string(), fixed)])),
            live: Some(set.clone()),
        };
        let version = registry.version();
        let allowed: Vec<String> = ["a_*", "a_local", "a_x"].map(String::from).into();
        // `a_*` is server `a`'s tools only, not `a_b`'s; each name once.
        assert_eq!(&*registry.expand(&allowed), ["a_x", "a_local"]);
        set.publish(live(&[("a_x", "a"), ("a_z", "a"), ("a_b_y", "a_b")]));
        assert_ne!(registry.version(), version);
        assert_eq!(&*registry.expand(&allowed), ["a_x", "a_z", "a_local"]);
        assert_eq!(
            registry
                .definitions_for(&registry.expand(&allowed))
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            ["a_x", "a_z", "a_local"]
        );
        // A name of a server's that it may list later is not unknown; a
        // wildcard of no server, or a name of no server, is.
        let names: Vec<String> = ["a_later", "a_b_*", "c_*", "c_x", "a_"]
            .map(String::from)
            .into();
        assert_eq!(registry.unknown(&names), ["c_*", "c_x", "a_"]);
    }

    #[test]
    fn long_messages_are_cut() {
        let s = truncate("x".repeat(1000));
        assert_eq!(s.chars().count(), MAX_ISSUE_CHARS + 1);
        assert_eq!(truncate("short".into()), "short");
    }
}
