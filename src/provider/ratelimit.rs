//! Client-side requests-per-minute and tokens-per-minute limiting.
//!
//! Calls wait here instead of drawing 429s. Two token buckets (requests,
//! tokens) are refilled continuously; a call reserves its share up front (the
//! level may go negative) and sleeps until the deficit is refilled, so
//! concurrent callers queue in order without polling. Limits come from config
//! and from what the provider reports in its headers: a reported limit lowers
//! or sets the bucket size, a reported `remaining` lowers the level, and
//! `remaining: 0` with a reset time blocks everyone until the reset.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::clock::Clock;
use super::headers::{Dimension, LimitReport};

/// Configured limits; `None` means "only what the provider reports".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitConfig {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Tokens (input estimate + max output) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    level: f64,
    updated: Instant,
}

impl Bucket {
    fn new(per_minute: u64, now: Instant) -> Self {
        let cap = per_minute.max(1) as f64;
        Bucket {
            capacity: cap,
            per_sec: cap / 60.0,
            level: cap,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + dt * self.per_sec).min(self.capacity);
        self.updated = now;
    }

    /// Takes `amount` and returns how long until the level is back to zero.
    fn reserve(&mut self, now: Instant, amount: f64) -> Duration {
        self.refill(now);
        // A single call larger than the bucket could never fit; let it wait
        // for a full bucket rather than forever.
        self.level -= amount.min(self.capacity);
        if self.level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-self.level / self.per_sec).unwrap_or(Duration::MAX)
        }
    }

    fn set_limit(&mut self, per_minute: u64, now: Instant) {
        self.refill(now);
        self.capacity = per_minute.max(1) as f64;
        self.per_sec = self.capacity / 60.0;
        self.level = self.level.min(self.capacity);
    }
}

#[derive(Debug)]
struct State {
    config: RateLimitConfig,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    blocked_until: Option<Instant>,
}

/// What the limiter currently allows; for status pages and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg(test)]
pub(crate) struct LimiterSnapshot {
    /// Requests-per-minute limit in force, if any.
    pub requests_per_minute: Option<u64>,
    /// Tokens-per-minute limit in force, if any.
    pub tokens_per_minute: Option<u64>,
    /// How long new calls must wait because the provider said the window is spent.
    pub blocked_for: Duration,
}

/// One provider's limiter; shared by all its concurrent calls.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl RateLimiter {
    /// A limiter with the configured limits (if any), reading time from `clock`.
    pub(crate) fn new(config: RateLimitConfig, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        RateLimiter {
            state: Mutex::new(State {
                config,
                requests: config.requests_per_minute.map(|n| Bucket::new(n, now)),
                tokens: config.tokens_per_minute.map(|n| Bucket::new(n, now)),
                blocked_until: None,
            }),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves one request and `tokens` tokens, and returns the wait
    /// without sleeping (the caller sleeps).
    #[cfg(test)]
    pub(crate) fn reserve(&self, tokens: u64) -> Duration {
        self.reserve_within(tokens, Duration::MAX)
            .unwrap_or_else(|w| w)
    }

    /// Reserves one request and `tokens` tokens, and returns the wait
    /// without sleeping (the caller sleeps); takes nothing and returns the
    /// wait as `Err` when it would exceed `max_wait`.
    pub(crate) fn reserve_within(
        &self,
        tokens: u64,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        let now = self.clock.now();
        let mut s = self.lock();
        let (mut requests, mut token_bucket) = (s.requests, s.tokens);
        let mut wait = Duration::ZERO;
        if let Some(b) = requests.as_mut() {
            wait = wait.max(b.reserve(now, 1.0));
        }
        if let Some(b) = token_bucket.as_mut() {
            wait = wait.max(b.reserve(now, tokens as f64));
        }
        if let Some(until) = s.blocked_until {
            wait = wait.max(until.saturating_duration_since(now));
        }
        if wait > max_wait {
            return Err(wait);
        }
        s.requests = requests;
        s.tokens = token_bucket;
        Ok(wait)
    }

    /// Waits until one request of `tokens` tokens may be sent, unless that
    /// would take longer than `max_wait`: then nothing is reserved and the
    /// wait is returned as `Err`, so the caller can fail over or reschedule
    /// instead of holding a worker.
    pub(crate) async fn acquire(&self, tokens: u64, max_wait: Duration) -> Result<(), Duration> {
        let wait = self.reserve_within(tokens, max_wait)?;
        if !wait.is_zero() {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "rate limiter delaying call"
            );
            self.clock.sleep(wait).await;
        }
        Ok(())
    }

    /// Corrects a reservation once the real token count is known.
    pub(crate) fn settle(&self, reserved: u64, actual: u64) {
        let now = self.clock.now();
        if let Some(b) = self.lock().tokens.as_mut() {
            b.refill(now);
            // Bounded below: an absurd usage report must not stall the
            // provider for more than one window.
            b.level = (b.level + reserved as f64 - actual as f64).clamp(-b.capacity, b.capacity);
        }
    }

    /// Stops all calls for `d` (after a 429 that named a wait).
    pub(crate) fn block_for(&self, d: Duration) {
        let until = self.clock.now() + d;
        let mut s = self.lock();
        s.blocked_until = Some(s.blocked_until.map_or(until, |u| u.max(until)));
    }

    /// Adjusts to the limits the provider reported in its response headers.
    pub(crate) fn observe(&self, reports: &[LimitReport]) {
        let now = self.clock.now();
        let mut s = self.lock();
        for r in reports {
            let configured = match r.dimension {
                Dimension::Requests => s.config.requests_per_minute,
                Dimension::Tokens => s.config.tokens_per_minute,
            };
            let slot = match r.dimension {
                Dimension::Requests => &mut s.requests,
                Dimension::Tokens => &mut s.tokens,
            };
            if let Some(limit) = r.limit {
                let limit = configured.map_or(limit, |c| c.min(limit));
                match slot {
                    Some(b) => b.set_limit(limit, now),
                    None => *slot = Some(Bucket::new(limit, now)),
                }
            }
            if let (Some(rem), Some(b)) = (r.remaining, slot.as_mut()) {
                b.refill(now);
                b.level = b.level.min(rem as f64);
            }
            if r.remaining == Some(0) {
                if let Some(reset) = r.reset {
                    let until = now + reset;
                    s.blocked_until = Some(s.blocked_until.map_or(until, |u| u.max(until)));
                }
            }
        }
    }

    /// The limits in force and any provider-imposed block.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> LimiterSnapshot {
        let now = self.clock.now();
        let s = self.lock();
        LimiterSnapshot {
            requests_per_minute: s.requests.map(|b| b.capacity as u64),
            tokens_per_minute: s.tokens.map(|b| b.capacity as u64),
            blocked_for: s
                .blocked_until
                .map_or(Duration::ZERO, |u| u.saturating_duration_since(now)),
        }
    }
}
