//! The daemon's configuration file (TOML, camelCase keys as in the seeds).
//!
//! Loading checks everything a running daemon would otherwise discover late:
//! unknown keys (typos), agents naming providers or tools that do not exist,
//! out-of-range model settings, duplicate ids. Every error names the file,
//! the key and the reason, so a bad config is refused at start.

mod build;
mod duration;
pub(crate) mod mcp;
mod model;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::provider::route::ModelConfig;
pub(crate) use duration::parse_duration;
pub use mcp::McpServerConfig;
pub use model::{
    AgentApprovals, AgentConfig, AgentGrants, AgentLimits, EngineSection, HttpSection,
    MemorySection, ScheduleConfig, StoreKind, StoreSection, TelemetrySection, ToolsSection,
    TroupeConfig,
};

pub(crate) use crate::names::BUILTIN_TOOLS;
use crate::names::{self, BUILTIN_WORKERS, OFFLINE_PROVIDER};

/// The largest `[store] cacheMib` (1 TiB): the bytes it stands for must fit
/// sled's `u64`, and more than that is a typo.
pub(crate) const MAX_CACHE_MIB: u64 = 1024 * 1024;

/// The longest `[store] commitWindow`: every durable write under load may
/// wait this long, and a window past a second is a typo (`2s` for `2ms`).
pub(crate) const MAX_COMMIT_WINDOW: Duration = Duration::from_secs(1);

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (syntax, wrong type,
    /// unknown key); the message names the key and line.
    #[error("{}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// What the parser said, with the key and position.
        message: String,
    },
    /// A value is well-formed but cannot work.
    #[error("{}: `{key}`: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The key, as a path (`agents[0].modelConfig.temperature`).
        key: String,
        /// Why it is refused.
        reason: String,
    },
}

