//! Agents: configured personas that take tasks from the job engine, think
//! with a model, act through tools and remember what they learn.

mod compaction;
pub mod context;
pub mod gateway;
pub mod offline;
pub mod processing;
mod step;
mod task;
mod worker;

pub use compaction::CompactionWorker;
pub use gateway::{CallMeta, ModelGateway, OfflineGateway, ProviderGateway};
pub use offline::{OfflineModel, OFFLINE_PROVIDER};
pub use processing::{ProcessingResult, ToolCallRecord};
pub use task::AgentRuntime;
pub use worker::{AgentWorker, RuntimeSlot};
