//! Jobs: enqueue, list, show, cancel.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::parse::{fields, Request};
use super::ControlError;
use crate::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus, DEFAULT_MAX_ATTEMPTS};
use crate::store::{CancelOutcome, InsertOutcome, ListQuery};

/// Largest page of [`JobsQuery::limit`].
pub const MAX_PAGE: usize = 1000;

/// Page size when [`JobsQuery::limit`] is not given.
pub const DEFAULT_PAGE: usize = 50;

/// `POST /v1/jobs`: the fields of `troupe enqueue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnqueueRequest {
    /// The worker to run the job.
    pub worker_name: String,
    /// The job's args (default `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Who asked and from where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<JobCtx>,
    /// Start no earlier than this many milliseconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Start no earlier than this time (RFC 3339); exclusive with `delayMs`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "fields::rfc3339"
    )]
    pub run_at: Option<DateTime<Utc>>,
    /// Higher runs first among ready jobs (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Attempts before the job ends failed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// While a job with this key is queued or running, answer it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Longest time one attempt may run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl EnqueueRequest {
    /// A job for `worker` with every option at its default.
    pub fn new(worker: impl Into<String>) -> Self {
        EnqueueRequest {
            worker_name: worker.into(),
            args: None,
            ctx: None,
            delay_ms: None,
            run_at: None,
            priority: None,
            max_attempts: None,
            unique_key: None,
            timeout_ms: None,
        }
    }

    /// The args, `{}` when none were given.
    pub fn job_args(&self) -> Value {
        self.args
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()))
    }

    /// The engine's options for this request.
    pub fn options(&self) -> EnqueueOptions {
        let mut options = EnqueueOptions::default()
            .priority(self.priority.unwrap_or(0))
            .max_attempts(self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS));
        options.delay = self.delay_ms.map(Duration::from_millis);
        options.run_at = self.run_at;
        options.unique_key = self.unique_key.clone();
        options.timeout = self.timeout_ms.map(Duration::from_millis);
        options
    }
}

impl Request for EnqueueRequest {
    fn validate(&self) -> Result<(), ControlError> {
        if self.worker_name.trim().is_empty() {
            return Err(ControlError::field("workerName", "must not be empty"));
        }
        if self.max_attempts == Some(0) {
            return Err(ControlError::field("maxAttempts", "must be at least 1"));
        }
        if self.delay_ms.is_some() && self.run_at.is_some() {
            return Err(ControlError::Invalid(
                "give `delayMs` or `runAt`, not both".into(),
            ));
        }
        if self.unique_key.as_deref().is_some_and(str::is_empty) {
            return Err(ControlError::field("uniqueKey", "must not be empty"));
        }
        if self.timeout_ms == Some(0) {
            return Err(ControlError::field(
                "timeoutMs",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// What an enqueue did. On the wire the daemon answers the job alone, 201
/// when it is new and 200 when a job already held the unique key; `troupe
/// enqueue --json` prints this whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enqueued {
    /// Whether the job was created (else it already held the unique key).
    pub new: bool,
    /// The job, durable.
    pub job: Job,
}

impl From<InsertOutcome> for Enqueued {
    fn from(outcome: InsertOutcome) -> Self {
        let new = outcome.is_new();
        Enqueued {
            new,
            job: outcome.into_job(),
        }
    }
}

/// `GET /v1/jobs?status=&worker=&limit=&cursor=`: a page of jobs, newest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobsQuery {
    /// Only jobs with this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// Only jobs of this worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Page size, 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<JobId>,
}

impl JobsQuery {
    /// The store's query for this page.
    pub fn list_query(&self) -> ListQuery {
        ListQuery {
            status: self.status,
            worker: self.worker.clone(),
            limit: self.limit.unwrap_or(DEFAULT_PAGE),
            cursor: self.cursor,
        }
    }
}

impl Request for JobsQuery {
    fn validate(&self) -> Result<(), ControlError> {
        match self.limit {
            Some(n) if !(1..=MAX_PAGE).contains(&n) => Err(ControlError::param(
                "limit",
                format!("expected 1 to {MAX_PAGE}, got `{n}`"),
            )),
            _ => Ok(()),
        }
    }
}

/// A page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobsPage {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<JobId>,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CancelKind {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running; it ends cancelled when its run stops.
    Requested,
    /// It had already ended; nothing changed.
    AlreadyEnded,
}

/// `POST /v1/jobs/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelAnswer {
    /// What the cancel did.
    pub outcome: CancelKind,
    /// The job after it.
    pub job: Job,
}

impl From<CancelOutcome> for CancelAnswer {
    fn from(outcome: CancelOutcome) -> Self {
        let (outcome, job) = match outcome {
            CancelOutcome::Cancelled(job) => (CancelKind::Cancelled, job),
            CancelOutcome::Requested(job) => (CancelKind::Requested, job),
            CancelOutcome::AlreadyEnded(job) => (CancelKind::AlreadyEnded, job),
        };
        CancelAnswer { outcome, job }
    }
}
