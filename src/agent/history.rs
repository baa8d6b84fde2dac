//! A task's events rebuilt from what is durable, for a task whose live
//! events this process no longer holds (it ended before a restart, or long
//! enough ago that the hub let them go).
//!
//! What the record keeps is less than what was emitted: the attempts that
//! failed (the job's `errors`, each as `attemptStarted` then
//! `retryScheduled`, `runAt` being when it failed), the checkpointed steps
//! (each model reply as `modelCall` and `text`, each tool round as
//! `toolCall`/`toolResult` pairs, under the last attempt), the answer when
//! it was not checkpointed (from the result), and the end. Text deltas,
//! approvals and the timing of each event are not kept; the events'
//! timestamps are those of the rebuild.

use serde_json::Value;

use crate::events::TaskEventKind;
use crate::job::{Job, JobStatus};

use super::step::Step;

/// The events of ended job `job` with checkpoints `steps`, in order, the
/// terminal event excepted (the engine adds it from the record).
pub(crate) fn rebuild(job: &Job, steps: &[Value]) -> Vec<TaskEventKind> {
    let mut events = Vec::new();
    let last_attempt = job.attempt.max(1);
    for e in job.errors.iter().filter(|e| e.attempt < last_attempt) {
        events.push(TaskEventKind::AttemptStarted { attempt: e.attempt });
        events.push(TaskEventKind::RetryScheduled {
            attempt: e.attempt,
            run_at: e.at,
            error: e.message.clone(),
        });
    }
    events.push(TaskEventKind::AttemptStarted {
        attempt: last_attempt,
    });
    let mut model_calls = 0u32;
    let mut last_text = None;
    for record in steps {
        match Step::from_record(record) {
            Ok(Step::Model { response, .. }) => {
                let step = model_calls;
                model_calls += 1;
                events.push(TaskEventKind::ModelCall {
                    step,
                    provider: response.provider.clone(),
                    model: response.model.clone(),
                    input_tokens: response.usage.input_tokens,
                    output_tokens: response.usage.output_tokens,
                    latency_ms: u64::try_from(response.latency.as_millis()).unwrap_or(u64::MAX),
                });
                if !response.text.is_empty() {
                    last_text = Some(response.text.clone());
                    events.push(TaskEventKind::Text {
                        step,
                        text: response.text.clone(),
                    });
                }
            }
            Ok(Step::Tools { results }) => {
                let step = model_calls.saturating_sub(1);
                for r in results.iter() {
                    events.push(TaskEventKind::ToolCall {
                        step,
                        id: r.call_id.clone(),
                        name: r.tool.clone(),
                        arguments: r.parameters.clone(),
                    });
                    events.push(TaskEventKind::ToolResult {
                        step,
                        id: r.call_id.clone(),
                        name: r.tool.clone(),
                        is_error: r.is_error,
                        result: r.result.clone(),
                    });
                }
            }
            Ok(Step::Context(_)) | Err(_) => {}
        }
    }
    // The final answer needs no checkpoint of its own: the result has it.
    let answer = (job.status == JobStatus::Completed)
        .then(|| job.result.as_ref())
        .flatten()
        .and_then(|r| r.get("response"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && last_text.as_deref() != Some(*t));
    if let Some(text) = answer {
        let steps = job
            .result
            .as_ref()
            .and_then(|r| r.get("steps"))
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok());
        events.push(TaskEventKind::Text {
            step: steps.map_or(model_calls, |s| s.saturating_sub(1)),
            text: text.to_string(),
        });
    }
    events
}
