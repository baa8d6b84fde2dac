//! Options a caller gives when enqueueing a job.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::JobError;

/// How many attempts a job gets when the caller does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// How to enqueue a job: when it may start, how urgent it is, how often it
/// may be tried, whether it is deduplicated, and how long an attempt may take.
///
/// Built with chained setters so call sites read like the CLI flags
/// (`--delay`, `--priority`, `--max-attempts`, `--unique-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// Start no earlier than `now + delay`. Exclusive with `run_at`.
    pub delay: Option<Duration>,
    /// Start no earlier than this time. Exclusive with `delay`.
    pub run_at: Option<DateTime<Utc>>,
    /// Higher runs first among ready jobs. Default 0.
    pub priority: i32,
    /// Attempts allowed before the job ends `failed`. At least 1.
    pub max_attempts: u32,
    /// While a job with this key is queued or running, enqueueing another
    /// one with the same key returns the existing job instead.
    pub unique_key: Option<String>,
    /// Longest time one attempt may run before it counts as failed.
    pub timeout: Option<Duration>,
}

impl Default for EnqueueOptions {
    fn default() -> Self {
        EnqueueOptions {
            delay: None,
            run_at: None,
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            unique_key: None,
            timeout: None,
        }
    }
}

impl EnqueueOptions {
    /// Start after `delay` from the enqueue time.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Start at or after `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Set the priority (higher first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Set the number of attempts allowed.
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Deduplicate on `key` while a job with it is queued or running.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Limit each attempt to `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Checks the options and resolves the first run time against `now`.
    pub fn resolve_run_at(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, JobError> {
        if self.max_attempts == 0 {
            return Err(JobError::Invalid {
                field: "maxAttempts",
                reason: "must be at least 1".into(),
            });
        }
        if matches!(&self.unique_key, Some(k) if k.is_empty()) {
            return Err(JobError::Invalid {
                field: "uniqueKey",
                reason: "must not be empty".into(),
            });
        }
        if matches!(self.timeout, Some(t) if t.is_zero()) {
            return Err(JobError::Invalid {
                field: "timeout",
                reason: "must be greater than zero".into(),
            });
        }
        match (self.delay, self.run_at) {
            (Some(_), Some(_)) => Err(JobError::Invalid {
                field: "runAt",
                reason: "give either a delay or a run time, not both".into(),
            }),
            (None, Some(at)) => Ok(at),
            (None, None) => Ok(now),
            (Some(delay), None) => chrono::Duration::from_std(delay)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| JobError::Invalid {
                    field: "delay",
                    reason: format!("{delay:?} is out of range"),
                }),
        }
    }
}
