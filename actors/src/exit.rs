//! Why a child stopped running, as its supervisor sees it.

use std::any::Any;
use std::fmt;

/// The cause of a child's exit; decides whether a transient child restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The actor stopped itself on purpose (`Context::stop`).
    Normal,
    /// The actor reported a failure (`Context::fail`).
    Failed(String),
    /// A handler, hook, timer or spawned future panicked; the panic message.
    Panicked(String),
    /// The factory could not build a new instance.
    StartFailed(String),
    /// A nested supervisor exceeded its restart intensity and gave up.
    Escalated {
        /// The supervisor that gave up.
        supervisor: String,
        /// The exit that tipped it over.
        cause: String,
    },
}

impl ExitReason {
    /// Anything but a normal stop counts as a failure.
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, ExitReason::Normal)
    }

    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        ExitReason::Panicked(panic_message(payload.as_ref()))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("stopped normally"),
            ExitReason::Failed(why) => write!(f, "failed: {why}"),
            ExitReason::Panicked(msg) => write!(f, "panicked: {msg}"),
            ExitReason::StartFailed(why) => write!(f, "could not start: {why}"),
            ExitReason::Escalated { supervisor, cause } => {
                write!(
                    f,
                    "supervisor `{supervisor}` gave up after too many restarts (last: {cause})"
                )
            }
        }
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is named).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
