//! A circuit breaker per provider: stop sending to a provider that keeps
//! failing, so failover is immediate and the provider gets room to recover.
//!
//! Closed → (`failure_threshold` consecutive failures) → Open → (after
//! `open_secs`) → HalfOpen: one probe call at a time; `half_open_successes`
//! successes close it, one failure opens it again. Only errors about the
//! provider's health count (see [`ErrorKind::counts_against_breaker`]); a call
//! whose permit is dropped without an outcome (cancelled, or a bad request)
//! counts as neither.
//!
//! [`ErrorKind::counts_against_breaker`]: super::error::ErrorKind::counts_against_breaker

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::clock::Clock;

/// Breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// Seconds the circuit stays open before a probe is let through.
    pub open_secs: u64,
    /// Successful probes needed to close it again.
    pub half_open_successes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_secs: 30,
            half_open_successes: 1,
        }
    }
}

/// The breaker's state, as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// Probe calls pass one at a time.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
    probe_successes: u32,
}

/// One provider's circuit breaker.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// Returned when the circuit refuses a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejected {
    /// Time until a probe will be allowed (zero while a probe is running).
    pub retry_in: Duration,
}

/// Permission for one call; report its outcome, or drop it for "no verdict".
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    /// The call succeeded.
    pub(crate) fn success(mut self) {
        self.done = true;
        self.breaker.on_success(self.probe);
    }

    /// The call failed in a way that says the provider is unhealthy.
    pub(crate) fn failure(mut self) {
        self.done = true;
        self.breaker.on_failure(self.probe);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.lock().probe_in_flight = false;
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub(crate) fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            config,
            clock,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
                probe_successes: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_for(&self) -> Duration {
        Duration::from_secs(self.config.open_secs)
    }

    /// Moves Open to HalfOpen once the cool-down has passed.
    fn refresh(&self, inner: &mut Inner) {
        if inner.state == BreakerState::Open {
            let since = inner.opened_at.map_or(Duration::MAX, |t| {
                self.clock.now().saturating_duration_since(t)
            });
            if since >= self.open_for() {
                inner.state = BreakerState::HalfOpen;
                inner.probe_in_flight = false;
                inner.probe_successes = 0;
            }
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        inner.state
    }

    /// Asks to send a call.
    pub(crate) fn acquire(&self) -> Result<Permit<'_>, Rejected> {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        match inner.state {
            BreakerState::Closed => Ok(Permit {
                breaker: self,
                probe: false,
                done: false,
            }),
            BreakerState::HalfOpen if !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                Ok(Permit {
                    breaker: self,
                    probe: true,
                    done: false,
                })
            }
            BreakerState::HalfOpen => Err(Rejected {
                retry_in: Duration::ZERO,
            }),
            BreakerState::Open => {
                let since = inner.opened_at.map_or(Duration::ZERO, |t| {
                    self.clock.now().saturating_duration_since(t)
                });
                Err(Rejected {
                    retry_in: self.open_for().saturating_sub(since),
                })
            }
        }
    }

    fn open(&self, inner: &mut Inner) {
        inner.state = BreakerState::Open;
        inner.opened_at = Some(self.clock.now());
        inner.probe_in_flight = false;
        inner.probe_successes = 0;
    }

    fn on_success(&self, probe: bool) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        if probe && inner.state == BreakerState::HalfOpen {
            inner.probe_in_flight = false;
            inner.probe_successes += 1;
            if inner.probe_successes >= self.config.half_open_successes.max(1) {
                inner.state = BreakerState::Closed;
                inner.opened_at = None;
            }
        }
    }

    fn on_failure(&self, probe: bool) {
        let mut inner = self.lock();
        inner.consecutive_failures += 1;
        let trip = (probe && inner.state == BreakerState::HalfOpen)
            || (inner.state == BreakerState::Closed
                && inner.consecutive_failures >= self.config.failure_threshold.max(1));
        if trip {
            self.open(&mut inner);
        }
    }
}
