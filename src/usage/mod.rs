//! Usage and cost of model calls: prices, per-agent daily budgets, and the
//! meter the provider actors call. The records and totals, and the
//! [`UsageStore`] port that keeps them, are the storage layer's
//! (`crate::store`), re-exported here.
//!
//! - [`UsageRecord`]: one answered call (provider, model, tokens, latency,
//!   cost, the agent and job it served).
//! - [`PriceTable`]: prices per million tokens, with dated defaults for
//!   common models, overridable from config.
//! - [`UsageMeter`]: what the provider actors call: check an agent's budget
//!   before a call, record the call after it.

mod meter;
mod price;

pub use crate::store::{DayUsage, UsageRecord, UsageScope, UsageStore, UsageTotals};
pub use meter::{Budget, CallRecord, UsageMeter};
pub use price::{Price, PriceTable, PricingConfig, DEFAULT_PRICES_AS_OF};
