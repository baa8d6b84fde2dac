//! The approvals port: parking a task whose tool calls need a person's
//! approval, and deciding them.
//!
//! An approval lives in its job's record (see [`crate::job::Approval`]), so
//! each of these moves is one atomic change of one job, made by
//! [`crate::job::rules`] (`park`, `decide`, `expire`); a cancel of a waiting
//! job is [`JobStore::cancel`](super::JobStore::cancel)'s.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::job::{Approval, ApprovalId, ApprovalRequest, Decision, Job, JobId};

use super::{Outcome, StoreError};

/// What a decision did.
// Returned once per call and matched at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum DecideOutcome {
    /// Decided now (and durable): the approval as decided, and its job
    /// (`queued` again when it was the last pending approval of the job).
    Decided {
        /// The approval, decided.
        approval: Approval,
        /// Its job as it is now.
        job: Job,
    },
    /// It had been decided before (approved, denied, expired, or cancelled
    /// with its task): nothing changed; the approval as it stands.
    AlreadyDecided(Approval),
}

/// What an expiry pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expired {
    /// Jobs whose pending approvals passed their deadline (denied by
    /// themselves), as they are now: `queued` when none is pending any more.
    pub jobs: Vec<Job>,
    /// The earliest deadline still pending after the pass, if any: when to
    /// look again.
    pub next_deadline: Option<DateTime<Utc>>,
}

/// Durable approvals of tool calls. Every method that changes state returns
/// once the change is durable, as the [module documentation](super) says.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Parks attempt `attempt` of a running job awaiting `requests`
    /// (`running → waiting`, [`crate::job::rules::park`]). Stale unless the
    /// job is `running` with exactly that attempt.
    async fn park_job(
        &self,
        id: JobId,
        attempt: u32,
        requests: Vec<ApprovalRequest>,
    ) -> Result<Outcome, StoreError>;

    /// Decides approval `id` ([`crate::job::rules::decide`]): of two
    /// decisions racing, exactly one is applied, the other gets
    /// [`DecideOutcome::AlreadyDecided`]. [`StoreError::NotFound`] when no
    /// such approval (or job) is stored.
    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: Decision,
    ) -> Result<DecideOutcome, StoreError>;

    /// The pending approvals (those of waiting jobs), oldest job first.
    async fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError>;

    /// Denies by itself every pending approval whose deadline is at or
    /// before `now` ([`crate::job::rules::expire`]).
    async fn expire_approvals(&self, now: DateTime<Utc>) -> Result<Expired, StoreError>;
}

/// The pending approvals of `job`, for listings.
pub fn pending_of(job: &Job) -> impl Iterator<Item = &Approval> {
    job.approvals
        .iter()
        .filter(|a| a.state == crate::job::ApprovalState::Pending)
}

/// [`StoreError::NotFound`] for approval `id`.
pub fn approval_not_found(id: ApprovalId) -> StoreError {
    StoreError::NotFound {
        what: "approval",
        id: id.to_string(),
    }
}