impl TroupeConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks config text; `file` is only used in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let config: TroupeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_path_buf(),
            message: e.to_string().trim().replace('\n', " ").replace("  ", " "),
        })?;
        config.validate(file)?;
        Ok(config)
    }

    /// The semantic checks: references, ranges, uniqueness. The first
    /// problem found is returned: providers, then agents in order, then
    /// schedules, then the engine.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let check = Check { file };
        let providers = self.check_providers(&check)?;
        let mcp_servers = self.check_mcp_servers(&check)?;
        let mut ids = BTreeSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let at = |k: &str| format!("agents[{i}].{k}");
            let id = agent.id.as_str();
            if id.trim().is_empty() || id.contains('/') || id.contains(char::is_whitespace) {
                return Err(check.invalid(
                    at("id"),
                    format!("`{id}` must be non-empty, without spaces or `/`"),
                ));
            }
            if !ids.insert(id) {
                return Err(check.invalid(at("id"), format!("`{id}` is defined twice")));
            }
            check_agent(agent, &at, &providers, &mcp_servers, &check)?;
        }
        self.check_schedules(&ids, &check)?;
        if self.engine.concurrency == 0 {
            return Err(check.invalid("engine.concurrency", "must be at least 1"));
        }
        parse_duration(&self.engine.drain_timeout)
            .map_err(|e| check.invalid("engine.drainTimeout", e))?;
        self.check_store(&check)?;
        self.check_telemetry(&check)?;
        self.check_http(&check)
    }

    /// Checks `[store]`: sled settings only with `type = "sled"` (a cache
    /// of 1 MiB to [`MAX_CACHE_MIB`], a commit window that parses and is at
    /// most [`MAX_COMMIT_WINDOW`]), PostgreSQL settings only with
    /// `type = "postgres"`, durations that parse and leave the heartbeat
    /// inside the lease.
    fn check_store(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        let store = &self.store;
        if store.kind == StoreKind::Sled {
            let set = [
                ("store.url", store.url.is_some()),
                ("store.schema", store.schema.is_some()),
                ("store.poolSize", store.pool_size.is_some()),
                ("store.lease", store.lease.is_some()),
                ("store.heartbeat", store.heartbeat.is_some()),
                ("store.poll", store.poll.is_some()),
                ("store.nodeId", store.node_id.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, is_set)| *is_set) {
                return Err(check.invalid(*key, "applies only with type = \"postgres\""));
            }
            match store.cache_mib {
                Some(0) => return Err(check.invalid("store.cacheMib", "must be at least 1")),
                Some(mib) if mib > MAX_CACHE_MIB => {
                    return Err(check.invalid(
                        "store.cacheMib",
                        format!("must be at most {MAX_CACHE_MIB} (1 TiB)"),
                    ))
                }
                _ => {}
            }
            if let Some(text) = &store.commit_window {
                match parse_duration(text) {
                    Ok(window) if window > MAX_COMMIT_WINDOW => {
                        return Err(check.invalid(
                            "store.commitWindow",
                            format!(
                                "must be at most {MAX_COMMIT_WINDOW:?} (every durable write under \
                                 load may wait that long), got `{text}`"
                            ),
                        ))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(check.invalid("store.commitWindow", e)),
                }
            }
            return Ok(());
        }
        if store.durability.is_some() {
            return Err(check.invalid(
                "store.durability",
                "applies only with type = \"sled\" (PostgreSQL commits are as durable as the \
                 server's synchronous_commit makes them)",
            ));
        }
        if store.cache_mib.is_some() {
            return Err(check.invalid(
                "store.cacheMib",
                "applies only with type = \"sled\" (PostgreSQL's cache is the server's)",
            ));
        }
        if store.commit_window.is_some() {
            return Err(check.invalid(
                "store.commitWindow",
                "applies only with type = \"sled\" (PostgreSQL commits each write itself)",
            ));
        }
        if store.pool_size == Some(0) {
            return Err(check.invalid("store.poolSize", "must be at least 1"));
        }
        let duration =
            |key: &str, value: &Option<String>| -> Result<Option<Duration>, ConfigError> {
                match value {
                    None => Ok(None),
                    Some(text) => match parse_duration(text) {
                        Ok(d) if d.is_zero() => Err(check.invalid(key, "must be longer than 0")),
                        Ok(d) => Ok(Some(d)),
                        Err(e) => Err(check.invalid(key, e)),
                    },
                }
            };
        let lease = duration("store.lease", &store.lease)?.unwrap_or(Duration::from_secs(15));
        let heartbeat =
            duration("store.heartbeat", &store.heartbeat)?.unwrap_or(Duration::from_secs(3));
        duration("store.poll", &store.poll)?;
        if heartbeat >= lease {
            return Err(check.invalid(
                "store.heartbeat",
                format!("must be shorter than the lease ({lease:?}), got {heartbeat:?}"),
            ));
        }
        if let Some(schema) = &store.schema {
            crate::store::validate_schema_name(schema).map_err(|e| match e {
                crate::store::StoreError::InvalidInput { reason, .. } => {
                    check.invalid("store.schema", reason)
                }
                other => check.invalid("store.schema", other.to_string()),
            })?;
        }
        Ok(())
    }

    /// Checks `[telemetry]`: an endpoint that is an http(s) URL.
    fn check_telemetry(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        let t = &self.telemetry;
        if let Some(endpoint) = &t.otlp_endpoint {
            let ok = reqwest::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(check.invalid(
                    "telemetry.otlpEndpoint",
                    format!("`{endpoint}` is not an http(s) URL (e.g. http://127.0.0.1:4318)"),
                ));
            }
        }
        if t.service_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(check.invalid("telemetry.serviceName", "must not be empty"));
        }
        Ok(())
    }

    /// Checks the `[[mcpServers]]` entries; their names, for the agents'
    /// tool lists (`<server>_<tool>`, whose tools are known at start).
    fn check_mcp_servers(&self, check: &Check<'_>) -> Result<BTreeSet<&str>, ConfigError> {
        let mut names = BTreeSet::new();
        for (i, server) in self.mcp_servers.iter().enumerate() {
            server
                .check()
                .map_err(|(key, reason)| check.invalid(format!("mcpServers[{i}].{key}"), reason))?;
            if !names.insert(server.name.as_str()) {
                return Err(check.invalid(
                    format!("mcpServers[{i}].name"),
                    format!("`{}` is defined twice", server.name),
                ));
            }
        }
        Ok(names)
    }

    /// Checks `[http]`: limits in range, host names that could be ones.
    fn check_http(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        let http = &self.http;
        if http.max_connections == Some(0) {
            return Err(check.invalid("http.maxConnections", "must be at least 1"));
        }
        if let Some(timeout) = &http.read_timeout {
            let t = parse_duration(timeout).map_err(|e| check.invalid("http.readTimeout", e))?;
            if t.is_zero() {
                return Err(check.invalid("http.readTimeout", "must be longer than 0"));
            }
        }
        for (i, host) in http.allowed_hosts.iter().enumerate() {
            let bad = host.trim().is_empty()
                || host.contains("://")
                || host.contains(['/', '@', ' ', ',']);
            if bad {
                return Err(check.invalid(
                    format!("http.allowedHosts[{i}]"),
                    format!("`{host}` is not a host name (give `name`, `name:port` or \"*\")"),
                ));
            }
        }
        Ok(())
    }

    /// Checks the `[[providers]]` entries; their names, for the agents'
    /// references.
    fn check_providers(&self, check: &Check<'_>) -> Result<BTreeSet<&str>, ConfigError> {
        let mut names = BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = |k: &str| format!("providers[{i}].{k}");
            if p.name.trim().is_empty() {
                return Err(check.invalid(at("name"), "must not be empty"));
            }
            if !names.insert(p.name.as_str()) {
                return Err(check.invalid(at("name"), format!("`{}` is defined twice", p.name)));
            }
            if p.kind == crate::provider::ProviderKind::OpenaiCompatible && p.base_url.is_none() {
                return Err(check.invalid(at("baseUrl"), "is required for type openai-compatible"));
            }
            if let Some(url) = &p.base_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(check.invalid(
                        at("baseUrl"),
                        format!("`{url}` must start with http:// or https://"),
                    ));
                }
            }
        }
        Ok(names)
    }

    /// Checks the `[[schedules]]` entries against the agents (`ids`) and the
    /// built-in workers.
    fn check_schedules(&self, ids: &BTreeSet<&str>, check: &Check<'_>) -> Result<(), ConfigError> {
        for (i, s) in self.schedules.iter().enumerate() {
            let known_worker =
                ids.contains(s.worker.as_str()) || BUILTIN_WORKERS.contains(&s.worker.as_str());
            if !known_worker {
                return Err(check.invalid(
                    format!("schedules[{i}].worker"),
                    format!("unknown worker `{}`", s.worker),
                ));
            }
            match (&s.cron, &s.every) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(check.invalid(
                        format!("schedules[{i}]"),
                        "give exactly one of `cron` or `every`",
                    ))
                }
                (Some(cron), None) => {
                    crate::job::schedule::ScheduleSpec::cron(cron.clone())
                        .map_err(|e| check.invalid(format!("schedules[{i}].cron"), e))?;
                }
                (None, Some(every)) => {
                    parse_duration(every)
                        .map_err(|e| check.invalid(format!("schedules[{i}].every"), e))?;
                }
            }
        }
        Ok(())
    }
}

