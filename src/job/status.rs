//! The job status and its state machine.
//!
//! The state machine lives here, apart from any store, so that every store
//! (sled today, PostgreSQL later) and every test model agree on one set of
//! legal moves.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life. Serialised in lowercase (`"queued"`, …) as the
/// seed's JSON shape fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to be claimed once `runAt` has passed.
    Queued,
    /// Claimed by a scheduler; an attempt is in progress.
    Running,
    /// Ended with a result. Terminal.
    Completed,
    /// Ended with an error after its last attempt (or a permanent error). Terminal.
    Failed,
    /// Ended because someone cancelled it. Terminal.
    Cancelled,
    /// Parked until a person decides on its tool calls that need approval
    /// (or their deadline passes): holds no worker slot and is not claimed.
    Waiting,
}

impl JobStatus {
    /// Every status, in a fixed order (used for counts and compact indexes).
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Waiting,
    ];

    /// The lowercase name used in JSON, the CLI and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Waiting => "waiting",
        }
    }

    /// Position in [`JobStatus::ALL`]; lets indexes keep one slot per status.
    pub fn index(self) -> usize {
        match self {
            JobStatus::Queued => 0,
            JobStatus::Running => 1,
            JobStatus::Completed => 2,
            JobStatus::Failed => 3,
            JobStatus::Cancelled => 4,
            JobStatus::Waiting => 5,
        }
    }

    /// True once the job has ended: nothing may change it any more except pruning.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// True while the job still occupies its unique key (queued, running or
    /// waiting).
    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    /// Whether `self → to` is a legal move.
    ///
    /// The legal moves are:
    /// - `queued → running` (claimed), `queued → cancelled` (cancelled before
    ///   it ran), `queued → failed` (discarded, e.g. its worker is no longer
    ///   registered);
    /// - `running → completed`, `running → failed` (last attempt or permanent
    ///   error), `running → queued` (retry later, or recovery after a crash),
    ///   `running → cancelled` (a cancel request acknowledged by the scheduler),
    ///   `running → waiting` (parked awaiting approval of tool calls);
    /// - `waiting → queued` (every approval decided, or its deadline passed),
    ///   `waiting → cancelled` (cancelled while it waited).
    ///
    /// Terminal statuses have no way out, which is what makes "a completion is
    /// recorded once" hold.
    pub fn can_transition_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Queued, Running)
                | (Queued, Cancelled)
                | (Queued, Failed)
                | (Running, Completed)
                | (Running, Failed)
                | (Running, Queued)
                | (Running, Cancelled)
                | (Running, Waiting)
                | (Waiting, Queued)
                | (Waiting, Cancelled)
        )
    }

    /// Checks `self → to`, returning `to` or a typed error naming both ends.
    pub fn transition(self, to: JobStatus) -> Result<JobStatus, TransitionError> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// An illegal status change, e.g. `completed → running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal job status transition {from} -> {to}")]
pub struct TransitionError {
    /// The status the job had.
    pub from: JobStatus,
    /// The status someone tried to give it.
    pub to: JobStatus,
}

/// A status name that is not one of `queued`, `running`, `completed`,
/// `failed`, `cancelled`, `waiting`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job status {0:?} (expected queued, running, completed, failed, cancelled or waiting)"
)]
pub struct ParseStatusError(pub String);
