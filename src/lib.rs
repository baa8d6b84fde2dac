//! Troupe runs LLM agents as supervised actors, around the clock: agents
//! take tasks from a durable queue, think with a model, act through tools,
//! remember what they learn, and keep going when providers, tools or the
//! process itself fail.
//!
//! A service embeds it from a plain `#[tokio::main]`:
//!
//! ```
//! use troupe::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let config = TroupeConfig::default()
//!     .data_dir(dir.path())
//!     .agent(AgentConfig::new("ed", "Ed", "You edit.", ModelConfig::new("offline", "offline")));
//! let troupe = Troupe::builder(config).start().await?;
//! let answer = troupe.ask("ed", "Say hello", TaskOptions::default()).await?;
//! println!("{}", answer.text);
//! troupe.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The surface, by what it is for (the crate root and these modules are all
//! of it; everything else is the crate's own):
//! - **The runtime**: [`Troupe`] (a `Clone + Send + Sync` handle),
//!   [`TroupeBuilder`], tasks in ([`Troupe::task`], [`Troupe::ask`]) and
//!   answers out ([`Answer`], [`TaskError`]), [`Memories`],
//!   [`Conversations`]; [`RuntimeError`] and the errors it carries.
//! - **Configuration**: [`TroupeConfig`] (the `troupe.toml` file, or built
//!   in code) and its sections, [`AgentConfig`], [`ModelConfig`],
//!   [`ProviderConfig`]; [`names`] for the built-in workers and tools.
//! - **Extending it**: [`Tool`] / [`TypedTool`] for abilities, [`Worker`]
//!   for background jobs on the same engine ([`WorkerEngine`]; the job
//!   model in [`job`]), [`ModelGateway`] for a model of your own (a
//!   [`GenerateRequest`] in, a [`GenerateResponse`] out); each is written
//!   with [`macro@async_trait`].
//! - **Storage**: the ports in [`store`] (what a backend implements, and
//!   the conformance suite it must pass), [`sled`] (the embedded default),
//!   [`in_memory`]; [`testing`] for your own tests; [`secrets`] for
//!   provider keys at rest.
//! - **Faces**: [`api`] (the typed control API and a client of a running
//!   daemon), [`http`] (serving it), the `troupe` binary.
//! - **Memory accounting**: [`alloc`], the `#[global_allocator]` that
//!   charges each worker its heap.
//!
//! How it fits together is in ARCHITECTURE.md.

#![warn(missing_docs, unreachable_pub, unnameable_types)]

pub(crate) mod agent;
pub mod alloc;
pub mod api;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod conversation;
pub(crate) mod engine;
pub(crate) mod escape;
pub(crate) mod events;
pub mod http;
pub mod in_memory;
pub mod job;
pub(crate) mod mcp;
pub(crate) mod memory;
pub(crate) mod metrics;
pub mod names;
pub mod postgres;
pub(crate) mod provider;
pub(crate) mod runtime;
pub mod secrets;
pub mod sled;
pub mod store;
pub mod testing;
pub(crate) mod tools;

#[cfg(test)]
mod test_support;

pub use agent::{CallMeta, ModelGateway, ProcessingResult, ToolCallRecord};
pub use config::{
    AgentApprovals, AgentConfig, AgentGrants, AgentLimits, ConfigError, EngineSection, HttpSection,
    McpServerConfig, MemorySection, ModelConfig, ScheduleConfig, StoreKind, StoreSection,
    TelemetrySection, ToolsSection, TroupeConfig,
};
pub use engine::{
    BoxError, DrainReport, EngineBuilder, EngineConfig, EngineError, EventStream, JobContext,
    NewJob, Registration, Worker, WorkerCategory, WorkerEngine, WorkerError, WorkerInfo,
};
pub use events::{TaskEvent, TaskEventKind};
pub use job::schedule::{Schedule, ScheduleSpec};
pub use job::{
    Approval, ApprovalId, ApprovalState, Decision, EnqueueOptions, Job, JobCtx, JobId, JobStatus,
};
pub use mcp::McpError;
pub use memory::ScoredMemory;
pub use provider::{
    ArgumentsError, BreakerConfig, BreakerState, Budget, ErrorKind, FinishReason, GenerateRequest,
    GenerateResponse, Message, ModelRef, Price, PricingConfig, ProviderConfig, ProviderError,
    ProviderKind, ProviderSetError, RateLimitConfig, TextSink, ToolCall, ToolChoice,
    ToolDefinition, ToolResult, Usage,
};
pub use runtime::{
    Answer, Conversations, Memories, RuntimeError, TaskError, TaskOptions, Troupe, TroupeBuilder,
};
pub use secrets::ApiKey;
pub use store::{
    ChatMessage, Memory, MemoryScope, MemoryType, NewMemory, NewMessage, Role, StoreError,
};
pub use tools::{ArgumentIssue, Tool, ToolContext, ToolError, ToolSetupError, TypedTool};
/// The supervision crate's policies, which two config fields use.
pub use troupe_actors::{BackoffPolicy, RetryPolicy};

/// The attribute every trait an embedder implements ([`Tool`],
/// [`TypedTool`], [`Worker`], [`ModelGateway`]) is written with, so an
/// implementation needs no `async-trait` dependency of its own.
pub use async_trait::async_trait;

/// The `troupe` command line, for the binary's `main` (`src/main.rs`);
/// not an embedding surface.
#[doc(hidden)]
pub use cli::main as cli_main;

/// What the provider benchmarks (`examples/bench_provider.rs`,
/// `examples/bench_provider_actor.rs`) measure directly, below the runtime:
/// the provider client, its actor, the set of actors with failover, and
/// the usage meter; and a tool call through the router (`bench_mcp.rs`). Not an embedding surface and not covered by any
/// stability promise; hidden from the docs.
#[doc(hidden)]
pub mod __bench {
    pub use crate::provider::{
        Generate, KeySource, Probe, Provider, ProviderActor, ProviderSet, UsageMeter,
    };

    /// One tool call through `troupe`'s ToolRouter as agent `agent` would
    /// make it (`examples/bench_mcp.rs`).
    pub async fn call_tool(
        troupe: &crate::Troupe,
        agent: &str,
        tool: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, crate::ToolError> {
        troupe.route_tool_call(agent, tool, args).await
    }
}

/// What most programs that embed Troupe use, in one `use troupe::prelude::*`.
pub mod prelude {
    pub use crate::async_trait;
    pub use crate::{
        AgentConfig, Answer, EnqueueOptions, JobContext, JobCtx, MemoryScope, ModelConfig,
        ProviderConfig, ProviderKind, TaskError, TaskOptions, Tool, ToolContext, ToolError, Troupe,
        TroupeConfig, TypedTool, Worker, WorkerCategory, WorkerError,
    };
}
