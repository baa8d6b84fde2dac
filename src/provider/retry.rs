//! A provider's in-line retries: the shared [`RetryPolicy`] read from the
//! `retry` table of a `[[providers]]` entry, and [`run`], the loop that asks
//! it after each failed attempt.
//!
//! The decision is the one the job engine asks too
//! ([`RetryPolicy::decide`]): the next attempt waits the larger of the
//! backoff and the wait the provider asked for. A wait over
//! `maxInlineWaitSecs` is not slept through: the error goes back with its
//! `retry_after`, so the engine runs the job again then without holding a
//! worker. An open circuit is never retried in line (it is not
//! [`ProviderError::retryable`]): the error carries the breaker's remaining
//! cooldown instead, for failover and for the engine.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe_actors::{BackoffPolicy, FailedAttempt, RetryDecision};

pub(crate) use troupe_actors::RetryPolicy;

use super::clock::Clock;
use super::error::ProviderError;

/// The policy of a provider whose config has no `retry` table (and the
/// value of each key the table leaves out): 4 attempts, 500 ms doubling to
/// at most 20 s with ±25 % jitter, 120 s in all, waits over 60 s handed back.
pub(crate) fn default_policy() -> RetryPolicy {
    RetryKeys::default().into()
}

/// The `retry` table's keys, as users' config files spell them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RetryKeys {
    /// Attempts in total, including the first (1 = no retries).
    max_attempts: u32,
    /// First backoff delay, in milliseconds.
    initial_backoff_ms: u64,
    /// Largest backoff delay, in milliseconds.
    max_backoff_ms: u64,
    /// Growth factor per attempt.
    multiplier: f64,
    /// Jitter: each delay is drawn from ±this fraction around its value.
    jitter: f64,
    /// Time budget for all attempts and waits together, in seconds.
    max_total_secs: u64,
    /// Longest wait to sleep through, in seconds.
    max_inline_wait_secs: u64,
}

impl Default for RetryKeys {
    fn default() -> Self {
        RetryKeys {
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

impl From<RetryKeys> for RetryPolicy {
    fn from(k: RetryKeys) -> Self {
        let backoff = BackoffPolicy {
            initial: Duration::from_millis(k.initial_backoff_ms),
            max: Duration::from_millis(k.max_backoff_ms),
            multiplier: k.multiplier,
            jitter: k.jitter,
            immediate_first: false,
            reset_after: Duration::ZERO,
        };
        RetryPolicy::new(backoff, k.max_attempts)
            .max_wait(Duration::from_secs(k.max_inline_wait_secs))
            .max_total(Duration::from_secs(k.max_total_secs))
    }
}

impl From<&RetryPolicy> for RetryKeys {
    fn from(p: &RetryPolicy) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // No bound is written as the largest number, which reads back as a
        // bound no call reaches.
        let secs = |d: Option<Duration>| d.map_or(u64::MAX, |d| d.as_secs());
        RetryKeys {
            max_attempts: p.max_attempts,
            initial_backoff_ms: ms(p.backoff.initial),
            max_backoff_ms: ms(p.backoff.max),
            multiplier: p.backoff.multiplier,
            jitter: p.backoff.jitter,
            max_total_secs: secs(p.max_total),
            max_inline_wait_secs: secs(p.max_wait),
        }
    }
}

/// `#[serde(with)]` for a [`RetryPolicy`] as the `retry` table: the keys
/// users' configs have (`maxAttempts`, `initialBackoffMs`, `maxBackoffMs`,
/// `multiplier`, `jitter`, `maxTotalSecs`, `maxInlineWaitSecs`), each
/// defaulting as in [`default_policy`].
pub(crate) mod keys {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{RetryKeys, RetryPolicy};

    pub(crate) fn serialize<S: Serializer>(policy: &RetryPolicy, s: S) -> Result<S::Ok, S::Error> {
        RetryKeys::from(policy).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RetryPolicy, D::Error> {
        RetryKeys::deserialize(d).map(RetryPolicy::from)
    }
}

/// Runs `attempt` (given the 1-based attempt number) until it succeeds,
/// fails with an error that is not [`ProviderError::retryable`], or
/// `policy` gives up; waits go through `clock`. The error returned records
/// how many attempts were made.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    clock: &dyn Clock,
    mut attempt: F,
) -> Result<T, ProviderError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let started = clock.now();
    let mut n = 0u32;
    loop {
        n += 1;
        let mut err = match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        err.attempts = n;
        if !err.retryable() {
            return Err(err);
        }
        let failed = FailedAttempt {
            attempt: n,
            retry_after: err.retry_after,
            elapsed: clock.now().saturating_duration_since(started),
        };
        let wait = match policy.decide(&failed) {
            RetryDecision::RetryAfter(wait) => wait,
            RetryDecision::GiveUp(why) => {
                tracing::debug!(provider = %err.provider, model = %err.model, kind = %err.kind,
                    attempt = n, ?why, "not retrying provider call in line");
                return Err(err);
            }
        };
        tracing::debug!(provider = %err.provider, model = %err.model, kind = %err.kind,
            attempt = n, wait_ms = wait.as_millis() as u64, "retrying provider call");
        clock.sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_and_writes_the_same_keys() {
        let keys: RetryKeys = serde_json::from_value(serde_json::json!({
            "maxAttempts": 2, "initialBackoffMs": 100, "maxBackoffMs": 900,
            "multiplier": 3.0, "jitter": 0.1, "maxTotalSecs": 30, "maxInlineWaitSecs": 10
        }))
        .unwrap();
        let policy = RetryPolicy::from(keys.clone());
        assert_eq!(policy.max_attempts, 2);
        assert_eq!(policy.backoff.initial, Duration::from_millis(100));
        assert_eq!(policy.backoff.max, Duration::from_millis(900));
        assert_eq!(policy.max_wait, Some(Duration::from_secs(10)));
        assert_eq!(policy.max_total, Some(Duration::from_secs(30)));
        assert_eq!(RetryKeys::from(&policy), keys);
        // Keys left out keep their defaults.
        let partial: RetryKeys =
            serde_json::from_value(serde_json::json!({"maxAttempts": 7})).unwrap();
        let partial = RetryPolicy::from(partial);
        assert_eq!(partial.max_attempts, 7);
        assert_eq!(partial.backoff, default_policy().backoff);
        assert_eq!(partial.max_wait, Some(Duration::from_secs(60)));
    }
}
