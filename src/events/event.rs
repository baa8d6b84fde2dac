//! The event type and its JSON shape.
//!
//! ```text
//! {"seq":1,"at":"…","jobId":"…","type":"attemptStarted","attempt":1}
//! {"seq":2,…,"type":"modelCall","step":0,"provider":"openai","model":"gpt-4o-mini","inputTokens":812,"outputTokens":41,"latencyMs":930}
//! {"seq":3,…,"type":"toolCall","step":0,"id":"call_1","name":"send_message","arguments":{…}}
//! {"seq":4,…,"type":"toolResult","step":0,"id":"call_1","name":"send_message","isError":false,"result":{"ok":true,…}}
//! {"seq":5,…,"type":"textDelta","step":1,"delta":"Hel"}                (streaming providers only)
//! {"seq":6,…,"type":"text","step":1,"text":"Hello…"}
//! {"seq":7,…,"type":"approvalRequested","approvalId":"…","toolCallId":"call_2","tool":"send_message","arguments":{…}}
//! {"seq":8,…,"type":"approvalDecided","approvalId":"…","approved":true,"note"?:"…"}
//! {"seq":9,…,"type":"retryScheduled","attempt":1,"runAt":"…","error":"…"}
//! {"seq":10,…,"type":"completed"} | {"type":"failed","error":"…"} | {"type":"cancelled"}
//! ```
//!
//! `seq` is the event's id within its job, and the SSE `id`: it only
//! grows, across restarts too. It is `attempt << 32 | n` (see `seq`), so
//! that a process that runs a later attempt numbers after every event an
//! earlier process numbered, without a durable write per event. `step` is
//! the model call's index within the task (0 first), which tool calls
//! share with the reply that asked for them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::JobId;

/// How `seq`s are made: `attempt << 32 | n`, written as a plain integer (so
/// `Last-Event-ID` stays one, and stays below 2^53 for JavaScript).
///
/// Each process numbers a job's events itself, in memory: an event of
/// attempt `a` emitted by the process that runs the attempt gets `a << 32 |
/// n`, n counting from 1 at its `attemptStarted`. A process that restarts
/// never runs the attempt it found interrupted again (recovery queues the
/// job, the next claim is attempt `a + 1`), so its events sort after all
/// of the previous process's. Two kinds of event may come from a process
/// that did not run the attempt, while the job waits or after it ended,
/// and get numbers of their own made from the durable record:
/// `approvalDecided` ([`decision`]: the upper half of the attempt's
/// range, by the decision's rank among the job's decisions) and the
/// terminal event ([`end`]: the attempt's last number). Within a log the
/// hub never numbers backwards: an event whose number would not be above
/// the last one's gets the last one's plus one.
pub(crate) mod seq {
    /// The number before the first event of attempt `attempt`.
    pub(crate) const fn attempt_base(attempt: u32) -> u64 {
        (attempt as u64) << 32
    }

    /// The attempt a `seq` belongs to.
    #[cfg(test)]
    pub(crate) const fn attempt_of(seq: u64) -> u32 {
        (seq >> 32) as u32
    }

    /// Where decisions start within an attempt's numbers.
    const DECISIONS: u64 = 1 << 31;

    /// The `seq` of the job's `rank`-th decision (1 first) of an approval
    /// asked by attempt `attempt` (the job's attempt while it waits).
    pub(crate) fn decision(attempt: u32, rank: u32) -> u64 {
        let rank = u64::from(rank).min(DECISIONS - 2);
        attempt_base(attempt) | (DECISIONS + rank)
    }

    /// `seq` as people read it: `<attempt>.<n>`, a decision's
    /// `<attempt>.d<rank>`, the terminal event's `<attempt>.end`.
    pub(crate) fn label(seq: u64) -> String {
        let attempt = seq >> 32;
        let n = seq & u64::from(u32::MAX);
        if n == u64::from(u32::MAX) {
            format!("{attempt}.end")
        } else if n > DECISIONS {
            format!("{attempt}.d{}", n - DECISIONS)
        } else {
            format!("{attempt}.{n}")
        }
    }

    /// The `seq` of the terminal event of a job whose last attempt is
    /// `attempt` (after every other event of that attempt).
    pub(crate) const fn end(attempt: u32) -> u64 {
        attempt_base(attempt) | u32::MAX as u64
    }
}