/// Makes the errors of one file's checks.
struct Check<'a> {
    file: &'a Path,
}

impl Check<'_> {
    /// `key` (a path such as `agents[0].maxSteps`) is refused for `reason`.
    fn invalid(&self, key: impl Into<String>, reason: impl std::fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// Checks one agent's settings but its id; `at` names its keys.
fn check_agent(
    agent: &AgentConfig,
    at: &dyn Fn(&str) -> String,
    providers: &BTreeSet<&str>,
    mcp_servers: &BTreeSet<&str>,
    check: &Check<'_>,
) -> Result<(), ConfigError> {
    check_model_config(&agent.model_config, at, providers, check)?;
    for (j, tool) in agent.tools.iter().enumerate() {
        // An MCP server's tools are known when it is reached, at start.
        let of_mcp_server = mcp_servers.iter().any(|s| {
            tool.len() > s.len() + 1 && tool.starts_with(s) && tool[s.len()..].starts_with('_')
        });
        if !BUILTIN_TOOLS.contains(&tool.as_str()) && !of_mcp_server {
            let mcp_hint = if mcp_servers.is_empty() {
                String::new()
            } else {
                format!(
                    "; or `<server>_<tool>` of an MCP server: {}",
                    mcp_servers.iter().copied().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(check.invalid(
                at(&format!("tools[{j}]")),
                format!(
                    "unknown tool `{tool}` (known: {}{mcp_hint})",
                    BUILTIN_TOOLS.join(", ")
                ),
            ));
        }
    }
    for (j, tool) in agent.approvals.tools.iter().enumerate() {
        if !agent.tools.contains(tool) {
            return Err(check.invalid(
                at(&format!("approval[{j}]")),
                format!(
                    "`{tool}` is not one of the agent's tools ({}); list it in `tools` too",
                    agent.tools.join(", ")
                ),
            ));
        }
    }
    if agent.approvals.timeout.is_some_and(|t| t.is_zero()) {
        return Err(check.invalid(
            at("approvalTimeout"),
            "must be more than 0; leave it out for no deadline",
        ));
    }
    if agent.max_steps == 0 {
        return Err(check.invalid(at("maxSteps"), "must be at least 1"));
    }
    if agent.concurrency == 0 {
        return Err(check.invalid(at("concurrency"), "must be at least 1"));
    }
    if agent.restart_after_tasks == Some(0) {
        return Err(check.invalid(
            at("restartAfterTasks"),
            "must be at least 1; leave it out to never restart for a task count",
        ));
    }
    if agent.restart_above_memory_mib == Some(0) {
        return Err(check.invalid(
            at("restartAboveMemoryMib"),
            "must be at least 1 (MiB); leave it out to never restart for memory",
        ));
    }
    if agent.limits.max_tool_calls_per_reply == 0 {
        return Err(check.invalid(
            at(names::MAX_TOOL_CALLS_PER_REPLY),
            "must be at least 1; to have the agent call no tools, give it none",
        ));
    }
    for (key, list) in [
        (names::GRANT_CONVERSATIONS, &agent.grants.conversations),
        (names::GRANT_USERS, &agent.grants.users),
    ] {
        for (j, entry) in list.iter().enumerate() {
            if entry.trim().is_empty() {
                return Err(check.invalid(
                    at(&format!("{key}[{j}]")),
                    "must not be empty; name one, or `*` for any",
                ));
            }
        }
    }
    Ok(())
}

/// Checks an agent's `modelConfig`: known providers (or `offline`), a model,
/// settings in range.
fn check_model_config(
    m: &ModelConfig,
    at: &dyn Fn(&str) -> String,
    providers: &BTreeSet<&str>,
    check: &Check<'_>,
) -> Result<(), ConfigError> {
    let known = |name: &str| name == OFFLINE_PROVIDER || providers.contains(name);
    if !known(&m.provider) {
        return Err(check.invalid(
            at("modelConfig.provider"),
            format!(
                "`{}` is not a configured provider (nor `offline`)",
                m.provider
            ),
        ));
    }
    if m.model.trim().is_empty() {
        return Err(check.invalid(at("modelConfig.model"), "must not be empty"));
    }
    if let Some(t) = m.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(check.invalid(
            at("modelConfig.temperature"),
            format!("{t} is outside 0.0–2.0"),
        ));
    }
    if m.max_tokens == Some(0) {
        return Err(check.invalid(at("modelConfig.maxTokens"), "must be at least 1"));
    }
    for (j, f) in m.fallbacks.iter().enumerate() {
        if !known(&f.provider) {
            return Err(check.invalid(
                at(&format!("modelConfig.fallbacks[{j}].provider")),
                format!("`{}` is not a configured provider", f.provider),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TroupeConfig, ConfigError> {
        TroupeConfig::parse(text, Path::new("troupe.toml"))
    }

    fn refused_key(text: &str) -> String {
        match parse(text) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected a refused key, got {other:?}"),
        }
    }

    #[test]
    fn the_store_section_chooses_postgres_and_checks_its_settings() {
        let config = parse(
            "[store]\ntype = \"postgres\"\nurl = \"postgres://u:s3cret@db/app\"\n\
             schema = \"jobs_1\"\npoolSize = 4\nlease = \"10s\"\nheartbeat = \"2s\"\n\
             migrate = false\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.store.kind, StoreKind::Postgres);
        assert_eq!(config.store.pool_size, Some(4));
        assert!(!config.store.migrate);
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "Debug hides the database URL"
        );
        assert_eq!(parse("").map(|c| c.store.kind).ok(), Some(StoreKind::Sled));
        for (text, key) in [
            ("[store]\nurl = \"postgres://db/app\"\n", "store.url"),
            ("[store]\nlease = \"5s\"\n", "store.lease"),
            (
                "[store]\ntype = \"postgres\"\nlease = \"3s\"\nheartbeat = \"3s\"\n",
                "store.heartbeat",
            ),
            (
                "[store]\ntype = \"postgres\"\nlease = \"soon\"\n",
                "store.lease",
            ),
            (
                "[store]\ntype = \"postgres\"\npoolSize = 0\n",
                "store.poolSize",
            ),
            (
                "[store]\ntype = \"postgres\"\nschema = \"Bad-Name\"\n",
                "store.schema",
            ),
        ] {
            assert_eq!(refused_key(text), key, "{text}");
        }
        assert!(matches!(
            parse("[store]\ntype = \"mysql\"\n"),
            Err(ConfigError::Parse { .. })
        ));
    }

    const AGENT: &str = r#"
[[agents]]
id = "sarah"
name = "Sarah"
systemPrompt = "You are Sarah."
tools = ["send_message"]
[agents.modelConfig]
provider = "offline"
model = "m"
"#;

    #[test]
    fn the_shipped_example_config_loads() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/troupe.toml"));
        let config = TroupeConfig::load(path).unwrap();
        assert_eq!(config.agents[0].id, "sarah");
        assert_eq!(
            config.agents[0].model_config.fallbacks[0].provider,
            "anthropic"
        );
        assert_eq!(config.providers.len(), 2);
        // It shows the limits and grants with their defaults, and a budget.
        assert_eq!(config.agents[0].limits, AgentLimits::default());
        assert_eq!(config.agents[0].grants, AgentGrants::default());
        let budget = config.agents[0].budget.unwrap();
        assert_eq!(budget.daily_tokens, Some(2_000_000));
        assert_eq!(budget.daily_cost_usd, Some(5.0));
    }

    #[test]
    fn defaults_fill_in() {
        let config = parse(AGENT).unwrap();
        let a = &config.agents[0];
        assert_eq!((a.concurrency, a.max_steps), (4, 8));
        assert_eq!(a.model_config.max_tokens, None, "the provider's default");
        assert_eq!(config.store.data_dir, PathBuf::from("./troupe-data"));
    }

    #[test]
    fn bad_configs_name_file_key_and_reason() {
        let cases = [
            (AGENT.replace("systemPrompt", "sytemPrompt"), "sytemPrompt"),
            (
                AGENT.replace("\"send_message\"", "\"teleport\""),
                "agents[0].tools[0]",
            ),
            (
                AGENT.replace("provider = \"offline\"", "provider = \"nope\""),
                "agents[0].modelConfig.provider",
            ),
            (
                AGENT.replace("model = \"m\"", "model = \"m\"\ntemperature = 7.0"),
                "agents[0].modelConfig.temperature",
            ),
            (format!("{AGENT}{AGENT}"), "defined twice"),
            (
                AGENT.replace(
                    "tools = [\"send_message\"]",
                    "tools = [\"send_message\"]\nrestartAboveMemoryMib = 0",
                ),
                "agents[0].restartAboveMemoryMib",
            ),
            (
                AGENT.replace(
                    "tools = [\"send_message\"]",
                    "tools = [\"send_message\"]\nrestartAfterTasks = 0",
                ),
                "agents[0].restartAfterTasks",
            ),
            (
                AGENT.replace("id = \"sarah\"", "id = \"sa rah\""),
                "agents[0].id",
            ),
            (
                "[engine]\nconcurrency = 0".to_string(),
                "engine.concurrency",
            ),
            (
                "[engine]\ndrainTimeout = \"soon\"".to_string(),
                "engine.drainTimeout",
            ),
            (
                "[[schedules]]\nid = \"s\"\nworker = \"echo\"\ncron = \"bad cron\"".to_string(),
                "schedules[0].cron",
            ),
            (
                "[[schedules]]\nid = \"s\"\nworker = \"ghost\"\nevery = \"1m\"".to_string(),
                "unknown worker `ghost`",
            ),
            (
                "[[providers]]\nname = \"x\"\ntype = \"openai-compatible\"".to_string(),
                "providers[0].baseUrl",
            ),
            (
                "[[providers]]\nname = \"x\"\ntype = \"skynet\"".to_string(),
                "skynet",
            ),
            ("this is = = not toml".to_string(), "troupe.toml"),
        ];
        for (text, expected) in cases {
            let err = parse(&text).expect_err(expected).to_string();
            assert!(err.starts_with("troupe.toml"), "names the file: {err}");
            assert!(err.contains(expected), "expected `{expected}` in: {err}");
        }
    }

    #[test]
    fn memory_recycling_reads_its_key() {
        let text = AGENT.replace(
            "tools = [\"send_message\"]",
            "tools = [\"send_message\"]\nrestartAfterTasks = 100\nrestartAboveMemoryMib = 512",
        );
        let a = &parse(&text).unwrap().agents[0];
        assert_eq!(a.restart_above_memory_mib, Some(512));
        assert_eq!(a.restart_after_tasks, Some(100));
        assert_eq!(
            parse(AGENT).unwrap().agents[0].restart_above_memory_mib,
            None
        );
        let err = parse(&text.replace("= 512", "= 0"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "troupe.toml: `agents[0].restartAboveMemoryMib`: must be at least 1 (MiB); leave it out to never restart for memory"
        );
    }

    #[test]
    fn limits_and_grants_read_their_keys_with_defaults() {
        let a = &parse(AGENT).unwrap().agents[0];
        assert_eq!(a.limits, AgentLimits::default());
        assert_eq!(
            (
                a.limits.max_tool_calls_per_reply,
                a.limits.max_tasks_per_task,
                a.limits.max_task_depth,
                a.limits.max_queued_tasks
            ),
            (16, 10, 3, 100)
        );
        assert_eq!(a.grants, AgentGrants::default());
        let text = AGENT.replace(
            "tools = [\"send_message\"]",
            "tools = [\"send_message\"]\nmaxToolCallsPerReply = 4\nmaxTasksPerTask = 0\n\
             maxTaskDepth = 1\nmaxQueuedTasks = 7\nmaxOutputCorrections = 5\nconversations = [\"team\", \"ops\"]\n\
             users = [\"*\"]\nsharedMemory = true\nreadHiddenFiles = true",
        );
        // The names refusals give are the keys the file spells.
        for key in [
            names::MAX_TOOL_CALLS_PER_REPLY,
            names::MAX_TASKS_PER_TASK,
            names::MAX_TASK_DEPTH,
            names::MAX_QUEUED_TASKS,
            names::MAX_OUTPUT_CORRECTIONS,
            names::GRANT_CONVERSATIONS,
            names::GRANT_USERS,
            names::GRANT_SHARED_MEMORY,
            names::GRANT_READ_HIDDEN_FILES,
        ] {
            assert!(text.contains(&format!("\n{key} = ")), "{key}");
        }
        let a = &parse(&text).unwrap().agents[0];
        assert_eq!(
            a.limits,
            AgentLimits {
                max_tool_calls_per_reply: 4,
                max_tasks_per_task: 0,
                max_task_depth: 1,
                max_queued_tasks: 7,
                max_output_corrections: 5,
            }
        );
        assert_eq!(
            a.grants,
            AgentGrants {
                conversations: vec!["team".into(), "ops".into()],
                users: vec!["*".into()],
                shared_memory: true,
                read_hidden_files: true,
            }
        );
    }

    /// Each new key of an agent, given a value it cannot take: refused,
    /// naming the file and the key.
    #[test]
    fn bad_limits_and_grants_name_their_key() {
        let agent = |extra: &str| {
            AGENT.replace(
                "tools = [\"send_message\"]",
                &format!("tools = [\"send_message\"]\n{extra}"),
            )
        };
        let invalid = [
            (
                "maxToolCallsPerReply = 0",
                "`agents[0].maxToolCallsPerReply`: must be at least 1; to have the agent call no tools, give it none",
            ),
            (
                "conversations = [\"team\", \"\"]",
                "`agents[0].conversations[1]`: must not be empty; name one, or `*` for any",
            ),
            (
                "users = [\" \"]",
                "`agents[0].users[0]`: must not be empty; name one, or `*` for any",
            ),
        ];
        for (line, expected) in invalid {
            let err = parse(&agent(line)).expect_err(line).to_string();
            assert_eq!(err, format!("troupe.toml: {expected}"), "{line}");
        }
        let mistyped = [
            ("maxToolCallsPerReply = -1", "maxToolCallsPerReply"),
            ("maxToolCallsPerReply = 5000000000", "maxToolCallsPerReply"),
            ("maxTasksPerTask = \"ten\"", "maxTasksPerTask"),
            ("maxTaskDepth = -1", "maxTaskDepth"),
            ("maxQueuedTasks = 1.5", "maxQueuedTasks"),
            ("conversations = \"*\"", "conversations"),
            ("users = [1]", "users"),
            ("sharedMemory = \"yes\"", "sharedMemory"),
            ("readHiddenFiles = 1", "readHiddenFiles"),
            ("maxTaskDepht = 3", "maxTaskDepht"),
        ];
        for (line, key) in mistyped {
            let err = parse(&agent(line)).expect_err(line).to_string();
            assert!(err.starts_with("troupe.toml: "), "{err}");
            assert!(err.contains(key), "`{key}` in: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = TroupeConfig::load(Path::new("/nonexistent/troupe.toml")).unwrap_err();
        assert!(err
            .to_string()
            .contains("/nonexistent/troupe.toml: cannot read"));
    }

    /// Every check's whole message, so that none changes unnoticed.
    #[test]
    fn every_check_says_exactly_what_it_refuses() {
        let model = |extra: &str| {
            AGENT.replace(
                "model = \"m\"",
                &format!(
                    "model = \"m\"{}{extra}",
                    if extra.is_empty() { "" } else { "\n" }
                ),
            )
        };
        let agent = |extra: &str| {
            AGENT.replace(
                "tools = [\"send_message\"]",
                &format!("tools = [\"send_message\"]\n{extra}"),
            )
        };
        let provider = |body: &str| format!("[[providers]]\n{body}\n");
        let schedule = |body: &str| format!("[[schedules]]\nid = \"s\"\n{body}\n");
        let cases = [
            (provider("name = \" \"\ntype = \"openai\""), "`providers[0].name`: must not be empty"),
            (
                format!("{}{}", provider("name = \"a\"\ntype = \"openai\""), provider("name = \"a\"\ntype = \"openai\"")),
                "`providers[1].name`: `a` is defined twice",
            ),
            (
                provider("name = \"x\"\ntype = \"openai-compatible\""),
                "`providers[0].baseUrl`: is required for type openai-compatible",
            ),
            (
                provider("name = \"x\"\ntype = \"openai\"\nbaseUrl = \"ftp://x\""),
                "`providers[0].baseUrl`: `ftp://x` must start with http:// or https://",
            ),
            (
                AGENT.replace("id = \"sarah\"", "id = \"a/b\""),
                "`agents[0].id`: `a/b` must be non-empty, without spaces or `/`",
            ),
            (format!("{AGENT}{AGENT}"), "`agents[1].id`: `sarah` is defined twice"),
            (
                AGENT.replace("provider = \"offline\"", "provider = \"nope\""),
                "`agents[0].modelConfig.provider`: `nope` is not a configured provider (nor `offline`)",
            ),
            (
                AGENT.replace("model = \"m\"", "model = \" \""),
                "`agents[0].modelConfig.model`: must not be empty",
            ),
            (
                model("temperature = 2.5"),
                "`agents[0].modelConfig.temperature`: 2.5 is outside 0.0–2.0",
            ),
            (
                model("maxTokens = 0"),
                "`agents[0].modelConfig.maxTokens`: must be at least 1",
            ),
            (
                model("fallbacks = [{ provider = \"ghost\", model = \"m\" }]"),
                "`agents[0].modelConfig.fallbacks[0].provider`: `ghost` is not a configured provider",
            ),
            (
                AGENT.replace("\"send_message\"", "\"teleport\""),
                "`agents[0].tools[0]`: unknown tool `teleport` (known: send_message, create_task, scheduler, worker_manager, remember, recall, analyze_code)",
            ),
            (
                agent("approval = [\"recall\"]"),
                "`agents[0].approval[0]`: `recall` is not one of the agent's tools (send_message); list it in `tools` too",
            ),
            (
                agent("approval = [\"send_message\"]\napprovalTimeout = \"0s\""),
                "`agents[0].approvalTimeout`: must be more than 0; leave it out for no deadline",
            ),
            (agent("maxSteps = 0"), "`agents[0].maxSteps`: must be at least 1"),
            (agent("concurrency = 0"), "`agents[0].concurrency`: must be at least 1"),
            (
                agent("restartAfterTasks = 0"),
                "`agents[0].restartAfterTasks`: must be at least 1; leave it out to never restart for a task count",
            ),
            (
                schedule("worker = \"ghost\"\nevery = \"1m\""),
                "`schedules[0].worker`: unknown worker `ghost`",
            ),
            (
                schedule("worker = \"sleep\""),
                "`schedules[0]`: give exactly one of `cron` or `every`",
            ),
            (
                schedule("worker = \"memory_compaction_worker\"\nevery = \"1m\"\ncron = \"0 * * * * *\""),
                "`schedules[0]`: give exactly one of `cron` or `every`",
            ),
            ("[engine]\nconcurrency = 0".to_string(), "`engine.concurrency`: must be at least 1"),
        ];
        for (text, expected) in cases {
            let err = parse(&text).expect_err(expected).to_string();
            assert_eq!(err, format!("troupe.toml: {expected}"));
        }
        for (text, key) in [
            (
                schedule("worker = \"echo\"\ncron = \"bad cron\""),
                "`schedules[0].cron`: ",
            ),
            (
                schedule("worker = \"sarah\"\nevery = \"soon\""),
                "`schedules[0].every`: ",
            ),
            (
                "[engine]\ndrainTimeout = \"soon\"".to_string(),
                "`engine.drainTimeout`: ",
            ),
        ] {
            let err = parse(&format!("{AGENT}{text}")).expect_err(key).to_string();
            assert!(err.starts_with(&format!("troupe.toml: {key}")), "{err}");
        }
        // The built-in workers and the agents are known to schedules.
        for worker in ["echo", "sleep", "memory_compaction_worker", "sarah"] {
            let text = format!(
                "{AGENT}{}",
                schedule(&format!("worker = \"{worker}\"\nevery = \"1m\""))
            );
            parse(&text).unwrap();
        }
    }

    #[test]
    fn the_http_section_is_checked() {
        let ok = parse(
            "[http]\naddr = \"0.0.0.0:7700\"\nallowedHosts = [\"troupe.lan\", \"api.example:443\", \"*\"]\nmaxConnections = 64\nreadTimeout = \"2s\"",
        )
        .unwrap();
        assert_eq!(ok.http.allowed_hosts.len(), 3);
        assert_eq!(ok.http.max_connections, Some(64));
        for (text, expected) in [
            (
                "maxConnections = 0",
                "`http.maxConnections`: must be at least 1",
            ),
            (
                "readTimeout = \"0s\"",
                "`http.readTimeout`: must be longer than 0",
            ),
            ("readTimeout = \"soon\"", "`http.readTimeout`: "),
            ("allowedHosts = [\"\"]", "`http.allowedHosts[0]`: "),
            (
                "allowedHosts = [\"a\", \"https://b\"]",
                "`http.allowedHosts[1]`: `https://b` is not a host name",
            ),
            ("allowedHosts = [\"a/b\"]", "`http.allowedHosts[0]`: "),
        ] {
            let err = parse(&format!("[http]\n{text}"))
                .expect_err(expected)
                .to_string();
            assert!(
                err.starts_with(&format!("troupe.toml: {expected}")),
                "{err}"
            );
        }
        let text = "[http]\ntoken = \"s3cret\"";
        assert!(!format!("{:?}", parse(text).unwrap().http).contains("s3cret"));
    }
}
