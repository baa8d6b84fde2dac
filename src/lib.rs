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
//! The surface, by what it is for:
//! - **The runtime**: [`Troupe`] (a `Clone + Send + Sync` handle),
//!   [`TroupeBuilder`], tasks in ([`Troupe::task`], [`Troupe::ask`]) and
//!   answers out ([`Answer`], [`TaskError`]), [`Memories`],
//!   [`Conversations`].
//! - **Configuration**: [`TroupeConfig`] (the `troupe.toml` file, or built
//!   in code), [`AgentConfig`], [`ModelConfig`], [`ProviderConfig`].
//! - **Extending it**: [`Tool`] / [`TypedTool`] for abilities, [`Worker`]
//!   for background jobs on the same engine ([`WorkerEngine`]),
//!   [`ModelGateway`] for a model of your own.
//! - **Storage**: the ports in [`store`] (what a backend implements, and
//!   the conformance suite it must pass), [`sled`] (the embedded default),
//!   [`in_memory`]; [`testing`] for your own tests.
//! - **Faces**: [`api`] (the typed control API and a client of a running
//!   daemon), [`http`] (serving it), the `troupe` binary.
//!
//! How it fits together is in ARCHITECTURE.md.

#![warn(missing_docs, unreachable_pub)]

pub mod agent;
pub mod alloc;
pub mod api;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod engine;
pub mod http;
pub mod in_memory;
pub mod job;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod provider;
pub mod runtime;
pub mod secrets;
pub mod sled;
pub mod store;
pub mod testing;
pub mod tools;

#[cfg(test)]
mod test_support;

pub use agent::{CallMeta, ModelGateway, ProcessingResult, ToolCallRecord};
pub use config::{AgentConfig, ConfigError, ModelConfig, ScheduleConfig, TroupeConfig};
pub use engine::{
    BoxError, DrainReport, EngineConfig, EngineError, JobContext, NewJob, Registration, Worker,
    WorkerCategory, WorkerEngine, WorkerError, WorkerInfo,
};
pub use job::schedule::{Schedule, ScheduleSpec};
pub use job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus};
pub use memory::ScoredMemory;
pub use provider::{
    Budget, ErrorKind, GenerateRequest, GenerateResponse, Message, ModelRef, ProviderConfig,
    ProviderError, ProviderKind, ToolCall, ToolDefinition, Usage,
};
pub use runtime::{
    Answer, Conversations, Memories, RuntimeError, TaskError, TaskOptions, Troupe, TroupeBuilder,
};
pub use secrets::ApiKey;
pub use store::{
    ChatMessage, Memory, MemoryScope, MemoryType, NewMemory, NewMessage, Role, StoreError,
};
pub use tools::{Tool, ToolContext, ToolError, TypedTool};

/// What most programs that embed Troupe use, in one `use troupe::prelude::*`.
pub mod prelude {
    pub use crate::{
        AgentConfig, Answer, EnqueueOptions, JobContext, JobCtx, MemoryScope, ModelConfig,
        ProviderConfig, ProviderKind, TaskError, TaskOptions, Tool, ToolContext, ToolError, Troupe,
        TroupeConfig, TypedTool, Worker, WorkerCategory, WorkerError,
    };
}