/// An event's time on the wire, written as chrono writes it (RFC 3339 in
/// UTC with `Z`; a fraction of 3, 6 or 9 digits, as the nanoseconds need,
/// none when they are 0) but by hand: through `fmt` it was a fifth of the
/// cost of a follower's frame.
mod at {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 30];
        match write(at, &mut buf) {
            // Only ASCII digits and punctuation are written.
            Some(n) => s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default()),
            // A year beyond 4 digits, or a leap second: chrono's own way.
            None => serde::Serialize::serialize(at, s),
        }
    }

    /// Writes `at` into `buf`; its length, or `None` where chrono writes
    /// something else than the plain form.
    pub(super) fn write(at: &DateTime<Utc>, buf: &mut [u8; 30]) -> Option<usize> {
        let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
        let nanos = at.nanosecond();
        if nanos >= 1_000_000_000 {
            return None;
        }
        let mut n = digits(buf, 0, year, 4);
        let parts = [at.month(), at.day(), at.hour(), at.minute(), at.second()];
        for (value, sep) in parts.into_iter().zip(*b"--T::") {
            buf[n] = sep;
            n = digits(buf, n + 1, value, 2);
        }
        let (fraction, width) = if nanos == 0 {
            (0, 0)
        } else if nanos % 1_000_000 == 0 {
            (nanos / 1_000_000, 3)
        } else if nanos % 1_000 == 0 {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        if width > 0 {
            buf[n] = b'.';
            n = digits(buf, n + 1, fraction, width);
        }
        buf[n] = b'Z';
        Some(n + 1)
    }

    /// Writes `value` in `width` decimal digits at `at`; where they end.
    fn digits(buf: &mut [u8], at: usize, mut value: u32, width: usize) -> usize {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        at + width
    }

    #[cfg(test)]
    mod tests {
        use chrono::{Datelike, TimeZone, Timelike, Utc};

        #[test]
        fn times_are_written_as_chrono_writes_them() {
            let mut at = Utc.with_ymd_and_hms(2026, 12, 6, 7, 5, 9).unwrap();
            let steps = [
                0,
                1_000_000,
                120_000,
                7,
                999_999_999,
                123_456_789,
                500_000_000,
            ];
            for year in [1, 999, 1970, 2026, 9999] {
                for nanos in steps {
                    at = at.with_year(year).unwrap().with_nanosecond(nanos).unwrap();
                    let mut buf = [0u8; 30];
                    let n = super::write(&at, &mut buf).unwrap();
                    let chrono = serde_json::to_value(at).unwrap();
                    assert_eq!(
                        std::str::from_utf8(&buf[..n]).unwrap(),
                        chrono.as_str().unwrap()
                    );
                }
            }
            let now = Utc::now();
            let ours = serde_json::to_value(crate::events::TaskEvent {
                seq: 1,
                at: now,
                job_id: uuid::Uuid::now_v7(),
                kind: crate::events::TaskEventKind::Completed,
            })
            .unwrap();
            assert_eq!(ours["at"], serde_json::to_value(now).unwrap());
        }

        #[test]
        fn years_beyond_four_digits_and_leap_seconds_are_left_to_chrono() {
            let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
            assert!(super::write(&far, &mut [0; 30]).is_none());
            let event = crate::events::TaskEvent {
                seq: 1,
                at: far,
                job_id: uuid::Uuid::now_v7(),
                kind: crate::events::TaskEventKind::Completed,
            };
            let back: crate::events::TaskEvent =
                serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
            assert_eq!(back, event);
        }
    }
}

/// One thing a job did, numbered within the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEvent {
    /// Its number within the job, growing (`attempt << 32 | n`: see ARCHITECTURE.md, "Live task events"): the SSE
    /// `id`, and what to resume after.
    pub seq: u64,
    /// When it happened.
    #[serde(serialize_with = "at::serialize")]
    pub at: DateTime<Utc>,
    /// The job (task) it belongs to.
    pub job_id: JobId,
    /// What happened.
    #[serde(flatten)]
    pub kind: TaskEventKind,
}

impl TaskEvent {
    /// Whether the job ended with it (nothing follows).
    pub fn is_terminal(&self) -> bool {
        self.kind.is_terminal()
    }
}

