//! The job model of the durable job engine (issue 3): one queue for agent
//! tasks and background worker jobs.
//!
//! A [`Job`] is plain data with the seed's camelCase JSON shape; the legal
//! status moves live in [`JobStatus::can_transition_to`] and the moves every
//! store makes in [`rules`] (pure functions); [`EnqueueOptions`] carries
//! what a caller may choose at enqueue time; [`schedule`] holds the
//! recurring-schedule model and its pure next-fire computation. Storage is
//! behind the ports of `crate::store`.

mod approval;
mod options;
pub mod rules;
pub mod schedule;
mod status;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use approval::{
    Approval, ApprovalId, ApprovalRequest, ApprovalState, Decision, ParseApprovalIdError,
    DEADLINE_REASON, MAX_NOTE_BYTES,
};
pub use options::{EnqueueOptions, DEFAULT_MAX_ATTEMPTS};
pub use rules::{FailAction, Stale};
pub use status::{JobStatus, ParseStatusError, TransitionError};

/// A job's id: a UUID v7, so ids sort by creation time ("newest first" is a
/// reverse id scan) and ids made in one process are strictly increasing.
pub type JobId = Uuid;

/// A unit of work for one worker, as stored and as shown to users.
///
/// Optional fields serialise as `null` rather than disappearing so that the
/// JSON shape is the same for every job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// UUID v7.
    pub id: JobId,
    /// Name of the worker that runs it.
    pub worker_name: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Attempts started so far (0 until first claimed). An attempt cut short
    /// by a crash stays counted.
    pub attempt: u32,
    /// Attempts allowed before a retryable failure becomes final (attempts
    /// that waited out an outage, counted in `outages`, do not count).
    pub max_attempts: u32,
    /// Attempts that ended waiting out an outage of something the work
    /// depends on (a provider's open circuit, overload or rate limit),
    /// queued again without spending one of `maxAttempts`. Absent from the
    /// JSON while 0, so records written before it existed read the same.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outages: u32,
    /// Attempts that ended parked awaiting approval of tool calls (the job
    /// went `waiting`), not counted against `maxAttempts` either. Absent
    /// from the JSON while 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parked: u32,
    /// Higher runs first among ready jobs.
    pub priority: i32,
    /// Not claimed before this time (delays and retry backoff set it).
    pub run_at: DateTime<Utc>,
    /// Deduplication key while the job is queued or running.
    #[serde(default)]
    pub unique_key: Option<String>,
    /// Longest time one attempt may run, in milliseconds.
    #[serde(default, rename = "timeout")]
    pub timeout_ms: Option<u64>,
    /// The worker's input.
    #[serde(default)]
    pub args: Value,
    /// Who asked and from where.
    #[serde(default)]
    pub ctx: JobCtx,
    /// The worker's output once completed.
    #[serde(default)]
    pub result: Option<Value>,
    /// The last error (of the final attempt once the job has failed).
    #[serde(default)]
    pub error: Option<String>,
    /// The error of each failed or interrupted attempt, oldest first.
    #[serde(default)]
    pub errors: Vec<AttemptError>,
    /// Someone asked to cancel this job while it was running; the scheduler
    /// must stop the attempt and end it `cancelled`.
    #[serde(default)]
    pub cancel_requested: bool,
    /// The tool calls of this task that asked a person's approval, oldest
    /// first, pending or decided (see [`Approval`]). Absent from the JSON
    /// while empty, so records written before it existed read the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed (for an ended job: when it ended).
    pub updated_at: DateTime<Utc>,
}

/// Who a job is for and where it came from, plus any extra fields callers
/// attach (kept as they are, flattened into the same JSON object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCtx {
    /// The user the work is done for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The conversation it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// What enqueued it (`cli`, `tool:scheduler`, `schedule:<id>` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Any other fields, preserved verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The error of one past attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptError {
    /// Which attempt (1-based) failed.
    pub attempt: u32,
    /// When it failed.
    pub at: DateTime<Utc>,
    /// What went wrong.
    pub message: String,
}

/// A job that cannot be built from what the caller gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A field has a value the engine cannot accept.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The camelCase field name, as the user knows it.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

impl Job {
    /// Builds a new queued job with a fresh UUID v7, validating the worker
    /// name and the options.
    pub fn new(
        worker_name: impl Into<String>,
        args: Value,
        ctx: JobCtx,
        options: &EnqueueOptions,
        now: DateTime<Utc>,
    ) -> Result<Job, JobError> {
        let worker_name = worker_name.into();
        if worker_name.trim().is_empty() {
            return Err(JobError::Invalid {
                field: "workerName",
                reason: "must not be empty".into(),
            });
        }
        let run_at = options.resolve_run_at(now)?;
        let timeout_ms = match options.timeout {
            None => None,
            Some(t) => Some(u64::try_from(t.as_millis()).map_err(|_| JobError::Invalid {
                field: "timeout",
                reason: format!("{t:?} is out of range"),
            })?),
        };
        Ok(Job {
            id: Uuid::now_v7(),
            worker_name,
            status: JobStatus::Queued,
            attempt: 0,
            max_attempts: options.max_attempts,
            outages: 0,
            parked: 0,
            priority: options.priority,
            run_at,
            unique_key: options.unique_key.clone(),
            timeout_ms,
            args,
            ctx,
            result: None,
            error: None,
            errors: Vec::new(),
            cancel_requested: false,
            approvals: Vec::new(),
            created_at: now,
            updated_at: now,
        })
    }

    /// True when another attempt may follow a retryable failure of the
    /// current one.
    pub fn has_attempts_left(&self) -> bool {
        self.counted_attempts() < self.max_attempts
    }

    /// Attempts that count against `maxAttempts`: those that neither waited
    /// out an outage nor parked awaiting approval.
    pub fn counted_attempts(&self) -> u32 {
        self.attempt
            .saturating_sub(self.outages)
            .saturating_sub(self.parked)
    }

    /// The approval `number` of this job (1-based), if it has one.
    pub fn approval(&self, number: u32) -> Option<&Approval> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        self.approvals.get(index)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
