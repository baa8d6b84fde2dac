//! The shape of the config file.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::provider::route::ModelConfig;
use crate::provider::ProviderConfig;
use crate::provider::{Budget, PricingConfig};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TroupeConfig {
    /// Where jobs, memories and conversations live.
    #[serde(default)]
    pub store: StoreSection,
    /// How the job engine runs.
    #[serde(default)]
    pub engine: EngineSection,
    /// Model providers agents refer to by name.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// The agents.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Recurring jobs.
    #[serde(default)]
    pub schedules: Vec<ScheduleConfig>,
    /// Memory and context settings.
    #[serde(default)]
    pub memory: MemorySection,
    /// Tool settings.
    #[serde(default)]
    pub tools: ToolsSection,
    /// Model prices (defaults for common models, dated; override here).
    #[serde(default)]
    pub pricing: PricingConfig,
    /// The control API of `troupe run`.
    #[serde(default)]
    pub http: HttpSection,
}

/// `[http]`: where `troupe run` serves the control API and metrics.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSection {
    /// `host:port`; unset: `127.0.0.1:7700` (loopback only), and a daemon
    /// whose default port is taken runs without the API rather than not at
    /// all. A given address that cannot be bound stops `troupe run`.
    #[serde(default)]
    pub addr: Option<String>,
    /// Bearer token required on `/v1` and `/metrics`. Unset (and no
    /// `TROUPE_HTTP_TOKEN`): the daemon makes one at its first start and
    /// keeps it in `http.token` in the data directory, where the CLI reads
    /// it. A secret: prefer `TROUPE_HTTP_TOKEN` or that file to this one.
    #[serde(default)]
    pub token: Option<String>,
    /// Names clients may give as `Host` besides `127.0.0.1`, `localhost`
    /// and `[::1]` with the bound port: `name` (any port), `name:port`, or
    /// `"*"` for any. Required to bind beyond loopback.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Connections open at once (default 256); more wait in the kernel's
    /// queue.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// How long a request's head, and then its body, may take to arrive,
    /// e.g. `10s` (the default).
    #[serde(default)]
    pub read_timeout: Option<String>,
}

impl std::fmt::Debug for HttpSection {
    // The token is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSection")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_connections", &self.max_connections)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreSection {
    /// The sled data directory.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./troupe-data")
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
        }
    }
}

/// `[engine]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EngineSection {
    /// Jobs of one worker that may run at once (agents have their own).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long running jobs may take to finish at shutdown (e.g. `30s`).
    #[serde(default = "default_drain")]
    pub drain_timeout: String,
}

fn default_concurrency() -> usize {
    16
}

fn default_drain() -> String {
    "30s".into()
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            drain_timeout: default_drain(),
        }
    }
}

/// One `[[agents]]` entry (the seed's agent config).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique id; also the worker name of its tasks.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The system prompt.
    pub system_prompt: String,
    /// Tools the agent may use.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Which model, with fallbacks.
    pub model_config: ModelConfig,
    /// Tasks of this agent that may run at once.
    #[serde(default = "default_agent_concurrency")]
    pub concurrency: usize,
    /// Model calls per task before it fails.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// After a task, ask the model what it learned and remember it.
    #[serde(default)]
    pub reflect: bool,
    /// Daily token and/or cost limit; calls past it are refused.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Restart the agent's actor after this many tasks, between tasks.
    #[serde(default)]
    pub restart_after_tasks: Option<u64>,
    /// Restart the agent's actor, between tasks, once the heap it gained
    /// since it started is past this many MiB. Needs the accounting
    /// allocator ([`crate::alloc::AccountingAllocator`], installed in the
    /// `troupe` binary); the runtime refuses to start without it.
    #[serde(default)]
    pub restart_above_memory_mib: Option<u64>,
}

pub(super) fn default_agent_concurrency() -> usize {
    4
}

pub(super) fn default_max_steps() -> u32 {
    8
}

/// One `[[schedules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique id.
    pub id: String,
    /// The worker (or agent id) to run.
    pub worker: String,
    /// A cron expression; or
    #[serde(default)]
    pub cron: Option<String>,
    /// a fixed period (`10m`).
    #[serde(default)]
    pub every: Option<String>,
    /// The job's args.
    #[serde(default)]
    pub args: Option<Value>,
    /// Run every missed firing after downtime instead of one.
    #[serde(default)]
    pub catch_up: bool,
}

/// `[memory]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemorySection {
    /// Memories put in the prompt at most.
    #[serde(default = "default_recall")]
    pub recall_limit: usize,
    /// Recent conversation messages put in the prompt at most.
    #[serde(default = "default_history")]
    pub history_limit: usize,
    /// Token budget of the context (system prompt, memories, history, task).
    #[serde(default = "default_budget")]
    pub context_tokens: usize,
}

fn default_recall() -> usize {
    8
}

fn default_history() -> usize {
    20
}

fn default_budget() -> usize {
    6000
}

impl Default for MemorySection {
    fn default() -> Self {
        Self {
            recall_limit: default_recall(),
            history_limit: default_history(),
            context_tokens: default_budget(),
        }
    }
}

/// `[tools]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolsSection {
    /// `analyze_code` reads files only under this directory.
    #[serde(default)]
    pub project_root: Option<PathBuf>,
}
