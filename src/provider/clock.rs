//! Time as a dependency, so waits can be tested without sleeping.
//!
//! The retry policy, the rate limiter and the circuit breaker all read time
//! and sleep through this trait. Production uses [`SystemClock`]; tests use
//! `ManualClock`, whose sleeps return at once, advance its time and are
//! recorded, so "the limiter spaced calls 30 s apart" is an exact assertion.

use std::fmt::Debug;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use futures::FutureExt;

/// A source of time and of sleeping.
pub(crate) trait Clock: Send + Sync + Debug {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock now, for HTTP dates and RFC 3339 reset times.
    fn wall(&self) -> SystemTime;
    /// Waits for `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// Real time, sleeping on the tokio timer.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        tokio::time::sleep(d).boxed()
    }
}

#[cfg(test)]
pub(crate) use manual::ManualClock;

#[cfg(test)]
mod manual {
    use std::sync::Mutex;
    use std::time::{Duration, Instant, SystemTime};

    use futures::future::BoxFuture;
    use futures::FutureExt;

    use super::Clock;

    /// Simulated time for tests: `sleep` advances time instantly and is recorded.
    #[derive(Debug)]
    pub(crate) struct ManualClock {
        start: Instant,
        wall_start: SystemTime,
        state: Mutex<ManualState>,
    }

    #[derive(Debug, Default)]
    struct ManualState {
        offset: Duration,
        sleeps: Vec<Duration>,
    }

    impl Default for ManualClock {
        fn default() -> Self {
            Self::new()
        }
    }

    impl ManualClock {
        /// A clock starting at the real now.
        pub(crate) fn new() -> Self {
            ManualClock {
                start: Instant::now(),
                wall_start: SystemTime::now(),
                state: Mutex::new(ManualState::default()),
            }
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
            self.state.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Moves time forward without a sleep being recorded.
        pub(crate) fn advance(&self, d: Duration) {
            self.lock().offset += d;
        }

        /// Every sleep requested so far, in order.
        pub(crate) fn sleeps(&self) -> Vec<Duration> {
            self.lock().sleeps.clone()
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.start + self.lock().offset
        }
        fn wall(&self) -> SystemTime {
            self.wall_start + self.lock().offset
        }
        fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
            let mut s = self.lock();
            s.offset += d;
            s.sleeps.push(d);
            futures::future::ready(()).boxed()
        }
    }
}
