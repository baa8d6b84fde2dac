//! The errors of the supervision layer, one enum per failure surface.

use std::time::Duration;

/// A message could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The instance crashed or was stopped while the message was queued or
    /// being handled; a restarted instance did not see it.
    #[error("actor `{actor}` stopped or crashed before it answered")]
    Dropped {
        /// The child's id.
        actor: String,
    },
    /// No answer within the caller's deadline.
    #[error("actor `{actor}` did not answer within {timeout:?}")]
    Timeout {
        /// The child's id.
        actor: String,
        /// The deadline that passed.
        timeout: Duration,
    },
}

/// A message could not be queued without waiting; it is handed back.
#[derive(thiserror::Error)]
pub enum TrySendError<M> {
    /// The mailbox is at capacity.
    #[error("mailbox of actor `{actor}` is full")]
    Full {
        /// The child's id.
        actor: String,
        /// The message that was not sent.
        msg: M,
    },
    /// The actor is gone for good.
    #[error("actor `{actor}` is closed")]
    Closed {
        /// The child's id.
        actor: String,
        /// The message that was not sent.
        msg: M,
    },
}

impl<M> std::fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrySendError::Full { actor, .. } => write!(f, "Full({actor})"),
            TrySendError::Closed { actor, .. } => write!(f, "Closed({actor})"),
        }
    }
}

impl<M> TrySendError<M> {
    /// The message that could not be sent.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full { msg, .. } | TrySendError::Closed { msg, .. } => msg,
        }
    }
}

/// A tree could not be built: a spec is impossible. Nothing was started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A setting of a child or supervisor cannot work.
    #[error("child `{child}`: invalid `{field}`: {reason}")]
    InvalidSetting {
        /// Path of the child in the tree, e.g. `root/workers/w1`.
        child: String,
        /// The offending setting.
        field: &'static str,
        /// Why it cannot work.
        reason: String,
    },
    /// Two siblings share an id; addresses are looked up by id.
    #[error("supervisor `{supervisor}` has two children named `{child}`")]
    DuplicateChild {
        /// Path of the supervisor.
        supervisor: String,
        /// The repeated id.
        child: String,
    },
    /// `start` was called outside an actix system.
    #[error("a supervision tree must be started inside an actix system (actix::System or #[actix::main])")]
    NoRuntime,
    /// An id is empty or contains `/`, which separates path segments.
    #[error("`{id}` is not a valid child id: it must be non-empty and contain no `/`")]
    InvalidId {
        /// The rejected id.
        id: String,
    },
    /// A thread for actors could not be started.
    #[error("could not start a thread for actors: {0}")]
    Thread(String),
}

/// An address could not be found in a started tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No child at that path.
    #[error("no actor at `{path}`")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// A child exists there, but of another type.
    #[error("the actor at `{path}` is not a `{expected}`")]
    WrongType {
        /// The path asked for.
        path: String,
        /// The type asked for.
        expected: &'static str,
    },
}

/// How a tree ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The root supervisor exceeded its restart intensity and stopped.
    #[error("supervision tree `{root}` gave up: {cause}")]
    Escalated {
        /// The root supervisor's id.
        root: String,
        /// The exit that exceeded the intensity.
        cause: String,
    },
    /// The root's actor is gone (its system was stopped).
    #[error("supervision tree `{root}` is no longer running")]
    Gone {
        /// The root supervisor's id.
        root: String,
    },
}
