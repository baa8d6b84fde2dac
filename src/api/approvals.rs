//! Approvals: list the tool calls waiting for a person, approve or deny one.

use serde::{Deserialize, Serialize};

use crate::job::{Approval, ApprovalId, ApprovalState, Decision, Job, MAX_NOTE_BYTES};
use crate::store::DecideOutcome;

use super::{ControlError, Request};

/// `GET /v1/approvals`: the pending approvals, oldest task first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalsAnswer {
    /// Every approval still waiting for a decision.
    pub approvals: Vec<Approval>,
}

/// `POST /v1/approvals/{id}/approve`: `{"note"?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveRequest {
    /// Why, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Request for ApproveRequest {
    fn validate(&self) -> Result<(), ControlError> {
        if let Some(note) = &self.note {
            check_text("note", note)?;
        }
        Ok(())
    }
}

/// `POST /v1/approvals/{id}/deny`: `{"reason"}`, which the model gets as
/// the call's error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DenyRequest {
    /// Why: the model reads it as the call's error.
    pub reason: String,
}

impl Request for DenyRequest {
    fn validate(&self) -> Result<(), ControlError> {
        if self.reason.trim().is_empty() {
            return Err(ControlError::field(
                "reason",
                "must not be empty: the model reads it as the call's error",
            ));
        }
        check_text("reason", &self.reason)
    }
}

fn check_text(field: &str, text: &str) -> Result<(), ControlError> {
    if text.len() > MAX_NOTE_BYTES {
        return Err(ControlError::field(
            field,
            format!("is {} bytes; at most {MAX_NOTE_BYTES}", text.len()),
        ));
    }
    Ok(())
}

impl From<ApproveRequest> for Decision {
    fn from(r: ApproveRequest) -> Self {
        Decision::Approve { note: r.note }
    }
}

impl From<DenyRequest> for Decision {
    fn from(r: DenyRequest) -> Self {
        Decision::Deny { reason: r.reason }
    }
}

/// What a decision did: the approval as decided and its job (`queued`
/// again once none of its approvals is pending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecidedAnswer {
    /// The approval, decided.
    pub approval: Approval,
    /// Its job as it is now.
    pub job: Job,
}

/// A store's answer to a decision as the API gives it: decided, or a 409
/// naming how it had been decided.
pub(crate) fn decided(outcome: DecideOutcome) -> Result<DecidedAnswer, ControlError> {
    match outcome {
        DecideOutcome::Decided { approval, job } => Ok(DecidedAnswer { approval, job }),
        DecideOutcome::AlreadyDecided(a) => Err(ControlError::Conflict(already(&a))),
    }
}

fn already(a: &Approval) -> String {
    let when = a
        .decided_at
        .map(|t| format!(" at {}", t.to_rfc3339()))
        .unwrap_or_default();
    match a.state {
        ApprovalState::Cancelled => format!(
            "approval {} cannot be decided: its task (job {}) was cancelled{when}",
            a.id,
            a.job_id()
        ),
        ApprovalState::Expired => format!(
            "approval {} was already denied by its deadline{when} (approval deadline passed)",
            a.id
        ),
        ApprovalState::Pending => format!(
            "approval {} cannot be decided: its task (job {}) is not waiting",
            a.id,
            a.job_id()
        ),
        state => format!("approval {} was already {state}{when}", a.id),
    }
}

/// An approval id from a path or argument, or a 400 naming it.
pub fn parse_approval_id(id: &str) -> Result<ApprovalId, ControlError> {
    id.parse()
        .map_err(|e: crate::job::ParseApprovalIdError| ControlError::BadRequest(e.to_string()))
}
