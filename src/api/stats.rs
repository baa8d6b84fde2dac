//! `GET /v1/stats`: what the Studio's overview draws beyond the status
//! screen: jobs ended per minute over the last hour, each provider's calls,
//! errors by class and latency, and each agent's spend today against its
//! budget. All of it is read from figures the runtime keeps in memory (no
//! scan of the jobs), so the answer costs the same with a million jobs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::provider::{BreakerState, Budget};

/// `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsAnswer {
    /// The last hour, one entry per minute, oldest first (empty with no
    /// daemon: the counts live in the running process).
    pub minutes: Vec<MinuteStat>,
    /// Each configured provider.
    pub providers: Vec<ProviderStat>,
    /// Each configured agent's spend today (UTC).
    pub spend: Vec<AgentSpend>,
}

/// Jobs ended in one minute (by this process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinuteStat {
    /// The minute's start.
    pub at: DateTime<Utc>,
    /// Jobs that ended completed in it.
    pub completed: u64,
    /// Jobs that ended failed in it.
    pub failed: u64,
}

/// One provider's calls since the process started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStat {
    /// Configured name.
    pub name: String,
    /// Its circuit; `null` with no daemon.
    pub circuit: Option<BreakerState>,
    /// Answered calls.
    pub ok: u64,
    /// Failed calls by error class (`serverError`, `rateLimited`, …).
    pub errors: BTreeMap<String, u64>,
    /// Mean wall time of the answered calls, in milliseconds.
    pub mean_latency_ms: Option<f64>,
}

/// One agent's model calls today against its daily budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpend {
    /// The agent.
    pub agent: String,
    /// What its calls cost today, in US dollars.
    pub cost_usd: f64,
    /// Input plus output tokens today.
    pub tokens: u64,
    /// Its daily limits, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// Each of `agents`' spend in `day`, with its budget.
pub(crate) fn agent_spend(
    agents: &[crate::config::AgentConfig],
    day: &crate::store::DayUsage,
) -> Vec<AgentSpend> {
    agents
        .iter()
        .map(|a| {
            let totals = day.by_agent.get(&a.id).cloned().unwrap_or_default();
            AgentSpend {
                agent: a.id.clone(),
                cost_usd: totals.cost_usd() + 0.0,
                tokens: totals.input_tokens + totals.output_tokens,
                budget: a.budget,
            }
        })
        .collect()
}
