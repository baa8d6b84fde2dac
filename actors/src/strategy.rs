//! Which siblings restart together, and how often is too often.

use std::time::Duration;

/// Which children a supervisor restarts when one of them exits (OTP's
/// strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that exited: siblings are independent.
    #[default]
    OneForOne,
    /// All children: they only make sense together.
    OneForAll,
    /// The child that exited and those started after it, which depend on it.
    RestForOne,
}

/// At most `max_restarts` restarts within any `period`; one more and the
/// supervisor stops its children and itself and its parent sees it fail.
/// The default, 3 in 5 seconds, is Elixir's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within `period` (0: the first exit escalates).
    pub max_restarts: u32,
    /// The sliding window; must be longer than zero.
    pub period: Duration,
}

impl Intensity {
    /// `max_restarts` within `period`.
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
        }
    }
}

impl Default for Intensity {
    fn default() -> Self {
        Self::new(3, Duration::from_secs(5))
    }
}
