//! The names the code and the config file both spell.
//!
//! A worker, tool or provider name is written by users in `troupe.toml`
//! (`tools = ["remember"]`, `worker = "memory_compaction_worker"`,
//! `provider = "offline"`), in job records (`workerName`) and in the model's
//! tool calls, and matched by the code that registers, validates and routes
//! them. Each is defined once here, so a rename cannot leave one side
//! behind. The module imports nothing, so every layer may use it.

/// The diagnostic worker that returns its args (smoke tests, benchmarks).
pub const ECHO_WORKER: &str = "echo";
/// The diagnostic worker that sleeps `{"ms": N}` and can be told to fail.
pub const SLEEP_WORKER: &str = "sleep";
/// The worker that condenses an agent's memories; the `scheduler` tool
/// queues its jobs.
pub const MEMORY_COMPACTION_WORKER: &str = "memory_compaction_worker";

/// The workers every runtime registers besides the agents: a schedule or a
/// job may name them.
pub const BUILTIN_WORKERS: &[&str] = &[ECHO_WORKER, SLEEP_WORKER, MEMORY_COMPACTION_WORKER];

/// `modelConfig.provider` of the deterministic offline model, which needs no
/// `[[providers]]` entry.
pub const OFFLINE_PROVIDER: &str = "offline";

/// The tool that posts a message to a conversation.
pub const SEND_MESSAGE_TOOL: &str = "send_message";
/// The tool that creates a follow-up task for an agent.
pub const CREATE_TASK_TOOL: &str = "create_task";
/// The tool that schedules background work (a memory compaction).
pub const SCHEDULER_TOOL: &str = "scheduler";
/// The tool that lists workers and jobs.
pub const WORKER_MANAGER_TOOL: &str = "worker_manager";
/// The tool that stores a memory.
pub const REMEMBER_TOOL: &str = "remember";
/// The tool that searches memories.
pub const RECALL_TOOL: &str = "recall";
/// The tool that reports metrics and findings on code.
pub const ANALYZE_CODE_TOOL: &str = "analyze_code";

/// The built-in tools an agent may be given (`tools = [...]`), in the order
/// a config error lists them.
pub const BUILTIN_TOOLS: &[&str] = &[
    SEND_MESSAGE_TOOL,
    CREATE_TASK_TOOL,
    SCHEDULER_TOOL,
    WORKER_MANAGER_TOOL,
    REMEMBER_TOOL,
    RECALL_TOOL,
    ANALYZE_CODE_TOOL,
];

/// The tools whose effect is a job: what `maxTasksPerTask` counts.
pub const JOB_CREATING_TOOLS: &[&str] = &[CREATE_TASK_TOOL, SCHEDULER_TOOL];

/// The key of a task's job `ctx` that holds how deep in a chain of tasks
/// creating tasks it is (absent: 0, a task from outside).
pub const CTX_DEPTH: &str = "depth";

// The limits and grants of an `[[agents]]` entry, as the file spells them:
// a refusal names its key (in the tool error the model sees, and as the
// `limit` label of `troupe_limit_refusals_total`).

/// Tool calls run per model reply.
pub const MAX_TOOL_CALLS_PER_REPLY: &str = "maxToolCallsPerReply";
/// Jobs one task may create.
pub const MAX_TASKS_PER_TASK: &str = "maxTasksPerTask";
/// How deep a chain of tasks creating tasks may go.
pub const MAX_TASK_DEPTH: &str = "maxTaskDepth";
/// Queued tasks of an agent past which `create_task` for it is refused.
pub const MAX_QUEUED_TASKS: &str = "maxQueuedTasks";
/// Agent key: corrections of an answer that does not match the task's
/// `outputSchema` before the task fails.
pub const MAX_OUTPUT_CORRECTIONS: &str = "maxOutputCorrections";
/// Conversations beyond the task's own that tools may write to.
pub const GRANT_CONVERSATIONS: &str = "conversations";
/// Users beyond the task's own whose data tools may touch.
pub const GRANT_USERS: &str = "users";
/// Agent-wide memories written from a task done for a user.
pub const GRANT_SHARED_MEMORY: &str = "sharedMemory";
/// Hidden files and directories `analyze_code` may read.
pub const GRANT_READ_HIDDEN_FILES: &str = "readHiddenFiles";
/// A grant's value that grants every conversation or user.
pub const GRANT_ANY: &str = "*";
