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
    /// MCP servers whose tools agents may call (`[[mcpServers]]`).
    #[serde(default)]
    pub mcp_servers: Vec<super::McpServerConfig>,
    /// Where `troupe run` sends its traces.
    #[serde(default)]
    pub telemetry: TelemetrySection,
}

/// `[telemetry]`: OpenTelemetry export of `troupe run`'s spans (a job
/// attempt, each model call and tool call, with the GenAI attributes).
/// Needs the binary built with the `otel` feature; one without it refuses
/// an endpoint at start rather than dropping the traces unseen.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TelemetrySection {
    /// The OTLP/HTTP collector's base URL (`http://127.0.0.1:4318`); spans
    /// go to `{otlpEndpoint}/v1/traces` as OTLP JSON. Unset: no export.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (default `troupe`).
    #[serde(default)]
    pub service_name: Option<String>,
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
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreSection {
    /// Which store: `sled` (embedded, the default) or `postgres` (several
    /// nodes sharing one queue).
    #[serde(default, rename = "type")]
    pub kind: StoreKind,
    /// The sled data directory; with PostgreSQL, where this node keeps its
    /// local files (the API token, the daemon's address).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// sled: what an acknowledged write survives, `power-loss` (the
    /// default: each group commit ends with an `fdatasync`) or `process`
    /// (a killed process, not a power cut). PostgreSQL's commits are as
    /// durable as the server's `synchronous_commit` makes them.
    #[serde(default)]
    pub durability: Option<crate::store::Durability>,
    /// sled: its page cache in MiB (default 32). The cache stops growing at
    /// this however many tasks have run; sled's own default, 1 GiB, let it
    /// (and the process's RSS) grow with every task.
    #[serde(default)]
    pub cache_mib: Option<u64>,
    /// sled: the group-commit window, e.g. `2ms` (the default; `0ms` turns
    /// it off, at most `1s`). Under load, flushes start at most once per
    /// window and the writes meanwhile share one: longer costs less CPU
    /// per write, and each durable write under load waits up to this much
    /// longer. A lone write is flushed at once either way (or, right after
    /// a shared flush, within one window).
    #[serde(default)]
    pub commit_window: Option<String>,
    /// PostgreSQL: `postgres://user:password@host:port/database`; when
    /// absent, `$TROUPE_DATABASE_URL`. Never printed whole (`Debug` hides
    /// the password).
    #[serde(default)]
    pub url: Option<String>,
    /// PostgreSQL: the schema the tables live in (default `troupe`).
    #[serde(default)]
    pub schema: Option<String>,
    /// PostgreSQL: connections this node keeps at most (default 16).
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// PostgreSQL: how long a claim holds a job without a heartbeat
    /// (default `15s`): a dead node's jobs run again elsewhere this long
    /// after its last heartbeat.
    #[serde(default)]
    pub lease: Option<String>,
    /// PostgreSQL: how often a node renews its leases (default `3s`).
    #[serde(default)]
    pub heartbeat: Option<String>,
    /// PostgreSQL: how often an idle node looks for work without being
    /// told (default `1s`).
    #[serde(default)]
    pub poll: Option<String>,
    /// PostgreSQL: this node's id, kept across restarts so a restarted node
    /// takes its interrupted jobs back at once (default: a new id per
    /// process). A process whose id a live node holds is refused at start.
    #[serde(default)]
    pub node_id: Option<uuid::Uuid>,
    /// PostgreSQL: apply missing migrations at start (default true); when
    /// false, an older schema is an error that says to run `troupe migrate`.
    #[serde(default = "default_true")]
    pub migrate: bool,
}

/// Which adapter of the storage ports `troupe` opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// sled, embedded in the process (one process per data directory).
    #[default]
    Sled,
    /// PostgreSQL, shared by several nodes.
    Postgres,
}

