//! Settings of the job engine.

use std::time::Duration;

use troupe_actors::BackoffPolicy;

use crate::store::Retention;

/// The default [`EngineConfig::outage_allowance`].
pub(crate) const DEFAULT_OUTAGE_ALLOWANCE: u32 = 40;

/// How the engine runs jobs. The defaults suit a daemon; tests shorten them.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Concurrency of a worker registered without one.
    pub default_concurrency: usize,
    /// Most jobs claimed in one pass (one durable write for the batch).
    pub claim_batch: usize,
    /// Delay before retry number n of a job (`delay_for_attempt(n)`), or
    /// later when the failure names a wait. With the job's `maxAttempts` it
    /// makes the job's [`RetryPolicy`](troupe_actors::RetryPolicy).
    pub retry: BackoffPolicy,
    /// Which ended jobs to keep.
    pub retention: Retention,
    /// How often retention is applied.
    pub prune_every: Duration,
    /// How long `shutdown` lets running jobs finish before stopping them.
    pub drain_timeout: Duration,
    /// How many times a job may wait out an outage (an open circuit, an
    /// overload, a rate limit: [`WorkerError::Outage`](crate::engine::WorkerError::Outage))
    /// without spending one of its `maxAttempts`. A job waiting on an open
    /// circuit goes again once per cooldown (30 s by default), so the
    /// default 40 covers an outage of about 20 minutes.
    pub outage_allowance: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            default_concurrency: 16,
            claim_batch: 512,
            retry: BackoffPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(300),
                multiplier: 2.0,
                jitter: 0.5,
                immediate_first: false,
                reset_after: Duration::ZERO,
            },
            retention: Retention {
                max_age: Some(Duration::from_secs(7 * 24 * 3600)),
                max_count: Some(100_000),
            },
            prune_every: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            outage_allowance: DEFAULT_OUTAGE_ALLOWANCE,
        }
    }
}
