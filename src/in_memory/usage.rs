//! [`MemoryUsageStore`]: usage kept in memory, for tests, benchmarks and
//! embedders that account elsewhere.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::store::{DayUsage, StoreError, UsageRecord, UsageScope, UsageStore, UsageTotals};

/// Records and totals in memory; lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryUsageStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: Vec<UsageRecord>,
    totals: HashMap<(UsageScope, NaiveDate), UsageTotals>,
}

impl MemoryUsageStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; keep going if something did.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl UsageStore for MemoryUsageStore {
    async fn record(&self, record: &UsageRecord) -> Result<(), StoreError> {
        let day = record.day();
        let mut inner = self.lock();
        if let Some(agent) = &record.agent {
            inner
                .totals
                .entry((UsageScope::Agent(agent.clone()), day))
                .or_default()
                .add(record);
        }
        inner
            .totals
            .entry((UsageScope::Provider(record.provider.clone()), day))
            .or_default()
            .add(record);
        inner.records.push(record.clone());
        Ok(())
    }

    async fn totals(&self, scope: &UsageScope, day: NaiveDate) -> Result<UsageTotals, StoreError> {
        Ok(self
            .lock()
            .totals
            .get(&(scope.clone(), day))
            .copied()
            .unwrap_or_default())
    }

    async fn day_usage(&self, day: NaiveDate) -> Result<DayUsage, StoreError> {
        let inner = self.lock();
        let mut out = DayUsage {
            day: Some(day),
            ..DayUsage::default()
        };
        for ((scope, d), totals) in &inner.totals {
            if *d != day {
                continue;
            }
            match scope {
                UsageScope::Agent(a) => out.by_agent.insert(a.clone(), *totals),
                UsageScope::Provider(p) => out.by_provider.insert(p.clone(), *totals),
            };
        }
        Ok(out)
    }

    async fn calls(&self, day: NaiveDate) -> Result<Vec<UsageRecord>, StoreError> {
        Ok(self
            .lock()
            .records
            .iter()
            .filter(|r| r.day() == day)
            .cloned()
            .collect())
    }
}
