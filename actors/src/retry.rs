//! Exponential backoff with jitter, and the one retry decision of Troupe.
//!
//! Restart delays in a supervision tree, job retries and provider retries all
//! draw their waits from [`BackoffPolicy`]. Whether to try again at all, and
//! after how long, is [`RetryPolicy::decide`]: a provider's in-line retries
//! and the job engine's job retries ask the same function, so a wait the
//! failure itself asks for (a `Retry-After`, a circuit breaker's cooldown) is
//! honoured the same way in both. The arithmetic is delegated to the
//! `backoff` crate, which is unmaintained upstream (RUSTSEC-2025-0012); it is
//! used only in this file, so replacing it touches nothing else.

use std::time::Duration;

use backoff::backoff::Backoff as _;

/// Growth beyond this per step only reaches `max` sooner; capping it keeps
/// the delay arithmetic finite.
const MAX_MULTIPLIER: f64 = 100.0;

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
        for i in 0..attempt.max(1) {
            // Once the interval is at its cap every later delay is the cap
            // with jitter: draw that one and stop (a job may allow millions
            // of attempts).
            if i > 0 && backoff.inner.current_interval >= backoff.inner.max_interval {
                return backoff.next_delay();
            }
            delay = backoff.next_delay();
        }
        delay
    }

    fn exponential(&self) -> backoff::ExponentialBackoff {
        // Settings read from a file may be anything (TOML has `nan` and
        // `inf`): out-of-range values are brought back in range here, so no
        // setting can make a delay computation panic.
        let multiplier = if self.multiplier.is_finite() {
            self.multiplier.clamp(1.0, MAX_MULTIPLIER)
        } else {
            2.0
        };
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial)
            .with_max_interval(self.max.max(self.initial))
            .with_multiplier(multiplier)
            .with_randomization_factor(jitter)
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

/// Whether and when to try again after a failed attempt: the backoff
/// between attempts, and the bounds past which trying again is given up.
///
/// A value with one decision function, [`decide`](Self::decide), in the
/// shape of tower's `retry::Policy`: the caller says which attempt failed and
/// what the failure asked for, the policy answers "again after this long" or
/// "give up, and why". A provider's in-line retries and the job engine's job
/// retries both ask it, so the rule for a wait the failure names is one:
/// the next attempt comes no earlier than that wait, nor earlier than the
/// backoff. Whether a failure is worth retrying at all is the caller's call
/// (it knows the error); the policy decides when.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The delay before retry number n (`delay_for_attempt(n)`).
    pub backoff: BackoffPolicy,
    /// Attempts in total, the first included (1 = no retries; 0 counts as 1).
    pub max_attempts: u32,
    /// The longest wait this caller will hold on to. A longer one (most often
    /// a provider's `Retry-After` or a breaker's cooldown) gives up with
    /// [`GiveUpReason::WaitTooLong`], so that someone who can wait without
    /// holding anything (the engine, which runs the job again later) does.
    pub max_wait: Option<Duration>,
    /// Time for all attempts and waits together: a wait that would end past
    /// it gives up with [`GiveUpReason::OutOfTime`].
    pub max_total: Option<Duration>,
}

/// One failed attempt, as [`RetryPolicy::decide`] needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailedAttempt {
    /// Which attempt failed (1-based).
    pub attempt: u32,
    /// The earliest time another attempt makes sense, if the failure says
    /// (a provider's `Retry-After`, the rest of a breaker's cooldown).
    pub retry_after: Option<Duration>,
    /// Time since the first attempt began (for `max_total`).
    pub elapsed: Duration,
}

/// What [`RetryPolicy::decide`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this long.
    RetryAfter(Duration),
    /// Do not try again here.
    GiveUp(GiveUpReason),
}

/// Why a [`RetryPolicy`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUpReason {
    /// `max_attempts` attempts were made.
    AttemptsSpent,
    /// The next attempt would have to wait this long, over `max_wait`.
    WaitTooLong(Duration),
    /// Waiting would end past `max_total`.
    OutOfTime,
}

impl RetryPolicy {
    /// At most `max_attempts` attempts, `backoff` apart, with no bound on a
    /// single wait or on the total time.
    pub fn new(backoff: BackoffPolicy, max_attempts: u32) -> Self {
        Self {
            backoff,
            max_attempts,
            max_wait: None,
            max_total: None,
        }
    }

    /// One attempt only: for callers that retry on their own.
    pub fn no_retries() -> Self {
        Self::new(BackoffPolicy::none(), 1)
    }