fn default_true() -> bool {
    true
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./troupe-data")
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            kind: StoreKind::default(),
            data_dir: default_data_dir(),
            durability: None,
            cache_mib: None,
            commit_window: None,
            url: None,
            schema: None,
            pool_size: None,
            lease: None,
            heartbeat: None,
            poll: None,
            node_id: None,
            migrate: true,
        }
    }
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSection")
            .field("kind", &self.kind)
            .field("data_dir", &self.data_dir)
            .field("durability", &self.durability)
            .field("cache_mib", &self.cache_mib)
            .field("commit_window", &self.commit_window)
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("lease", &self.lease)
            .field("heartbeat", &self.heartbeat)
            .field("poll", &self.poll)
            .field("node_id", &self.node_id)
            .field("migrate", &self.migrate)
            .finish()
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
    /// How many times a job may wait out a provider's outage (open circuit,
    /// overload, rate limit, spent budget) without spending an attempt.
    #[serde(default = "default_outage_allowance")]
    pub outage_allowance: u32,
}

fn default_outage_allowance() -> u32 {
    crate::engine::DEFAULT_OUTAGE_ALLOWANCE
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
            outage_allowance: default_outage_allowance(),
        }
    }
}

/// One `[[agents]]` entry (the seed's agent config).
///
/// In the file every key is flat in the entry (`maxTaskDepth = 3`,
/// `conversations = ["team"]`); in code the limits and the grants are
/// grouped in [`AgentLimits`] and [`AgentGrants`].
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "AgentEntry")]
pub struct AgentConfig {
    /// Unique id; also the worker name of its tasks.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The system prompt.
    pub system_prompt: String,
    /// Tools the agent may use.
    pub tools: Vec<String>,
    /// Which model, with fallbacks.
    pub model_config: ModelConfig,
    /// Tasks of this agent that may run at once.
    pub concurrency: usize,
    /// Model calls per task before it fails.
    pub max_steps: u32,
    /// After a task, ask the model what it learned and remember it.
    pub reflect: bool,
    /// Daily token and/or cost limit; calls past it are refused.
    pub budget: Option<Budget>,
    /// Restart the agent's actor after this many tasks, between tasks.
    pub restart_after_tasks: Option<u64>,
    /// Restart the agent's actor, between tasks, once the heap it gained
    /// since it started is past this many MiB. Needs the accounting
    /// allocator ([`crate::alloc::AccountingAllocator`], installed in the
    /// `troupe` binary); the runtime refuses to start without it.
    pub restart_above_memory_mib: Option<u64>,
    /// How much work its tasks may start.
    pub limits: AgentLimits,
    /// What its tools may touch beyond the task's own user and conversation.
    pub grants: AgentGrants,
    /// Which of its tool calls wait for a person's approval, and how long.
    pub approvals: AgentApprovals,
}

/// Which tool calls of an agent wait for a person's approval (keys
/// `approval` and `approvalTimeout` of `[[agents]]`). A call of a tool named
/// here, or of a tool that says it always needs approval
/// (`Tool::requires_approval`), parks the task until someone runs `troupe
/// approve` or `troupe deny`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentApprovals {
    /// Tool names whose calls need approval (`approval = ["send_message"]`).
    pub tools: Vec<String>,
    /// After this long without a decision, a call is denied by itself with
    /// the reason "approval deadline passed" (`approvalTimeout = "1h"`);
    /// `None`: it waits for ever.
    pub timeout: Option<std::time::Duration>,
}

/// A duration as the config file writes it (`"90s"`, `"1h"`: see
/// [`super::parse_duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConfigDuration(std::time::Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text)
            .map(ConfigDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// How much work an agent's tasks may start (keys of `[[agents]]`). Each
/// refusal goes back to the model as a tool error naming the key, and the
/// task goes on; each is counted in `troupe_limit_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentLimits {
    /// `maxToolCallsPerReply`: tool calls run per model reply; the calls
    /// beyond get a tool error each and none of them runs. Default 16.
    pub max_tool_calls_per_reply: u32,
    /// `maxTasksPerTask`: jobs one task may create (`create_task`, and the
    /// jobs `scheduler` enqueues), counted from its checkpoints, so a
    /// retried or resumed task does not start over. Default 10.
    pub max_tasks_per_task: u32,
    /// `maxTaskDepth`: how deep a chain of tasks creating tasks may go. A
    /// task from outside is at depth 0, a task it creates at 1 (carried in
    /// the job's `ctx.depth`); `create_task` refuses beyond this. Default 3.
    pub max_task_depth: u32,
    /// `maxQueuedTasks`: past this many queued tasks of this agent,
    /// `create_task` for it is refused (tasks queued from outside are not).
    /// Default 100.
    pub max_queued_tasks: u64,
    /// `maxOutputCorrections`: for a task with an `outputSchema`, how many
    /// times an answer that does not validate goes back to the model with
    /// the validation errors before the task fails. Default 2.
    pub max_output_corrections: u32,
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_tool_calls_per_reply: 16,
            max_tasks_per_task: 10,
            max_task_depth: 3,
            max_queued_tasks: 100,
            max_output_corrections: 2,
        }
    }
}

