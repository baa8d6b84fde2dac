//! `GET /v1/jobs/{id}/steps`: an agent task's checkpoint records, read
//! only, as the task loop wrote them (see `src/agent/step.rs`: a `model`
//! record per model reply, with provider, model, usage and latency; a
//! `tools` record per round of tool calls, with arguments and results; a
//! `correction` record per answer sent back). The Studio draws its
//! transcript from them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::JobId;

/// Steps past this many are left out of one answer (a task's
/// `maxSteps` is far lower; this bounds a damaged or odd record set).
pub const MAX_STEPS_LISTED: usize = 1000;

/// `GET /v1/jobs/{id}/steps`. Each `model` record also carries
/// `costUsd`, its reply's cost by the daemon's price table, when its model
/// has a price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepsAnswer {
    /// The job.
    pub job_id: JobId,
    /// Its records in step order; empty for a job that saved none (a
    /// worker job, or a task not started).
    pub steps: Vec<Value>,
    /// Whether records past [`MAX_STEPS_LISTED`] were left out.
    #[serde(default)]
    pub truncated: bool,
}

/// Adds `costUsd` to a `model` record: what its reply cost by `prices`
/// (left out when its model has no price, or its usage does not read).
pub(crate) fn add_cost(record: &mut Value, prices: &crate::provider::PriceTable) {
    if record.get("kind").and_then(Value::as_str) != Some("model") {
        return;
    }
    let response = &record["response"];
    let Some(price) = response
        .get("model")
        .and_then(Value::as_str)
        .and_then(|m| prices.lookup(m))
    else {
        return;
    };
    let Ok(usage) = crate::provider::Usage::deserialize(&response["usage"]) else {
        return;
    };
    let dollars = price.cost_nanos(&usage) as f64 / 1e9;
    if let Value::Object(map) = record {
        map.insert("costUsd".into(), Value::from(dollars));
    }
}

impl StepsAnswer {
    /// The answer for `steps` of `job_id`, cut at [`MAX_STEPS_LISTED`].
    pub fn new(job_id: JobId, mut steps: Vec<Value>) -> Self {
        let truncated = steps.len() > MAX_STEPS_LISTED;
        steps.truncate(MAX_STEPS_LISTED);
        StepsAnswer {
            job_id,
            steps,
            truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(model: &str) -> Value {
        json!({"kind": "model", "response": {"text": "", "toolCalls": [], "finishReason": "stop",
            "usage": {"inputTokens": 1_000_000, "outputTokens": 0, "cachedInputTokens": 0},
            "provider": "p", "model": model, "latency": {"secs": 0, "nanos": 1000}}})
    }

    #[test]
    fn a_priced_model_record_gets_its_cost_and_others_do_not() {
        let prices = crate::provider::PriceTable::defaults();
        let mut priced = record("gpt-4o-mini");
        add_cost(&mut priced, &prices);
        let expected = prices.lookup("gpt-4o-mini").unwrap().input;
        assert_eq!(priced["costUsd"].as_f64(), Some(expected), "{priced}");
        let mut unknown = record("no-such-model");
        add_cost(&mut unknown, &prices);
        assert!(unknown.get("costUsd").is_none());
        let mut tools = json!({"kind": "tools", "results": []});
        add_cost(&mut tools, &prices);
        assert!(tools.get("costUsd").is_none());
    }
}
