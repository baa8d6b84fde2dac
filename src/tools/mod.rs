//! Tools: what agents act through, as supervised actors.
//!
//! ```text
//! tools (one_for_one)
//! ├── tool:<name>    ToolActor: hosts one Arc<dyn Tool>, runs its calls
//! └── router         ToolRouter: checks, validates and routes ToolRequest
//! ```
//!
//! An agent sends each tool call the model makes
//! ([`crate::provider::ToolCall`]) as a [`ToolRequest`] message to the
//! router (through [`Tools::call`]). The router checks the tool
//! exists and the agent may use it, validates the arguments against the
//! tool's JSON Schema (compiled once at registration), sends the call to the
//! tool's own actor and enforces the tool's timeout. Every failure is a
//! [`ToolError`] value that goes back to the model as the call's result
//! ([`tool_result`]); a panicking tool restarts only its own actor.
//!
//! A Rust user adds a tool by implementing [`Tool`], or [`TypedTool`] to
//! have the schema generated from a Rust type. The built-in tools are in
//! [`builtin`]; what each agent's built-in tools may reach beyond the
//! task's own user and conversation, and the limits they enforce, in
//! [`policy`].

mod actor;
mod builder;
pub(crate) mod builtin;
mod error;
pub(crate) mod policy;
mod registry;
mod router;
mod tool;

pub use builder::ToolSetupError;
pub(crate) use builder::{Tools, ToolsBuilder};
pub use error::{ArgumentIssue, ToolError};
pub(crate) use policy::{Grant, Policies, ToolPolicy};
pub(crate) use registry::{LiveEntry, LiveTools, ToolEntry};
pub(crate) use router::{tool_result, ToolRequest};
pub(crate) use tool::{check_name, schema_for};
pub use tool::{Tool, ToolContext, TypedTool};

#[cfg(test)]
mod tests;
