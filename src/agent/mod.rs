//! Agents: configured personas that take tasks from the job engine, think
//! with a model, act through tools and remember what they learn.

mod compaction;
pub(crate) mod context;
pub(crate) mod gateway;
mod history;
pub(crate) mod offline;
mod output;
mod policy;
pub(crate) mod processing;
mod step;
mod task;
mod worker;

pub(crate) use compaction::CompactionWorker;
pub use gateway::{CallMeta, ModelGateway};
pub(crate) use gateway::{OfflineGateway, ProviderGateway};
pub(crate) use history::rebuild as rebuild_events;
pub(crate) use offline::OFFLINE_PROVIDER;
pub(crate) use output::{check_schema, closed};
pub(crate) use policy::tool_policies;
pub use processing::{ProcessingResult, ToolCallRecord};
pub(crate) use task::AgentRuntime;
pub(crate) use worker::{AgentWorker, RuntimeSlot};
