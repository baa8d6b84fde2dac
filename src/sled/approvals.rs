//! The [`ApprovalStore`] port on sled. Approvals live in their job's
//! record, so each move is one compare-and-swap of that record
//! ([`SledStore::transition`]), the index of waiting jobs (by earliest
//! deadline) changed under the same lock; nothing else is written.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{decided, Decision, SledStore};
use crate::job::rules::{self, Undecided};
use crate::job::{Approval, ApprovalId, ApprovalRequest, Job, JobId};
use crate::store::{
    approval_not_found, pending_of, ApprovalStore, DecideOutcome, Expired, Outcome, StoreError,
};

#[async_trait]
impl ApprovalStore for SledStore {
    async fn park_job(
        &self,
        id: JobId,
        attempt: u32,
        requests: Vec<ApprovalRequest>,
    ) -> Result<Outcome, StoreError> {
        self.writable()?;
        let now = Utc::now();
        let outcome = self.transition("park", id, |job, _| {
            decided(rules::park(&job, attempt, requests.clone(), now))
        })?;
        self.durable("park").await?;
        Ok(outcome)
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: crate::job::Decision,
    ) -> Result<DecideOutcome, StoreError> {
        self.writable()?;
        let now = Utc::now();
        let answer = self.transition("decide", id.job, |job, _| {
            match rules::decide(&job, id.number, &decision, now) {
                Ok(new) => Decision::Write(new, Ok),
                Err(undecided) => Decision::Keep(Err(undecided)),
            }
        });
        let job: Job = match answer {
            Err(StoreError::JobNotFound { .. }) | Ok(Err(Undecided::NotFound)) => {
                return Err(approval_not_found(id))
            }
            Err(e) => return Err(e),
            Ok(Err(Undecided::AlreadyDecided(a))) => return Ok(DecideOutcome::AlreadyDecided(*a)),
            Ok(Ok(job)) => job,
        };
        self.durable("decide").await?;
        let approval = job
            .approval(id.number)
            .cloned()
            .ok_or_else(|| approval_not_found(id))?;
        Ok(DecideOutcome::Decided { approval, job })
    }

    async fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        let ids = self.index().waiting();
        let mut out = Vec::new();
        for id in ids {
            if let Some((_, job)) = self.read("approvals", id)? {
                out.extend(pending_of(&job).cloned());
            }
        }
        Ok(out)
    }

    async fn expire_approvals(&self, now: DateTime<Utc>) -> Result<Expired, StoreError> {
        self.writable()?;
        let due = self.index().waiting_due(now);
        let mut answer = Expired::default();
        for id in due {
            let moved = self.transition("expire", id, |job, _| match rules::expire(&job, now) {
                Some(new) => Decision::Write(new, Some),
                None => Decision::Keep(None),
            });
            match moved {
                Ok(Some(job)) => answer.jobs.push(job),
                Ok(None) | Err(StoreError::JobNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if !answer.jobs.is_empty() {
            self.durable("expire").await?;
        }
        answer.next_deadline = self.index().next_deadline(rules::no_deadline());
        Ok(answer)
    }
}
