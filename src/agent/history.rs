//! A task's events rebuilt from what is durable, for a task whose live
//! events this process no longer holds (it ended before a restart, or long
//! enough ago that the hub let them go).
//!
//! What the record keeps is less than what was emitted: the attempts that
//! failed (the job's `errors`, each as `attemptStarted` then
//! `retryScheduled`, `runAt` being when it failed), the checkpointed steps
//! (each model reply as `modelCall` and `text`, each tool round as
//! `toolCall`/`toolResult` pairs, under the last attempt), the final reply
//! when it was not checkpointed (from the result: its provider and model,
//! its tokens as the result's totals less the checkpointed replies', no
//! latency), the approvals each tool round waited for (asked, decided), and
//! the end. Text deltas, latencies of unsaved
//! replies and the timing of each event are not kept; the events'
//! timestamps are those of the rebuild.

use serde_json::Value;

use crate::events::TaskEventKind;
use crate::job::{ApprovalState, Job, JobStatus};
use crate::provider::GenerateResponse;

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
    // Tokens of the checkpointed replies, (input, output).
    let mut spent = (0u64, 0u64);
    for record in steps {
        match Step::from_record(record) {
            Ok(Step::Model { response, .. }) => {
                let step = model_calls;
                model_calls += 1;
                spent.0 += response.usage.input_tokens;
                spent.1 += response.usage.output_tokens;
                events.push(model_call(step, &response));
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
                approvals(job, step, &mut events);
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
            Ok(Step::Context(_) | Step::Correction { .. }) | Err(_) => {}
        }
    }
    if job.status == JobStatus::Completed {
        if let Some(result) = &job.result {
            final_reply(
                result,
                model_calls,
                spent,
                last_text.as_deref(),
                &mut events,
            );
        }
    }
    events
}

/// The `modelCall` event of model step `step`'s reply (as emitted live,
/// and as rebuilt).
pub(super) fn model_call(step: u32, response: &GenerateResponse) -> TaskEventKind {
    TaskEventKind::ModelCall {
        step,
        provider: response.provider.clone(),
        model: response.model.clone(),
        input_tokens: response.usage.input_tokens,
        output_tokens: response.usage.output_tokens,
        latency_ms: u64::try_from(response.latency.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The approvals the tool round of model step `step` waited for, asked
/// then decided (kept with the job).
fn approvals(job: &Job, step: u32, events: &mut Vec<TaskEventKind>) {
    let of_step = || job.approvals.iter().filter(move |a| a.step == step);
    for a in of_step() {
        events.push(TaskEventKind::ApprovalRequested {
            approval_id: a.id.to_string(),
            tool_call_id: a.call_id.clone(),
            tool: a.tool.clone(),
            arguments: a.arguments.clone(),
        });
    }
    for a in of_step().filter(|a| a.state != ApprovalState::Pending) {
        events.push(TaskEventKind::ApprovalDecided {
            approval_id: a.id.to_string(),
            approved: a.state == ApprovalState::Approved,
            note: a.note.clone(),
        });
    }
}

/// The final reply, which needs no checkpoint of its own (the result has
/// it): its model call, with the tokens the result counts beyond the
/// checkpointed replies' (its latency is not kept: 0), and its text.
fn final_reply(
    result: &Value,
    model_calls: u32,
    spent: (u64, u64),
    last_text: Option<&str>,
    events: &mut Vec<TaskEventKind>,
) {
    let steps = result
        .get("steps")
        .and_then(Value::as_u64)
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0);
    let text = result.get("response").and_then(Value::as_str).unwrap_or("");
    if steps <= model_calls {
        // The answer was checkpointed (a conversation, a reflection).
        if !text.is_empty() && last_text != Some(text) {
            let step = model_calls.saturating_sub(1);
            events.push(TaskEventKind::Text {
                step,
                text: text.to_string(),
            });
        }
        return;
    }
    let usage = |key: &str| {
        result
            .get("usage")
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let name = |key: &str| {
        let v = result.get(key).and_then(Value::as_str);
        v.unwrap_or_default().to_string()
    };
    let step = steps - 1;
    events.push(TaskEventKind::ModelCall {
        step,
        provider: name("provider"),
        model: name("model"),
        input_tokens: usage("inputTokens").saturating_sub(spent.0),
        output_tokens: usage("outputTokens").saturating_sub(spent.1),
        latency_ms: 0,
    });
    if !text.is_empty() {
        events.push(TaskEventKind::Text {
            step,
            text: text.to_string(),
        });
    }
}
