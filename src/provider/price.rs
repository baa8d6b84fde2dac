//! Prices per million tokens, by model, with dated defaults.
//!
//! Prices change; every default carries the date it was taken
//! ([`DEFAULT_PRICES_AS_OF`]) so a cost report can say how old its prices
//! are, and config overrides any of them (`[pricing.models."gpt-4o"]`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::Usage;

/// The day the default prices were taken from the providers' public price
/// pages (list prices, standard tier, no batch discount).
pub(crate) const DEFAULT_PRICES_AS_OF: &str = "2025-10-01";

/// One model's price in US dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// Input (prompt) tokens.
    pub input: f64,
    /// Output (completion) tokens, reasoning included.
    pub output: f64,
    /// Input tokens read from the provider's prompt cache; `input` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// When this price was taken; `None` for a config price without a date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
}

impl Price {
    /// Cost of `usage` in nano-dollars (1e-9 USD), rounded.
    pub fn cost_nanos(&self, usage: &Usage) -> u64 {
        // $ per million tokens = 1000 nano-dollars per token.
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        let nanos = fresh as f64 * self.input * 1000.0
            + cached as f64 * self.cached_input.unwrap_or(self.input) * 1000.0
            + usage.output_tokens as f64 * self.output * 1000.0;
        if nanos.is_finite() && nanos > 0.0 {
            nanos.round() as u64
        } else {
            0
        }
    }
}

/// The `[pricing]` table of the config file: overrides and additions to the
/// default prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PricingConfig {
    /// Date of the prices given here, applied to those without their own.
    pub as_of: Option<NaiveDate>,
    /// Prices by model id (or model-id prefix).
    pub models: BTreeMap<String, Price>,
}

/// Prices by model id.
///
/// Lookup takes the exact id, else the longest known id the model starts
/// with (`gpt-4o-mini-2024-07-18` → `gpt-4o-mini`), after dropping a router
/// prefix such as `openai/`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PriceTable {
    models: BTreeMap<String, Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::defaults()
    }
}

impl PriceTable {
    /// The default prices for common models, dated [`DEFAULT_PRICES_AS_OF`].
    pub(crate) fn defaults() -> Self {
        let as_of = NaiveDate::parse_from_str(DEFAULT_PRICES_AS_OF, "%Y-%m-%d").ok();
        // (model, input, output, cached input) in $ per million tokens.
        const DEFAULTS: &[(&str, f64, f64, Option<f64>)] = &[
            ("gpt-4o", 2.50, 10.00, Some(1.25)),
            ("gpt-4o-mini", 0.15, 0.60, Some(0.075)),
            ("gpt-4.1", 2.00, 8.00, Some(0.50)),
            ("gpt-4.1-mini", 0.40, 1.60, Some(0.10)),
            ("gpt-4.1-nano", 0.10, 0.40, Some(0.025)),
            ("claude-sonnet-4", 3.00, 15.00, Some(0.30)),
            ("claude-3-7-sonnet", 3.00, 15.00, Some(0.30)),
            ("claude-3-5-sonnet", 3.00, 15.00, Some(0.30)),
            ("claude-haiku-4-5", 1.00, 5.00, Some(0.10)),
            ("claude-3-5-haiku", 0.80, 4.00, Some(0.08)),
            ("claude-3-haiku", 0.25, 1.25, Some(0.03)),
            ("deepseek-chat", 0.28, 0.42, Some(0.028)),
            ("deepseek-reasoner", 0.28, 0.42, Some(0.028)),
            ("mistral-large", 2.00, 6.00, None),
            ("mistral-medium", 0.40, 2.00, None),
            ("mistral-small", 0.10, 0.30, None),
            ("codestral", 0.30, 0.90, None),
        ];
        let models = DEFAULTS
            .iter()
            .map(|&(model, input, output, cached_input)| {
                (
                    model.to_string(),
                    Price {
                        input,
                        output,
                        cached_input,
                        as_of,
                    },
                )
            })
            .collect();
        PriceTable { models }
    }

    /// The defaults with `config`'s prices added or replacing them.
    pub(crate) fn from_config(config: &PricingConfig) -> Self {
        let mut table = Self::defaults();
        for (model, price) in &config.models {
            let mut price = price.clone();
            price.as_of = price.as_of.or(config.as_of);
            table.models.insert(model.clone(), price);
        }
        table
    }

    /// The price for `model`, if known.
    pub(crate) fn lookup(&self, model: &str) -> Option<&Price> {
        let model = model.rsplit('/').next().unwrap_or(model);
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(id, _)| {
                model.starts_with(id.as_str())
                    && matches!(model.as_bytes().get(id.len()), Some(b'-' | b'@' | b':'))
            })
            .max_by_key(|(id, _)| id.len())
            .map(|(_, p)| p)
    }

    /// Every model with a price, by id.
    pub(crate) fn models(&self) -> &BTreeMap<String, Price> {
        &self.models
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let t = PriceTable::defaults();
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        assert_eq!(t.lookup("gpt-4o-2024-08-06").unwrap().input, 2.50);
        assert_eq!(t.lookup("openai/gpt-4.1-mini").unwrap().input, 0.40);
        assert_eq!(t.lookup("claude-sonnet-4-5-20250929").unwrap().output, 15.0);
        assert!(t.lookup("gpt-4oo").is_none());
        assert!(t.lookup("llama3").is_none());
    }

    #[test]
    fn cost_in_nanos() {
        let p = Price {
            input: 2.5,
            output: 10.0,
            cached_input: Some(1.25),
            as_of: None,
        };
        let u = Usage {
            input_tokens: 1000,
            output_tokens: 100,
            cached_input_tokens: 200,
        };
        // 800 * 2500 + 200 * 1250 + 100 * 10000 nano-dollars
        assert_eq!(p.cost_nanos(&u), 2_000_000 + 250_000 + 1_000_000);
    }
}
