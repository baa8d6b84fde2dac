//! The control API, typed: what the daemon serves over HTTP and the CLI
//! asks for, written once.
//!
//! Every operation is a method of [`Control`], taking a request type and
//! answering a typed value or a [`ControlError`]. The faces only translate:
//! `src/http` parses a request off the wire ([`parse_body`],
//! [`parse_query`]), calls a [`Control`] and writes the answer back as
//! JSON; `src/cli` builds the same request from its flags, calls whichever
//! [`Control`] reaches the data, and renders the answer. So the wire format
//! is these types' serde form, and a command behaves the same whether the
//! daemon runs or not.
//!
//! | implementation | over | used by |
//! |---|---|---|
//! | [`LocalControl`] | a running runtime ([`crate::runtime::Troupe`]) | the HTTP handlers; `troupe task --wait`, `troupe demo` with no daemon |
//! | [`StoreControl`] | the store alone, no runtime started | the CLI's job, task, memory, pause and status commands with no daemon |
//! | [`RemoteControl`] | a daemon's HTTP API | the CLI when a daemon holds the data directory, or with `--server` |
//!
//! Every call into the runtime is in `local.rs`.

mod agent_detail;
mod agents;
mod approvals;
mod error;
pub(crate) mod events;
mod jobs;
mod local;
mod offline;
mod parse;
mod remote;
pub mod routes;
mod stats;
mod status;
mod steps;
mod workers;

use async_trait::async_trait;

pub use agent_detail::{
    AgentDetail, RecallAnswer, RecallQuery, Recalled, DEFAULT_RECALL, MAX_RECALL,
};
pub use agents::{
    AgentState, AgentsAnswer, MemoriesAnswer, MemoriesQuery, MessagesAnswer, TaskAnswer,
    TaskRequest,
};
pub use approvals::{
    parse_approval_id, ApprovalsAnswer, ApproveRequest, DecidedAnswer, DenyRequest,
};
pub use error::{ControlError, ErrorBody, ErrorDetail};
pub use events::{parse_last_event_id, EventsStream, FramesStream, LAST_EVENT_ID};
pub use jobs::{
    CancelAnswer, CancelKind, EnqueueRequest, Enqueued, JobField, JobsPage, JobsQuery, ListedJobs,
    DEFAULT_PAGE, MAX_PAGE, MAX_PAGE_BYTES,
};
pub use local::LocalControl;
pub use offline::StoreControl;
pub use parse::{parse_body, parse_job_id, parse_query, Request};
pub use remote::RemoteControl;
pub use stats::{AgentSpend, MinuteStat, ProviderStat, StatsAnswer};
pub use status::{
    Health, ProviderState, Readiness, StatusScreen, StoreCheck, SupervisorState, STATUS_RUNNING,
};
pub use steps::{StepsAnswer, MAX_STEPS_LISTED};
pub use workers::{NodesAnswer, PauseRequest, PauseView, PausedAnswer, WorkerState, WorkersAnswer};

use crate::job::{Job, JobId};

/// Every operation of the control API. One implementation per way to
/// reach the data (see the module docs); the faces hold a `dyn Control`
/// and do not know which.
///
/// Implementations validate their requests ([`Request::validate`]) even
/// when the HTTP layer already did, so a request built in Rust is held to
/// the same rules as one read off the wire.
#[async_trait]
pub trait Control: Send + Sync {
    /// Queues a job (`POST /v1/jobs`).
    async fn enqueue(&self, request: EnqueueRequest) -> Result<Enqueued, ControlError>;

    /// A page of jobs, newest first (`GET /v1/jobs`).
    async fn jobs(&self, query: JobsQuery) -> Result<JobsPage, ControlError>;

    /// One job (`GET /v1/jobs/{id}`).
    async fn job(&self, id: JobId) -> Result<Job, ControlError>;

    /// Cancels a job (`POST /v1/jobs/{id}/cancel`).
    async fn cancel(&self, id: JobId) -> Result<CancelAnswer, ControlError>;

    /// The workers, with pause state and jobs (`GET /v1/workers`).
    async fn workers(&self) -> Result<WorkersAnswer, ControlError>;

    /// The nodes sharing the store, alive or not (`GET /v1/nodes`).
    async fn nodes(&self) -> Result<NodesAnswer, ControlError>;

