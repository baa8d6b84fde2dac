//! Retrying retryable provider errors, bounded in attempts and in time.
//!
//! Delays are exponential with jitter (computed by the `backoff` crate, which
//! is unmaintained; it is used only inside [`Schedule`] so it can be swapped
//! for another crate or twenty lines of our own). A wait the provider asks for
//! is honoured exactly; a wait longer than `max_inline_wait` is not slept
//! through: the error is returned with its `retry_after` so the scheduler can
//! run the job again later without holding a worker.

use std::future::Future;
use std::time::Duration;

use backoff::backoff::Backoff;
use serde::{Deserialize, Serialize};

use super::clock::Clock;
use super::error::ProviderError;

/// Retry bounds for one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (1 = no retries).
    pub max_attempts: u32,
    /// First backoff delay, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Largest backoff delay, in milliseconds.
    pub max_backoff_ms: u64,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Jitter: each delay is drawn from ±this fraction around its value.
    pub jitter: f64,
    /// Time budget for all attempts and waits together, in seconds.
    pub max_total_secs: u64,
    /// Longest provider-requested wait to sleep through, in seconds (60).
    pub max_inline_wait_secs: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff_ms: 500,
            max_backoff_ms: 20_000,
            multiplier: 2.0,
            jitter: 0.25,
            max_total_secs: 120,
            max_inline_wait_secs: 60,
        }
    }
}

/// The jittered exponential delay sequence of one call.
pub struct Schedule(backoff::ExponentialBackoff);

impl Schedule {
    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        self.0.next_backoff().unwrap_or(self.0.max_interval)
    }
}

impl RetryPolicy {
    /// A policy that never retries; for callers that handle retries themselves.
    pub fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff delays for one call.
    pub fn schedule(&self) -> Schedule {
        let b = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(Duration::from_millis(self.initial_backoff_ms))
            .with_max_interval(Duration::from_millis(self.max_backoff_ms))
            .with_multiplier(if self.multiplier.is_finite() {
                self.multiplier.clamp(1.0, 100.0)
            } else {
                2.0
            })
            .with_randomization_factor(if self.jitter.is_finite() {
                self.jitter.clamp(0.0, 1.0)
            } else {
                0.0
            })
            // Elapsed time is tracked by `run` with our clock, not backoff's.
            .with_max_elapsed_time(None)
            .build();
        Schedule(b)
    }

    /// Runs `attempt` (given the 1-based attempt number) until it succeeds,
    /// fails with a non-retryable error, or the bounds are reached. The
    /// returned error records how many attempts were made.
    pub async fn run<T, F, Fut>(
        &self,
        clock: &dyn Clock,
        mut attempt: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let started = clock.now();
        let max_total = Duration::from_secs(self.max_total_secs);
        let max_inline = Duration::from_secs(self.max_inline_wait_secs);
        // Built on the first failure: the success path pays nothing for it.
        let mut schedule: Option<Schedule> = None;
        let mut n = 0u32;
        loop {
            n += 1;
            let mut err = match attempt(n).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            err.attempts = n;
            if !err.retryable() || n >= self.max_attempts.max(1) {
                return Err(err);
            }
            let backoff = schedule.get_or_insert_with(|| self.schedule()).next_delay();
            let wait = match err.retry_after {
                Some(w) if w > max_inline => return Err(err),
                Some(w) => w,
                None => backoff,
            };
            let elapsed = clock.now().saturating_duration_since(started);
            if elapsed.saturating_add(wait) > max_total {
                return Err(err);
            }
            tracing::debug!(provider = %err.provider, model = %err.model, kind = %err.kind,
                attempt = n, wait_ms = wait.as_millis() as u64, "retrying provider call");
            clock.sleep(wait).await;
        }
    }
}