/// What happened, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum TaskEventKind {
    /// An attempt of the job began (1 first; a retry or a run after a
    /// restart counts on).
    AttemptStarted {
        /// Which attempt.
        attempt: u32,
    },
    /// A model call answered.
    ModelCall {
        /// The call's index within the task.
        step: u32,
        /// The configured provider that answered (after failover).
        provider: String,
        /// The model that answered.
        model: String,
        /// Input tokens.
        input_tokens: u64,
        /// Output tokens.
        output_tokens: u64,
        /// Wall time of the call.
        latency_ms: u64,
    },
    /// A piece of a reply's text, as a streaming provider sends it; the
    /// whole text follows as [`Text`](Self::Text).
    TextDelta {
        /// The model call's index.
        step: u32,
        /// The text received.
        delta: String,
    },
    /// A reply's text, whole (the last one is the answer).
    Text {
        /// The model call's index.
        step: u32,
        /// The text.
        text: String,
    },
    /// A tool call the model asked for, about to run.
    ToolCall {
        /// The model call that asked for it.
        step: u32,
        /// The model's id of the call.
        id: String,
        /// The tool.
        name: String,
        /// Its arguments, as the model gave them.
        arguments: Value,
    },
    /// A tool call's result (an error too: refused, invalid, failed).
    ToolResult {
        /// The model call that asked for it.
        step: u32,
        /// The model's id of the call.
        id: String,
        /// The tool.
        name: String,
        /// Whether the call failed.
        is_error: bool,
        /// The tool's answer, or its error as a result value.
        result: Value,
    },
    /// A tool call waits for a person's decision.
    ApprovalRequested {
        /// The approval's id.
        approval_id: String,
        /// The model's id of the call.
        tool_call_id: String,
        /// The tool.
        tool: String,
        /// Its arguments.
        arguments: Value,
    },
    /// A person (or the deadline) decided.
    ApprovalDecided {
        /// The approval's id.
        approval_id: String,
        /// Approved (the call runs) or denied.
        approved: bool,
        /// The note or the reason given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The attempt failed and the job goes again at `runAt`.
    RetryScheduled {
        /// The attempt that failed.
        attempt: u32,
        /// When the next attempt may start.
        run_at: DateTime<Utc>,
        /// Why it failed.
        error: String,
    },
    /// The job completed (an agent's answer is the last [`Text`](Self::Text)).
    Completed,
    /// The job failed for good.
    Failed {
        /// The last attempt's error.
        error: String,
    },
    /// The job was cancelled.
    Cancelled,
}

impl TaskEventKind {
    /// Whether the job ends with it.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TaskEventKind::Completed | TaskEventKind::Failed { .. } | TaskEventKind::Cancelled
        )
    }

    /// The event's `type`, as its JSON spells it (the SSE `event:` field).
    pub fn name(&self) -> &'static str {
        match self {
            TaskEventKind::AttemptStarted { .. } => "attemptStarted",
            TaskEventKind::ModelCall { .. } => "modelCall",
            TaskEventKind::TextDelta { .. } => "textDelta",
            TaskEventKind::Text { .. } => "text",
            TaskEventKind::ToolCall { .. } => "toolCall",
            TaskEventKind::ToolResult { .. } => "toolResult",
            TaskEventKind::ApprovalRequested { .. } => "approvalRequested",
            TaskEventKind::ApprovalDecided { .. } => "approvalDecided",
            TaskEventKind::RetryScheduled { .. } => "retryScheduled",
            TaskEventKind::Completed => "completed",
            TaskEventKind::Failed { .. } => "failed",
            TaskEventKind::Cancelled => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_reads_back_from_its_documented_shape() {
        let id = uuid::Uuid::now_v7();
        let event = TaskEvent {
            seq: 4,
            at: Utc::now(),
            job_id: id,
            kind: TaskEventKind::ToolResult {
                step: 0,
                id: "call_1".into(),
                name: "send_message".into(),
                is_error: false,
                result: json!({"ok": true}),
            },
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["type"], "toolResult");
        assert_eq!(value["isError"], false);
        assert_eq!(value["jobId"], id.to_string());
        assert_eq!(value["seq"], 4);
        let back: TaskEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);

        let done = serde_json::to_value(TaskEvent {
            kind: TaskEventKind::Completed,
            ..event.clone()
        })
        .unwrap();
        assert_eq!(done["type"], "completed");
        let back: TaskEvent = serde_json::from_value(done).unwrap();
        assert!(back.is_terminal());
        for kind in [
            TaskEventKind::AttemptStarted { attempt: 1 },
            TaskEventKind::Failed { error: "x".into() },
            TaskEventKind::Cancelled,
        ] {
            let v = serde_json::to_value(&kind).unwrap();
            assert_eq!(v["type"], kind.name());
        }
    }
}
