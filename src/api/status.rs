//! Health, readiness, and the one-screen status.

use serde::{Deserialize, Serialize};

use super::{AgentState, WorkerState};
use crate::job::Job;
use crate::provider::BreakerState;
use crate::store::DayUsage;

/// `GET /healthz`: the process answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

impl Health {
    /// Alive.
    pub fn ok() -> Self {
        Health {
            status: "ok".into(),
        }
    }
}

/// `GET /readyz` (200 when `ready`, else 503 with the same body): the
/// store answers, every supervision tree is up, no provider actor has
/// stopped for good. An open circuit marks the daemon `degraded` but not
/// unready: failover and worker jobs still run without that provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Whether the daemon can do its work.
    pub ready: bool,
    /// Whether some provider's circuit is not closed.
    pub degraded: bool,
    /// The store's answer to a read.
    pub store: StoreCheck,
    /// Each supervision tree (`troupe`, `engine`, `tools`).
    pub supervisors: Vec<SupervisorState>,
    /// Each configured provider.
    pub providers: Vec<ProviderState>,
}

/// Whether the store answered a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreCheck {
    /// It answered.
    pub ok: bool,
    /// What it said instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One supervision tree's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorState {
    /// The tree's name.
    pub name: String,
    /// Its root's state (`running`, `restarting`, …).
    pub state: String,
    /// Up and running.
    pub ok: bool,
    /// How it ended, if it has: `stopped` or the escalation.
    pub ended: Option<String>,
}

/// One configured provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderState {
    /// Configured name.
    pub name: String,
    /// Its circuit breaker; `null` when no daemon runs it.
    pub circuit: Option<BreakerState>,
    /// Its actor: `running`, `restarting`, `stopped`, `not started`, or
    /// `not running` when no daemon runs it.
    pub actor: String,
    /// Times the actor was restarted.
    pub restarts: u64,
    /// Its actor has not stopped for good.
    pub ok: bool,
}

impl ProviderState {
    /// A configured provider as seen with no daemon running it.
    pub fn not_running(name: impl Into<String>) -> Self {
        ProviderState {
            name: name.into(),
            circuit: None,
            actor: "not running".into(),
            restarts: 0,
            ok: false,
        }
    }
}

/// `GET /v1/status`, `troupe status`: workers, agents, the queue, running
/// jobs, providers and today's spend, in one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusScreen {
    /// The daemon's address as the client reached it; `null` when no
    /// daemon runs (the store was read directly).
    pub daemon: Option<String>,
    /// Whether the daemon is ready (see [`Readiness`]); left out with no
    /// daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Every worker known.
    pub workers: Vec<WorkerState>,
    /// Whether everything is paused.
    pub paused_all: bool,
    /// The configured agents.
    pub agents: Vec<AgentState>,
    /// Jobs waiting, over all workers.
    pub queue_depth: u64,
    /// Jobs parked awaiting approval of tool calls (holding no worker slot).
    #[serde(default)]
    pub waiting: u64,
    /// Tool calls waiting for a person's decision (`troupe approvals`).
    #[serde(default)]
    pub pending_approvals: u64,
    /// Running jobs, newest first, at most [`STATUS_RUNNING`].
    pub running: Vec<Job>,
    /// The configured providers.
    pub providers: Vec<ProviderState>,
    /// What the model calls of today (UTC) cost, in US dollars.
    pub spend_today_usd: f64,
    /// The nodes sharing the store (a cluster); left out for a store one
    /// process holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::store::NodeInfo>,
}

/// How many running jobs the status screen lists.
pub const STATUS_RUNNING: usize = 20;

/// Today's spend over every agent. (Folded from +0.0: a float `sum` of
/// nothing is -0.0, shown as "$-0.0000".)
pub(crate) fn spend(day: &DayUsage) -> f64 {
    day.by_agent.values().fold(0.0, |sum, t| sum + t.cost_usd())
}
