//! The runtime's one error type.

use troupe_actors::{BuildError, CallError, LookupError, SystemGone};

use crate::engine::EngineError;
use crate::job::schedule::ScheduleError;
use crate::mcp::McpError;
use crate::provider::set::ProviderSetError;
use crate::secrets::SecretError;
use crate::store::StoreError;
use crate::tools::ToolSetupError;

/// Why the runtime could not start or answer. Each variant keeps the error
/// it comes from as its [`source`](std::error::Error::source), so a caller
/// can tell a bad key from a bad base URL without reading the message.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The tools could not be set up.
    #[error(transparent)]
    Tools(#[from] ToolSetupError),
    /// An MCP server's settings, connection or tool names cannot work.
    #[error(transparent)]
    Mcp(#[from] McpError),
    /// The stored keys cannot be opened (the master key is missing,
    /// unreadable or readable by others).
    #[error("could not open the stored keys: {0}")]
    Credentials(#[source] SecretError),
    /// The configured providers cannot be set up: a key, a base URL, a
    /// header, two providers of one name.
    #[error("could not set up the providers: {0}")]
    Providers(#[source] ProviderSetError),
    /// An actor tree, or a thread for its actors, could not be started.
    #[error("could not start {what}: {source}")]
    Start {
        /// What was being started.
        what: &'static str,
        /// Why the supervision crate refused.
        #[source]
        source: BuildError,
    },
    /// An actor the runtime had just started is not where it looked.
    #[error("could not find {what} in its tree: {source}")]
    Lookup {
        /// What was looked for.
        what: &'static str,
        /// What the lookup said.
        #[source]
        source: LookupError,
    },
    /// An actor of the runtime did not answer (it is stopping, or
    /// restarting after a crash).
    #[error("{what} did not answer: {source}")]
    Unavailable {
        /// Which actor.
        what: &'static str,
        /// What the call said.
        #[source]
        source: CallError,
    },
    /// An agent names tools that are not registered.
    #[error("agent `{agent}` names tools that are not registered: {}", tools.join(", "))]
    UnknownTools {
        /// The agent.
        agent: String,
        /// The names no tool has.
        tools: Vec<String>,
    },
    /// A task's `outputSchema` is not a usable JSON Schema.
    #[error("the task's outputSchema {reason}")]
    OutputSchema {
        /// What is wrong with it.
        reason: String,
    },
    /// No agent with this id.
    #[error("unknown agent `{id}` (configured: {known})")]
    UnknownAgent {
        /// The id asked for.
        id: String,
        /// The configured ids.
        known: String,
    },
    /// An agent sets `restartAboveMemoryMib`, but the program's global
    /// allocator is not [`crate::alloc::AccountingAllocator`], so its memory
    /// cannot be measured.
    #[error(
        "agent `{agent}` sets `restartAboveMemoryMib`, but the accounting allocator is not installed, so its memory cannot be measured: {hint}",
        hint = crate::alloc::INSTALL_HINT
    )]
    AllocatorNotInstalled {
        /// The first agent that sets it.
        agent: String,
    },
    /// A schedule in the config cannot be created.
    #[error("schedule `{id}`: {source}")]
    Schedule {
        /// The schedule id.
        id: String,
        /// Why the schedule was refused.
        #[source]
        source: ScheduleError,
    },
    /// The runtime's own actor system thread (when started from outside an
    /// actix system, e.g. a `#[tokio::main]` service) stopped.
    #[error(transparent)]
    SystemGone(#[from] SystemGone),
    /// A schedule in the config has no usable period: neither `cron` nor
    /// `every`, or an `every` that is not a duration. (A config file is
    /// refused for this when it is loaded; a config built in code gets here.)
    #[error("schedule `{id}`: {reason}")]
    SchedulePeriod {
        /// The schedule id.
        id: String,
        /// What is wrong with its period.
        reason: String,
    },
}
