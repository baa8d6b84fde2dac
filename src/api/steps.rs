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

/// `GET /v1/jobs/{id}/steps`.
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
