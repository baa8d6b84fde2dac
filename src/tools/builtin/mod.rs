//! The built-in tools, one per file. Each is a [`TypedTool`](crate::tools::TypedTool)
//! whose schema comes from its `…Args` type and which returns an output type
//! of its own ([`Scheduled`], [`TaskCreated`], [`MessageSent`],
//! [`MemoryStored`], a list of [`RecalledMemory`], [`WorkerManagerOutput`],
//! [`Analysis`]); the model sees it as the seed's `{"ok":true,"data":…}`,
//! written at dispatch.
//!
//! | tool | effect | repeat of the same call |
//! |---|---|---|
//! | `scheduler` | enqueues a `memory_compaction_worker` job | same job, none new |
//! | `worker_manager` | none (reads workers, jobs) | — |
//! | `create_task` | enqueues a task for an agent | same task, none new |
//! | `send_message` | appends a message to a conversation | same message, none new |
//! | `remember` | stores a memory | same memory, none new |
//! | `recall` | touches the memories it returns | — |
//! | `analyze_code` | none (reads a file under the project root) | — |
//!
//! Each acts on the task's own user and conversation unless the agent's
//! config grants more, and the job-creating ones stay within the agent's
//! limits; see [`policy`](crate::tools::policy).
//!
//! "Repeat" means the same task, step and model call id
//! ([`ToolContext::idempotency_key`](crate::tools::ToolContext::idempotency_key)),
//! as happens when a task resumes after a crash. [`jobs`] states the exact
//! guarantee for the two job-creating tools.

pub(crate) mod analyze_code;
pub(crate) mod create_task;
pub(crate) mod jobs;
pub(crate) mod recall;
pub(crate) mod remember;
pub(crate) mod scheduler;
pub(crate) mod send_message;
pub(crate) mod worker_manager;

use std::path::PathBuf;
use std::sync::Arc;

use troupe_actors::ActorRef;

use crate::conversation::ConversationStore;
use crate::engine::WorkerEngine;
use crate::memory::actor::MemoryActor;
use crate::store::IdempotencyStore;

pub(crate) use analyze_code::AnalyzeCodeTool;
pub(crate) use create_task::CreateTaskTool;
pub(crate) use recall::RecallTool;
pub(crate) use remember::RememberTool;
pub(crate) use scheduler::SchedulerTool;
pub(crate) use send_message::SendMessageTool;
pub(crate) use worker_manager::WorkerManagerTool;

use super::{Policies, Tool};

/// What the built-in tools work on; [`Builtins::tools`] makes all seven.
#[derive(Clone)]
pub(crate) struct Builtins {
    /// The job engine (`scheduler`, `create_task`, `worker_manager`).
    pub engine: WorkerEngine,
    /// The idempotency registry that makes job-creating calls happen once.
    pub idempotency: Option<Arc<dyn IdempotencyStore>>,
    /// Where `send_message` stores messages.
    pub conversations: Arc<dyn ConversationStore>,
    /// The Memory actor (`remember`, `recall`).
    pub memory: ActorRef<MemoryActor>,
    /// The only directory tree `analyze_code` may read.
    pub project_root: PathBuf,
    /// What each agent's tools may reach, and the limits they enforce.
    pub policies: Arc<Policies>,
}

impl Builtins {
    /// All built-in tools, ready for [`ToolsBuilder::tool_arc`](crate::tools::ToolsBuilder::tool_arc).
    pub(crate) fn tools(&self) -> Vec<Arc<dyn Tool>> {
        vec![
            Arc::new(SchedulerTool::new(
                self.engine.clone(),
                self.idempotency.clone(),
                self.policies.clone(),
            )),
            Arc::new(WorkerManagerTool::new(
                self.engine.clone(),
                self.policies.clone(),
            )),
            Arc::new(CreateTaskTool::new(
                self.engine.clone(),
                self.idempotency.clone(),
                self.policies.clone(),
            )),
            Arc::new(SendMessageTool::new(
                self.conversations.clone(),
                self.policies.clone(),
            )),
            Arc::new(RememberTool::new(
                self.memory.recipient(),
                self.policies.clone(),
            )),
            Arc::new(RecallTool::new(self.memory.recipient())),
            Arc::new(AnalyzeCodeTool::new(
                self.project_root.clone(),
                self.policies.clone(),
            )),
        ]
    }
}
