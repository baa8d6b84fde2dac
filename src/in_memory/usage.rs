//! Usage in memory: every recorded call in recording order, the running
//! totals per agent and per provider and day, and the [`UsageStore`] port.
//! Retention drops call records older than its age limit
//! ([`Usage::prune_calls`]); the day totals stay.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::InMemoryStore;
use crate::store::{DayUsage, StoreError, UsageRecord, UsageScope, UsageStore, UsageTotals};

/// Calls in recording order and the totals they add up to.
#[derive(Default)]
pub(super) struct Usage {
    calls: Vec<UsageRecord>,
    totals: HashMap<(UsageScope, NaiveDate), UsageTotals>,
}

impl Usage {
    /// Drops the records of calls made before `cutoff`.
    pub(super) fn prune_calls(&mut self, cutoff: DateTime<Utc>) {
        self.calls.retain(|call| call.at >= cutoff);
    }
}

#[async_trait]
impl UsageStore for InMemoryStore {
    async fn record(&self, record: &UsageRecord) -> Result<(), StoreError> {
        let day = record.day();
        let mut state = self.write()?;
        let usage = &mut state.usage;
        if let Some(agent) = &record.agent {
            usage
                .totals
                .entry((UsageScope::Agent(agent.clone()), day))
                .or_default()
                .add(record);
        }
        usage
            .totals
            .entry((UsageScope::Provider(record.provider.clone()), day))
            .or_default()
            .add(record);
        usage.calls.push(record.clone());
        Ok(())
    }

    async fn totals(&self, scope: &UsageScope, day: NaiveDate) -> Result<UsageTotals, StoreError> {
        Ok(self
            .lock()
            .usage
            .totals
            .get(&(scope.clone(), day))
            .copied()
            .unwrap_or_default())
    }

    async fn day_usage(&self, day: NaiveDate) -> Result<DayUsage, StoreError> {
        let state = self.lock();
        let mut report = DayUsage {
            day: Some(day),
            ..DayUsage::default()
        };
        for ((scope, d), totals) in &state.usage.totals {
            if *d != day {
                continue;
            }
            match scope {
                UsageScope::Agent(a) => report.by_agent.insert(a.clone(), *totals),
                UsageScope::Provider(p) => report.by_provider.insert(p.clone(), *totals),
            };
        }
        Ok(report)
    }

    async fn calls(&self, day: NaiveDate) -> Result<Vec<UsageRecord>, StoreError> {
        Ok(self
            .lock()
            .usage
            .calls
            .iter()
            .filter(|call| call.day() == day)
            .cloned()
            .collect())
    }
}
