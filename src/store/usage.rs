//! The usage port: what every model call spent ([`UsageRecord`]), totals
//! per agent, provider and day, and the [`UsageStore`] trait that keeps
//! them. Prices, budgets and the meter the provider actors call are the
//! domain's (`crate::usage`).
//!
//! Costs are kept as whole nano-dollars ([`UsageTotals::cost_nanos`]) so
//! totals add up exactly; [`UsageTotals::cost_usd`] converts for display.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::job::JobId;

use super::StoreError;

/// One answered model call, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// Record id (UUID v7: ordered by time).
    pub id: uuid::Uuid,
    /// When the answer arrived.
    pub at: DateTime<Utc>,
    /// Configured provider name that answered.
    pub provider: String,
    /// Model as requested from that provider.
    pub model: String,
    /// Agent the call served, if any (budgets are per agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Job the call served, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    /// Input tokens (cached ones included).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Part of `input_tokens` served from the provider's prompt cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Wall time of the HTTP call, in milliseconds.
    pub latency_ms: u64,
    /// Cost in nano-dollars (1e-9 USD); 0 when the model has no price.
    pub cost_nanos: u64,
    /// Whether the price table knew the model (false: cost is 0, not free).
    pub priced: bool,
}

impl UsageRecord {
    /// The UTC day the call counts toward.
    pub fn day(&self) -> NaiveDate {
        self.at.date_naive()
    }
}

/// Sums over a set of calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    /// Answered calls.
    pub calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in nano-dollars.
    pub cost_nanos: u64,
}

impl UsageTotals {
    /// Adds one call.
    pub fn add(&mut self, r: &UsageRecord) {
        self.calls += 1;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cost_nanos += r.cost_nanos;
    }

    /// Adds other totals (a batch of calls).
    pub fn merge(&mut self, other: &UsageTotals) {
        self.calls += other.calls;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_nanos += other.cost_nanos;
    }

    /// Input plus output tokens: what a token budget counts.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Cost in US dollars.
    pub fn cost_usd(&self) -> f64 {
        self.cost_nanos as f64 / 1e9
    }
}

/// What a total is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UsageScope {
    /// One agent's calls, whatever provider answered.
    Agent(String),
    /// One provider's calls, whatever agent asked.
    Provider(String),
}

/// A day's totals per agent and per provider.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayUsage {
    /// The UTC day.
    pub day: Option<NaiveDate>,
    /// Totals per agent name (calls without an agent are not listed here).
    pub by_agent: BTreeMap<String, UsageTotals>,
    /// Totals per provider name.
    pub by_provider: BTreeMap<String, UsageTotals>,
}

/// Where usage records and running totals are kept.
///
/// Implementations keep totals per (agent, day) and (provider, day) up to
/// date as records arrive, because a budget check reads one of them before
/// every call. `record` returns once the record is as durable as the store
/// promises for its other writes.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Stores one call and adds it to its agent's and provider's day totals.
    async fn record(&self, record: &UsageRecord) -> Result<(), StoreError>;

    /// Totals of `scope` on `day` (zero when nothing was recorded).
    async fn totals(&self, scope: &UsageScope, day: NaiveDate) -> Result<UsageTotals, StoreError>;

    /// Every agent's and provider's totals on `day`.
    async fn day_usage(&self, day: NaiveDate) -> Result<DayUsage, StoreError>;

    /// The calls recorded on `day`, in the order they were recorded (by
    /// time: calls made in the same millisecond keep their recording order).
    async fn calls(&self, day: NaiveDate) -> Result<Vec<UsageRecord>, StoreError>;
}
