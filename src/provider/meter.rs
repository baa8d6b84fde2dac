//! [`UsageMeter`]: budget checks before a call and records after it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Clock, ErrorKind, PriceTable, ProviderError, SystemClock, Usage};
use crate::job::JobId;
use crate::store::{StoreError, UsageRecord, UsageScope, UsageStore, UsageTotals};

/// An agent's daily spending limit (UTC days). Either or both limits may be
/// set; the first one reached refuses further calls until the next day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Budget {
    /// Input plus output tokens per day.
    pub daily_tokens: Option<u64>,
    /// US dollars per day, at the price table's prices.
    pub daily_cost_usd: Option<f64>,
}

impl Budget {
    /// A token limit.
    pub fn tokens(limit: u64) -> Self {
        Budget {
            daily_tokens: Some(limit),
            daily_cost_usd: None,
        }
    }

    /// A cost limit in US dollars.
    pub fn cost_usd(limit: f64) -> Self {
        Budget {
            daily_tokens: None,
            daily_cost_usd: Some(limit),
        }
    }

    /// Why `spent` is over this budget, or `None` while there is room left.
    fn exceeded(&self, spent: &UsageTotals) -> Option<String> {
        if let Some(limit) = self.daily_tokens {
            if spent.tokens() >= limit {
                return Some(format!(
                    "spent {} tokens of its daily limit of {limit} tokens",
                    spent.tokens()
                ));
            }
        }
        if let Some(limit) = self.daily_cost_usd {
            if spent.cost_nanos as f64 >= limit * 1e9 {
                return Some(format!(
                    "spent ${:.6} of its daily limit of ${limit:.6}",
                    spent.cost_usd()
                ));
            }
        }
        None
    }
}

/// What provider actors use to account for calls: a [`UsageStore`], the
/// price table and the per-agent [`Budget`]s. Cheap to clone.
///
/// A budget is checked before each call, so calls already in flight when it
/// is crossed still finish (and are counted); the overshoot is at most the
/// calls in flight. If the store cannot be read, the call goes ahead and the
/// failure is logged: accounting trouble does not stop agents.
#[derive(Clone)]
pub struct UsageMeter {
    store: Arc<dyn UsageStore>,
    prices: Arc<PriceTable>,
    budgets: Arc<HashMap<String, Budget>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UsageMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMeter")
            .field("prices", &self.prices.models().len())
            .field("budgets", &self.budgets)
            .finish()
    }
}

impl UsageMeter {
    /// A meter on `store` with the default prices, no budgets, real time.
    pub fn new(store: Arc<dyn UsageStore>) -> Self {
        UsageMeter {
            store,
            prices: Arc::new(PriceTable::defaults()),
            budgets: Arc::new(HashMap::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `prices` instead of the defaults.
    pub(crate) fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = Arc::new(prices);
        self
    }

    /// Sets `agent`'s daily budget.
    pub fn with_budget(mut self, agent: impl Into<String>, budget: Budget) -> Self {
        Arc::make_mut(&mut self.budgets).insert(agent.into(), budget);
        self
    }

    /// Reads the day from `clock` (tests use a manual clock).
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The current UTC day, by this meter's clock.
    pub(crate) fn today(&self) -> NaiveDate {
        DateTime::<Utc>::from(self.clock.wall()).date_naive()
    }

    /// Refuses the call with [`ErrorKind::BudgetExceeded`] when `agent` has
    /// spent its budget today. `provider` and `model` name the call refused.
    pub(crate) async fn check_budget(
        &self,
        agent: Option<&str>,
        provider: &str,
        model: &str,
    ) -> Result<(), ProviderError> {
        let Some((agent, budget)) = agent.and_then(|a| self.budgets.get(a).map(|b| (a, b))) else {
            return Ok(());
        };
        let day = self.today();
        let spent = match self
            .store
            .totals(&UsageScope::Agent(agent.to_string()), day)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(agent, error = %e, "cannot read usage totals; budget not enforced for this call");
                return Ok(());
            }
        };
        let Some(why) = budget.exceeded(&spent) else {
            return Ok(());
        };
        let mut err = ProviderError::new(
            ErrorKind::BudgetExceeded,
            provider,
            model,
            format!("agent `{agent}` has {why} on {day} (UTC); the call was not sent"),
        );
        err.retry_after = Some(self.until_tomorrow());
        Err(err)
    }

    fn until_tomorrow(&self) -> Duration {
        let now = DateTime::<Utc>::from(self.clock.wall());
        let next = now
            .date_naive()
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        next.and_then(|t| (t - now).to_std().ok())
            .unwrap_or(Duration::from_secs(86_400))
    }

    /// Prices and stores one answered call.
    pub(crate) async fn record(&self, call: CallRecord<'_>) -> Result<UsageRecord, StoreError> {
        let price = self.prices.lookup(call.model);
        let at = DateTime::<Utc>::from(self.clock.wall());
        // The id's time is the record's own (not the process's clock), so
        // the call log stays in time order under any clock, which pruning
        // relies on.
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from(at.timestamp()).unwrap_or(0),
            at.timestamp_subsec_nanos(),
        );
        let record = UsageRecord {
            id: uuid::Uuid::new_v7(ts),
            at,
            provider: call.provider.to_string(),
            model: call.model.to_string(),
            agent: call.agent.map(str::to_string),
            job: call.job,
            input_tokens: call.usage.input_tokens,
            output_tokens: call.usage.output_tokens,
            cached_input_tokens: call.usage.cached_input_tokens,
            latency_ms: u64::try_from(call.latency.as_millis()).unwrap_or(u64::MAX),
            cost_nanos: price.map_or(0, |p| p.cost_nanos(&call.usage)),
            priced: price.is_some(),
        };
        self.store.record(&record).await?;
        Ok(record)
    }
}

/// The facts of one answered call, for [`UsageMeter::record`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallRecord<'a> {
    /// Provider that answered.
    pub provider: &'a str,
    /// Model asked.
    pub model: &'a str,
    /// Agent served.
    pub agent: Option<&'a str>,
    /// Job served.
    pub job: Option<JobId>,
    /// Tokens reported.
    pub usage: Usage,
    /// HTTP wall time.
    pub latency: Duration,
}
