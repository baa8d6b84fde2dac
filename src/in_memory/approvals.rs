//! The [`ApprovalStore`] port in memory: each move is the answer of
//! [`crate::job::rules`] for the job as stored, under the store's one mutex.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::InMemoryStore;
use crate::job::rules::{self, Undecided};
use crate::job::{Approval, ApprovalId, ApprovalRequest, Decision, JobId, JobStatus};
use crate::store::{
    approval_not_found, pending_of, ApprovalStore, DecideOutcome, Expired, Outcome, StoreError,
};

#[async_trait]
impl ApprovalStore for InMemoryStore {
    async fn park_job(
        &self,
        id: JobId,
        attempt: u32,
        requests: Vec<ApprovalRequest>,
    ) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        self.write()?
            .jobs
            .fenced(id, |job| rules::park(job, attempt, requests, now))
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: Decision,
    ) -> Result<DecideOutcome, StoreError> {
        let now = Utc::now();
        let mut state = self.write()?;
        let job = state
            .jobs
            .records
            .get(&id.job)
            .ok_or_else(|| approval_not_found(id))?;
        match rules::decide(job, id.number, &decision, now) {
            Ok(new) => {
                let approval = new.approval(id.number).cloned();
                state.jobs.put(new.clone());
                let approval = approval.ok_or_else(|| approval_not_found(id))?;
                Ok(DecideOutcome::Decided { approval, job: new })
            }
            Err(Undecided::NotFound) => Err(approval_not_found(id)),
            Err(Undecided::AlreadyDecided(a)) => Ok(DecideOutcome::AlreadyDecided(*a)),
        }
    }

    async fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        let state = self.lock();
        Ok(state
            .jobs
            .records
            .values()
            .filter(|j| j.status == JobStatus::Waiting)
            .flat_map(pending_of)
            .cloned()
            .collect())
    }

    async fn expire_approvals(&self, now: DateTime<Utc>) -> Result<Expired, StoreError> {
        let mut state = self.write()?;
        let due: Vec<_> = state
            .jobs
            .records
            .values()
            .filter_map(|job| rules::expire(job, now))
            .collect();
        let mut answer = Expired::default();
        for job in due {
            state.jobs.put(job.clone());
            answer.jobs.push(job);
        }
        answer.next_deadline = state
            .jobs
            .records
            .values()
            .filter(|j| j.status == JobStatus::Waiting && j.run_at < rules::no_deadline())
            .map(|j| j.run_at)
            .min();
        Ok(answer)
    }
}