    /// The configured agents, with pause state and jobs (`GET /v1/agents`).
    async fn agents(&self) -> Result<AgentsAnswer, ControlError>;

    /// Gives `agent` a task (`POST /v1/agents/{id}/tasks`).
    async fn task(&self, agent: &str, request: TaskRequest) -> Result<TaskAnswer, ControlError>;

    /// An agent's memories (`GET /v1/agents/{id}/memories`).
    async fn memories(
        &self,
        agent: &str,
        query: MemoriesQuery,
    ) -> Result<MemoriesAnswer, ControlError>;

    /// A conversation's messages (`GET /v1/conversations/{id}/messages`).
    async fn messages(&self, conversation: &str) -> Result<MessagesAnswer, ControlError>;

    /// Stops claiming jobs of the target, durably (`POST /v1/pause`).
    async fn pause(&self, request: PauseRequest) -> Result<PausedAnswer, ControlError>;

    /// Claims jobs of the target again (`POST /v1/resume`).
    async fn resume(&self, request: PauseRequest) -> Result<PausedAnswer, ControlError>;

    /// The tool calls waiting for a person's approval (`GET /v1/approvals`).
    async fn approvals(&self) -> Result<ApprovalsAnswer, ControlError>;

    /// Approves a tool call (`POST /v1/approvals/{id}/approve`); 409 when it
    /// was decided before (or its task cancelled).
    async fn approve(
        &self,
        id: crate::job::ApprovalId,
        request: ApproveRequest,
    ) -> Result<DecidedAnswer, ControlError>;

    /// Denies a tool call (`POST /v1/approvals/{id}/deny`): the model gets
    /// the reason as the call's error; 409 as for `approve`.
    async fn deny(
        &self,
        id: crate::job::ApprovalId,
        request: DenyRequest,
    ) -> Result<DecidedAnswer, ControlError>;

    /// The one-screen status (`GET /v1/status`).
    async fn status(&self) -> Result<StatusScreen, ControlError>;

    /// An agent task's checkpoint records, read only (`GET
    /// /v1/jobs/{id}/steps`): the Studio's transcript.
    async fn steps(&self, id: JobId) -> Result<StepsAnswer, ControlError>;

    /// Jobs ended per minute over the last hour, provider calls, errors and
    /// latency, spend against budgets (`GET /v1/stats`): the Studio's
    /// overview.
    async fn stats(&self) -> Result<StatsAnswer, ControlError>;

    /// One agent's settings and state (`GET /v1/agents/{id}`).
    async fn agent(&self, agent: &str) -> Result<AgentDetail, ControlError>;

    /// An agent's memories ranked for a query, with their scores (`GET
    /// /v1/agents/{id}/recall`).
    async fn recall(&self, agent: &str, query: RecallQuery) -> Result<RecallAnswer, ControlError>;

    /// Alive (`GET /healthz`).
    async fn health(&self) -> Result<Health, ControlError>;

    /// Ready, with why not (`GET /readyz`).
    async fn readiness(&self) -> Result<Readiness, ControlError>;

    /// Every `troupe_*` metric, Prometheus text (`GET /metrics`).
    async fn metrics(&self) -> Result<String, ControlError>;

    /// Follows a job's events after `after` (the `seq` last seen; 0 from
    /// the start), ending after its terminal event (`GET
    /// /v1/jobs/{id}/events`, Server-Sent Events). Needs a running
    /// runtime: 503 from the others.
    async fn events(&self, id: JobId, after: u64) -> Result<EventsStream, ControlError> {
        let _ = (id, after);
        Err(ControlError::Unavailable(
            "following a job's events needs a running runtime (`troupe run`, or `--follow` with no daemon)"
                .into(),
        ))
    }

    /// [`events`](Self::events) as SSE frames, what the route writes. By
    /// default each event is written here; a runtime's control hands out
    /// the frames its hub wrote once for every follower.
    async fn event_frames(&self, id: JobId, after: u64) -> Result<FramesStream, ControlError> {
        use futures::StreamExt;
        let events = self.events(id, after).await?;
        Ok(Box::pin(events.map(|e| {
            e.map(|e| std::sync::Arc::from(crate::events::sse::frame(&e)))
        })))
    }

    /// Lets go of what this control holds: a runtime it owns is drained and
    /// stopped. Nothing for the others.
    async fn close(&self) -> Result<(), ControlError> {
        Ok(())
    }
}
