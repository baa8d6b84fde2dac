//! Human approval of tool calls: the records a parked job keeps.
//!
//! When a model calls a tool that needs a person's approval, the task parks:
//! its job moves `running → waiting` with one [`Approval`] per such call in
//! the job record itself (`approvals`). Keeping them in the job record, not
//! beside it, makes every move one atomic write of one record in every
//! store (a compare-and-swap in sled, a row lock in PostgreSQL, the mutex
//! in memory): parking, a decision that requeues the job, a cancel that
//! cancels its approvals, a deadline that denies them. So two deciders
//! racing are decided exactly once, and a parked task survives a crash
//! with nothing to repair. The moves are [`super::rules`]' (`park`,
//! `decide`, `expire`, `cancel`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::JobId;

/// The reason a deadline's own denial gives the model.
pub const DEADLINE_REASON: &str = "approval deadline passed";

/// The longest note or reason a decision keeps, in bytes.
pub const MAX_NOTE_BYTES: usize = 4096;

/// An approval's id: its job's id and its number within the job (1-based),
/// written `<job uuid>.<n>`, so a decision finds its record by the job's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApprovalId {
    /// The job the approval belongs to.
    pub job: JobId,
    /// Its number in the job's `approvals` (1-based).
    pub number: u32,
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.job, self.number)
    }
}

/// An approval id that is not `<job uuid>.<n>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid approval id {0:?} (expected <job id>.<n>, as `troupe approvals` lists them)")]
pub struct ParseApprovalIdError(pub String);

impl FromStr for ApprovalId {
    type Err = ParseApprovalIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseApprovalIdError(s.chars().take(100).collect());
        let (job, number) = s.rsplit_once('.').ok_or_else(bad)?;
        let job = JobId::parse_str(job).map_err(|_| bad())?;
        let number: u32 = number.parse().map_err(|_| bad())?;
        if number == 0 {
            return Err(bad());
        }
        Ok(ApprovalId { job, number })
    }
}

impl Serialize for ApprovalId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ApprovalId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where an approval is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for a person (or its deadline).
    Pending,
    /// A person approved it: the call runs once.
    Approved,
    /// A person denied it: the call's result is a tool error with the reason.
    Denied,
    /// Its deadline passed first: denied by itself.
    Expired,
    /// Its task was cancelled while it waited.
    Cancelled,
}

impl ApprovalState {
    /// The lowercase name used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tool call waiting for (or past) a person's decision, as stored in its
/// job and as `troupe approvals` / `GET /v1/approvals` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// `<job id>.<n>`.
    pub id: ApprovalId,
    /// The agent whose task made the call (the job's worker).
    pub agent_id: String,
    /// The tool called.
    pub tool: String,
    /// The call's arguments, as the model gave them.
    pub arguments: Value,
    /// The task's step (the n-th model reply, 0-based) that made the call.
    pub step: u32,
    /// The call's position in that reply (0-based).
    pub call: u32,
    /// The model's id of the call.
    pub call_id: String,
    /// When the task asked.
    pub requested_at: DateTime<Utc>,
    /// When it is denied by itself if no one decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// Pending, or the decision.
    pub state: ApprovalState,
    /// The approver's note, or the reason of a denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

impl Approval {
    /// The job it belongs to.
    pub fn job_id(&self) -> JobId {
        self.id.job
    }
}

/// What a task asks when it parks: one call that needs approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    /// The tool called.
    pub tool: String,
    /// The call's arguments.
    pub arguments: Value,
    /// The task's step that made the call.
    pub step: u32,
    /// The call's position in that reply.
    pub call: u32,
    /// The model's id of the call.
    pub call_id: String,
    /// When it is denied by itself, if ever.
    pub deadline: Option<DateTime<Utc>>,
}

/// A person's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
pub enum Decision {
    /// Run the call, with an optional note.
    Approve {
        /// Why, for the record.
        note: Option<String>,
    },
    /// Do not run it; the model gets `reason` as the call's error.
    Deny {
        /// Why, for the model and the record.
        reason: String,
    },
}

impl Decision {
    /// The state it gives the approval.
    pub fn state(&self) -> ApprovalState {
        match self {
            Decision::Approve { .. } => ApprovalState::Approved,
            Decision::Deny { .. } => ApprovalState::Denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_as_written_and_bad_ones_are_named() {
        let id = ApprovalId {
            job: uuid::Uuid::now_v7(),
            number: 3,
        };
        assert_eq!(id.to_string().parse::<ApprovalId>(), Ok(id));
        for bad in [
            "",
            "x.1",
            "nope",
            &format!("{}.0", id.job),
            &format!("{}", id.job),
        ] {
            let e = bad.parse::<ApprovalId>().err();
            assert!(e.is_some(), "{bad:?} must be refused");
        }
    }
}
