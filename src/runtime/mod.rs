//! The runtime façade: what a Rust service embeds, and what the daemon runs.
//!
//! ```text
//! troupe (one_for_one)            engine (rest_for_one)          tools (one_for_one)
//! └── memory   MemoryActor        ├── workers                    ├── router   ToolRouter
//!     providers (one_for_one)     │   ├── worker:echo, sleep     └── tool:<name> per tool
//!     └── <name> ProviderActor    │   ├── worker:memory_compaction_worker
//!                                 │   └── worker:<agent id>  one per agent (the task loop)
//!                                 └── scheduler
//! ```
//! The three trees start in that order: the tools need the Memory actor and
//! the engine (to enqueue jobs), and the agents need the tools; agents reach
//! their shared runtime through a slot filled before any job is claimed.
//! With `[[mcpServers]]`, an `mcp` tree (one actor per server connection)
//! starts first of all, so a server that cannot be reached or a tool name
//! that cannot work stops the start before anything else runs.
//!
//! [`Troupe::builder`] collects the config, a store (any adapter of the
//! storage ports; sled in the data directory by default), the model gateway,
//! extra tools and workers; [`TroupeBuilder::start`] starts the trees, on
//! the caller's actix system or on one of its own, so a `#[tokio::main]`
//! service needs no actix. The [`Troupe`] handle is `Clone + Send + Sync`:
//! tasks in ([`Troupe::task`], [`Troupe::ask`]) and answers out
//! ([`Troupe::wait`] → [`Answer`] or [`TaskError`]), memories and
//! conversations through handles, the engine for background jobs.

mod builder;
mod error;
mod handle;
mod handles;
mod metrics;
mod store;
mod task;

pub use builder::TroupeBuilder;
pub use error::RuntimeError;
pub use handle::Troupe;
pub use handles::{Conversations, Memories};
pub(crate) use store::{connect_store, open_store, postgres_config};

pub use task::{Answer, TaskError, TaskOptions};

#[cfg(test)]
mod tests;
