//! The control API's paths, spelled once for the server's routes and the
//! client's requests. `{id}` stands for one path segment (a job id, an
//! agent id, a conversation id), percent-encoded by the client.

/// Alive.
pub const HEALTHZ: &str = "/healthz";
/// Ready.
pub const READYZ: &str = "/readyz";
/// Prometheus text.
pub const METRICS: &str = "/metrics";
/// Every route below needs the token (and `/metrics` too).
pub const V1: &str = "/v1";
/// Enqueue (POST), list (GET).
pub const JOBS: &str = "/v1/jobs";
/// One job.
pub const JOB: &str = "/v1/jobs/{id}";
/// A job's events (Server-Sent Events).
pub const EVENTS: &str = "/v1/jobs/{id}/events";
/// The approvals waiting for a person.
pub const APPROVALS: &str = "/v1/approvals";
/// Approve a tool call.
pub const APPROVE: &str = "/v1/approvals/{id}/approve";
/// Deny a tool call.
pub const DENY: &str = "/v1/approvals/{id}/deny";
/// Cancel a job.
pub const CANCEL: &str = "/v1/jobs/{id}/cancel";
/// The workers.
pub const WORKERS: &str = "/v1/workers";
/// The nodes sharing the store (a cluster).
pub const NODES: &str = "/v1/nodes";
/// The agents.
pub const AGENTS: &str = "/v1/agents";
/// An agent's tasks.
pub const TASKS: &str = "/v1/agents/{id}/tasks";
/// An agent's memories.
pub const MEMORIES: &str = "/v1/agents/{id}/memories";
/// A conversation's messages.
pub const MESSAGES: &str = "/v1/conversations/{id}/messages";
/// Pause.
pub const PAUSE: &str = "/v1/pause";
/// Resume.
pub const RESUME: &str = "/v1/resume";
/// The one-screen status.
pub const STATUS: &str = "/v1/status";
/// An agent task's checkpoint records.
pub const STEPS: &str = "/v1/jobs/{id}/steps";
/// Per-minute history, provider calls, spend (the Studio's overview).
pub const STATS: &str = "/v1/stats";
/// One agent's settings.
pub const AGENT: &str = "/v1/agents/{id}";
/// An agent's memories ranked for a query.
pub const RECALL: &str = "/v1/agents/{id}/recall";

/// `route` below [`V1`], as the server's `/v1` scope names it.
pub fn in_v1(route: &str) -> &str {
    route.strip_prefix(V1).unwrap_or(route)
}

/// The segments of `route` with `{id}` replaced by `id` (not encoded:
/// the URL builder encodes each segment).
pub fn segments<'a>(route: &'a str, id: &'a str) -> impl Iterator<Item = &'a str> {
    route
        .trim_start_matches('/')
        .split('/')
        .map(move |s| if s == "{id}" { id } else { s })
}
