//! Exponential backoff with jitter: the one retry-delay policy of Troupe.
//!
//! Restart delays in a supervision tree, job retries and provider retries all
//! draw their waits from [`BackoffPolicy`]. The arithmetic is delegated to the
//! `backoff` crate, which is unmaintained upstream (RUSTSEC-2025-0012); it is
//! used only in this file, so replacing it touches nothing else.

use std::time::Duration;

use backoff::backoff::Backoff as _;

/// How long to wait before the next try, growing exponentially with jitter.
///
/// The first delay after a quiet period can be zero (`immediate_first`): a
/// single crash of a long-running actor is restarted at once, as in OTP,
/// while a crash loop is slowed down from the second restart on.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffPolicy {
    /// Delay of the first delayed try.
    pub initial: Duration,
    /// Upper bound of any single delay (before jitter).
    pub max: Duration,
    /// Growth factor between consecutive delays; at least 1.0.
    pub multiplier: f64,
    /// Relative jitter in `[0, 1]`: a delay `d` becomes a uniform draw from
    /// `[d * (1 - jitter), d * (1 + jitter)]`, so that many failing actors do
    /// not retry in lockstep.
    pub jitter: f64,
    /// Whether the first try after a reset goes at once.
    pub immediate_first: bool,
    /// After running this long without failing, the sequence starts over.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.5,
            immediate_first: true,
            reset_after: Duration::from_secs(10),
        }
    }
}

/// Why a [`BackoffPolicy`] cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffPolicyError {
    /// `multiplier` below 1 would shrink the delays, or is not a number.
    #[error("multiplier must be a number >= 1.0, got {0}")]
    Multiplier(f64),
    /// `jitter` outside `[0, 1]`.
    #[error("jitter must be between 0.0 and 1.0, got {0}")]
    Jitter(f64),
    /// `max` below `initial`.
    #[error("max ({max:?}) must not be below initial ({initial:?})")]
    MaxBelowInitial {
        /// The configured initial delay.
        initial: Duration,
        /// The configured maximum delay.
        max: Duration,
    },
}

impl BackoffPolicy {
    /// A policy without waits, for tests and for callers that pace themselves.
    pub fn none() -> Self {
        Self {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            multiplier: 1.0,
            jitter: 0.0,
            immediate_first: true,
            reset_after: Duration::ZERO,
        }
    }

    /// Checks the settings; returns the name of the bad field with the reason.
    pub fn validate(&self) -> Result<(), (&'static str, BackoffPolicyError)> {
        if self.multiplier.is_nan() || self.multiplier < 1.0 || !self.multiplier.is_finite() {
            return Err((
                "multiplier",
                BackoffPolicyError::Multiplier(self.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(("jitter", BackoffPolicyError::Jitter(self.jitter)));
        }
        if self.max < self.initial {
            return Err((
                "max",
                BackoffPolicyError::MaxBelowInitial {
                    initial: self.initial,
                    max: self.max,
                },
            ));
        }
        Ok(())
    }

    /// A fresh stateful sequence of delays following this policy.
    pub fn start(&self) -> Backoff {
        Backoff {
            inner: self.exponential(),
            policy: self.clone(),
            tries: 0,
        }
    }

    /// The delay before try number `attempt` (1-based: the first retry is
    /// attempt 1), for callers that keep the attempt count durably rather
    /// than a [`Backoff`] in memory (e.g. a job record).
    pub fn delay_for_attempt(&self, attempt: u32) -> Duration {
        let mut backoff = self.start();
        let mut delay = Duration::ZERO;
        for _ in 0..attempt.max(1) {
            delay = backoff.next_delay();
        }
        delay
    }

    fn exponential(&self) -> backoff::ExponentialBackoff {
        backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial)
            .with_max_interval(self.max)
            .with_multiplier(self.multiplier.max(1.0))
            .with_randomization_factor(self.jitter.clamp(0.0, 1.0))
            .with_max_elapsed_time(None)
            .build()
    }
}

/// A running sequence of delays; see [`BackoffPolicy::start`].
#[derive(Debug)]
pub struct Backoff {
    inner: backoff::ExponentialBackoff,
    policy: BackoffPolicy,
    tries: u32,
}

impl Backoff {
    /// The wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.tries = self.tries.saturating_add(1);
        if self.tries == 1 && self.policy.immediate_first {
            return Duration::ZERO;
        }
        if self.policy.initial.is_zero() {
            return Duration::ZERO;
        }
        // With `max_elapsed_time` unset the crate never ends the sequence;
        // fall back to the cap should that ever change.
        self.inner.next_backoff().unwrap_or(self.policy.max)
    }

    /// Starts the sequence over, e.g. after a period of stable running.
    pub fn reset(&mut self) {
        self.tries = 0;
        self.inner.reset();
    }

    /// How many delays were handed out since the last reset.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// The policy this sequence follows.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_immediate_then_grows_within_jitter_and_cap() {
        let policy = BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            multiplier: 2.0,
            jitter: 0.5,
            immediate_first: true,
            reset_after: Duration::from_secs(1),
        };
        let mut b = policy.start();
        assert_eq!(b.next_delay(), Duration::ZERO);
        let d1 = b.next_delay();
        assert!(
            d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(150),
            "{d1:?}"
        );
        let d2 = b.next_delay();
        assert!(
            d2 >= Duration::from_millis(100) && d2 <= Duration::from_millis(300),
            "{d2:?}"
        );
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_millis(600));
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
    }

    #[test]
    fn no_jitter_is_exact() {
        let policy = BackoffPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(1),
            multiplier: 3.0,
            jitter: 0.0,
            immediate_first: false,
            reset_after: Duration::ZERO,
        };
        assert_eq!(policy.delay_for_attempt(1), Duration::from_millis(10));
        assert_eq!(policy.delay_for_attempt(2), Duration::from_millis(30));
        assert_eq!(policy.delay_for_attempt(3), Duration::from_millis(90));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let bad = BackoffPolicy {
            multiplier: 0.5,
            ..BackoffPolicy::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "multiplier");
        let bad = BackoffPolicy {
            jitter: 2.0,
            ..BackoffPolicy::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "jitter");
        let bad = BackoffPolicy {
            max: Duration::ZERO,
            ..BackoffPolicy::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "max");
        assert!(BackoffPolicy::default().validate().is_ok());
    }
}