    /// Gives up instead of waiting longer than `wait` (builder style).
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = Some(wait);
        self
    }

    /// Gives up instead of running past `total` in all (builder style).
    pub fn max_total(mut self, total: Duration) -> Self {
        self.max_total = Some(total);
        self
    }

    /// The decision after `failed`: give up once the attempts are spent;
    /// otherwise the wait is the larger of the backoff for this attempt and
    /// what the failure asked for, given up if it is over `max_wait` or would
    /// end past `max_total`.
    pub fn decide(&self, failed: &FailedAttempt) -> RetryDecision {
        if failed.attempt >= self.max_attempts.max(1) {
            return RetryDecision::GiveUp(GiveUpReason::AttemptsSpent);
        }
        let backoff = self.backoff.delay_for_attempt(failed.attempt);
        let wait = backoff.max(failed.retry_after.unwrap_or(Duration::ZERO));
        if self.max_wait.is_some_and(|max| wait > max) {
            return RetryDecision::GiveUp(GiveUpReason::WaitTooLong(wait));
        }
        if self
            .max_total
            .is_some_and(|max| failed.elapsed.saturating_add(wait) > max)
        {
            return RetryDecision::GiveUp(GiveUpReason::OutOfTime);
        }
        RetryDecision::RetryAfter(wait)
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
        assert_eq!(policy.delay_for_attempt(7), Duration::from_secs(1));
        assert_eq!(policy.delay_for_attempt(u32::MAX), Duration::from_secs(1));
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

    fn exact(initial_ms: u64) -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.0,
            immediate_first: false,
            reset_after: Duration::ZERO,
        }
    }

    fn failed(attempt: u32, retry_after: Option<u64>, elapsed_s: u64) -> FailedAttempt {
        FailedAttempt {
            attempt,
            retry_after: retry_after.map(Duration::from_secs),
            elapsed: Duration::from_secs(elapsed_s),
        }
    }

    #[test]
    fn the_wait_is_the_backoff_or_the_asked_wait_whichever_is_longer() {
        let policy = RetryPolicy::new(exact(1000), 5);
        let after = |d: u64| RetryDecision::RetryAfter(Duration::from_millis(d));
        assert_eq!(policy.decide(&failed(1, None, 0)), after(1000));
        assert_eq!(policy.decide(&failed(2, None, 0)), after(2000));
        assert_eq!(policy.decide(&failed(1, Some(120), 0)), after(120_000));
        // A wait shorter than the backoff does not shorten it.
        assert_eq!(policy.decide(&failed(3, Some(1), 0)), after(4000));
        assert_eq!(policy.decide(&failed(1, Some(0), 0)), after(1000));
    }

    #[test]
    fn attempts_are_counted_first_included() {
        let policy = RetryPolicy::new(exact(10), 3);
        assert!(matches!(
            policy.decide(&failed(2, None, 0)),
            RetryDecision::RetryAfter(_)
        ));
        let spent = RetryDecision::GiveUp(GiveUpReason::AttemptsSpent);
        assert_eq!(policy.decide(&failed(3, None, 0)), spent);
        assert_eq!(policy.decide(&failed(3, Some(1), 0)), spent);
        assert_eq!(RetryPolicy::no_retries().decide(&failed(1, None, 0)), spent);
        // 0 attempts means one, not "retry forever".
        assert_eq!(
            RetryPolicy::new(exact(10), 0).decide(&failed(1, None, 0)),
            spent
        );
    }

    #[test]
    fn a_wait_over_max_wait_is_handed_back_and_time_is_bounded() {
        let policy = RetryPolicy::new(exact(500), 10)
            .max_wait(Duration::from_secs(60))
            .max_total(Duration::from_secs(10));
        assert_eq!(
            policy.decide(&failed(1, Some(120), 0)),
            RetryDecision::GiveUp(GiveUpReason::WaitTooLong(Duration::from_secs(120)))
        );
        assert_eq!(
            policy.decide(&failed(1, Some(4), 4)),
            RetryDecision::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(
            policy.decide(&failed(2, Some(4), 8)),
            RetryDecision::GiveUp(GiveUpReason::OutOfTime)
        );
        // Without bounds nothing but the attempts ends it.
        let open = RetryPolicy::new(exact(500), 10);
        assert_eq!(
            open.decide(&failed(1, Some(86_400), 1_000_000)),
            RetryDecision::RetryAfter(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn settings_out_of_range_still_give_finite_delays() {
        for (multiplier, jitter) in [
            (f64::NAN, f64::NAN),
            (f64::INFINITY, f64::INFINITY),
            (-3.0, -1.0),
            (1e300, 7.0),
        ] {
            let policy = BackoffPolicy {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(50),
                multiplier,
                jitter,
                immediate_first: false,
                reset_after: Duration::ZERO,
            };
            for attempt in 1..6 {
                let d = policy.delay_for_attempt(attempt);
                assert!(
                    d <= Duration::from_millis(200),
                    "{multiplier} {jitter}: {d:?}"
                );
            }
        }
    }
}
