//! The [`ApprovalStore`] port on PostgreSQL. Approvals live in their job's
//! `data`; a waiting job's `run_at` is its earliest pending deadline (the
//! far future without one), so the deadline pass reads the
//! `jobs_waiting_deadline` index (`run_at WHERE status = 'waiting'`,
//! migration 3). Parking goes with the other fenced transitions (the
//! store's transition task); a decision and an expiry lock the job's row
//! (`FOR UPDATE`), ask [`crate::job::rules`], and write it back in the same
//! transaction: of two deciders on any nodes, the second waits for the
//! first's row lock and then finds the approval decided.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::{fenced, job_of, lock_job_row, write_back};
use super::{db, PostgresStore};
use crate::job::rules::{self, Undecided};
use crate::job::{Approval, ApprovalId, ApprovalRequest, Decision, Job, JobId, JobStatus};
use crate::store::{
    approval_not_found, pending_of, ApprovalStore, DecideOutcome, Expired, Outcome, StoreError,
};

/// The most jobs one expiry pass moves.
const EXPIRE_BATCH: i64 = 1000;

#[async_trait]
impl ApprovalStore for PostgresStore {
    async fn park_job(
        &self,
        id: JobId,
        attempt: u32,
        requests: Vec<ApprovalRequest>,
    ) -> Result<Outcome, StoreError> {
        fenced(self, "park", id, move |job| {
            rules::park(job, attempt, requests, Utc::now())
        })
        .await
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: Decision,
    ) -> Result<DecideOutcome, StoreError> {
        self.write("decide", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("decide"))?;
            let Some(job) = lock_job_row(&tx, "decide", id.job).await? else {
                return Err(approval_not_found(id));
            };
            let new: Job = match rules::decide(&job, id.number, &decision, Utc::now()) {
                Ok(new) => new,
                Err(Undecided::NotFound) => return Err(approval_not_found(id)),
                Err(Undecided::AlreadyDecided(a)) => return Ok(DecideOutcome::AlreadyDecided(*a)),
            };
            write_back(&tx, "decide", std::slice::from_ref(&new)).await?;
            tx.commit().await.map_err(db("decide"))?;
            if new.status == JobStatus::Queued {
                shared.wake_others();
            }
            let approval = new
                .approval(id.number)
                .cloned()
                .ok_or_else(|| approval_not_found(id))?;
            Ok(DecideOutcome::Decided { approval, job: new })
        })
        .await
    }

    async fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        self.run("approvals", move |client, _| async move {
            let stmt = client
                .prepare_cached("SELECT data, id FROM jobs WHERE status = 'waiting' ORDER BY id")
                .await
                .map_err(db("approvals"))?;
            let rows = client.query(&stmt, &[]).await.map_err(db("approvals"))?;
            let mut out = Vec::new();
            for row in &rows {
                out.extend(pending_of(&job_of(row, 0)?).cloned());
            }
            Ok(out)
        })
        .await
    }

    async fn expire_approvals(&self, now: DateTime<Utc>) -> Result<Expired, StoreError> {
        self.write("expire", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("expire"))?;
            let stmt = tx
                .prepare_cached(
                    "SELECT data, id FROM jobs WHERE status = 'waiting' AND run_at <= $1 \
                     ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                )
                .await
                .map_err(db("expire"))?;
            let rows = tx
                .query(&stmt, &[&now, &EXPIRE_BATCH])
                .await
                .map_err(db("expire"))?;
            let mut moved = Vec::new();
            for row in &rows {
                if let Some(new) = rules::expire(&job_of(row, 0)?, now) {
                    moved.push(new);
                }
            }
            write_back(&tx, "expire", &moved).await?;
            // The earliest from the index, then the jobs at that time
            // decoded: the column holds microseconds, `runAt` is exact.
            let next = tx
                .prepare_cached(
                    "SELECT data, id, run_at FROM jobs WHERE status = 'waiting' AND run_at = \
                     (SELECT min(run_at) FROM jobs WHERE status = 'waiting' AND run_at < $1)",
                )
                .await
                .map_err(db("expire"))?;
            let next_deadline = tx
                .query(&next, &[&rules::no_deadline()])
                .await
                .map_err(db("expire"))?
                .iter()
                .filter_map(|row| match job_of(row, 0) {
                    Ok(job) => Some(job.run_at),
                    Err(_) => row.try_get::<_, DateTime<Utc>>(2).ok(),
                })
                .min();
            tx.commit().await.map_err(db("expire"))?;
            if moved.iter().any(|j| j.status == JobStatus::Queued) {
                shared.wake_others();
            }
            Ok(Expired {
                jobs: moved,
                next_deadline,
            })
        })
        .await
    }
}