/// What an agent's tools may touch beyond the task's own user and
/// conversation (keys of `[[agents]]`). By default nothing: a tool acts on
/// the task's user and conversation only, and a refusal says which key
/// would have to grant more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentGrants {
    /// `conversations`: other conversations `send_message` may post to and
    /// `scheduler` may name; `["*"]` for any.
    pub conversations: Vec<String>,
    /// `users`: other users whose memories `scheduler` may compact and
    /// whose jobs `worker_manager` shows unredacted; `["*"]` for any.
    pub users: Vec<String>,
    /// `sharedMemory`: `remember` may write agent-wide memories (which every
    /// user's tasks can recall) from a task done for a user.
    pub shared_memory: bool,
    /// `readHiddenFiles`: `analyze_code` may read hidden files and
    /// directories (`.env`, `.git/`) under the project root.
    pub read_hidden_files: bool,
}

/// An `[[agents]]` entry as written: every key flat.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AgentEntry {
    id: String,
    name: String,
    system_prompt: String,
    #[serde(default)]
    tools: Vec<String>,
    model_config: ModelConfig,
    #[serde(default = "default_agent_concurrency")]
    concurrency: usize,
    #[serde(default = "default_max_steps")]
    max_steps: u32,
    #[serde(default)]
    reflect: bool,
    #[serde(default)]
    budget: Option<Budget>,
    #[serde(default)]
    restart_after_tasks: Option<u64>,
    #[serde(default)]
    restart_above_memory_mib: Option<u64>,
    #[serde(default)]
    max_tool_calls_per_reply: Option<u32>,
    #[serde(default)]
    max_tasks_per_task: Option<u32>,
    #[serde(default)]
    max_task_depth: Option<u32>,
    #[serde(default)]
    max_queued_tasks: Option<u64>,
    #[serde(default)]
    max_output_corrections: Option<u32>,
    #[serde(default)]
    conversations: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    shared_memory: bool,
    #[serde(default)]
    read_hidden_files: bool,
    #[serde(default)]
    approval: Vec<String>,
    #[serde(default)]
    approval_timeout: Option<ConfigDuration>,
}

impl From<AgentEntry> for AgentConfig {
    fn from(e: AgentEntry) -> Self {
        let d = AgentLimits::default();
        AgentConfig {
            id: e.id,
            name: e.name,
            system_prompt: e.system_prompt,
            tools: e.tools,
            model_config: e.model_config,
            concurrency: e.concurrency,
            max_steps: e.max_steps,
            reflect: e.reflect,
            budget: e.budget,
            restart_after_tasks: e.restart_after_tasks,
            restart_above_memory_mib: e.restart_above_memory_mib,
            limits: AgentLimits {
                max_tool_calls_per_reply: e
                    .max_tool_calls_per_reply
                    .unwrap_or(d.max_tool_calls_per_reply),
                max_tasks_per_task: e.max_tasks_per_task.unwrap_or(d.max_tasks_per_task),
                max_task_depth: e.max_task_depth.unwrap_or(d.max_task_depth),
                max_queued_tasks: e.max_queued_tasks.unwrap_or(d.max_queued_tasks),
                max_output_corrections: e
                    .max_output_corrections
                    .unwrap_or(d.max_output_corrections),
            },
            grants: AgentGrants {
                conversations: e.conversations,
                users: e.users,
                shared_memory: e.shared_memory,
                read_hidden_files: e.read_hidden_files,
            },
            approvals: AgentApprovals {
                tools: e.approval,
                timeout: e.approval_timeout.map(|d| d.0),
            },
        }
    }
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
