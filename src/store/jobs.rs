//! The jobs port: one durable queue for agent tasks and worker jobs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::job::{FailAction, Job, JobId};

use super::{
    CancelOutcome, ClaimRequest, InsertOutcome, JobCounts, JobPage, ListQuery, NodeInfo, Outcome,
    Recovered, Retention, StoreError, StoreEvent,
};

/// Durable storage of jobs. Object safe, so the engine holds it behind an
/// `Arc`; every method that changes state returns only once the change is
/// durable (see the [module documentation](super)). The status moves are
/// those of [`crate::job::rules`], which every adapter applies.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new queued job (built with [`Job::new`]). If its unique key
    /// is held by a queued or running job, stores nothing and returns that job.
    async fn insert(&self, job: Job) -> Result<InsertOutcome, StoreError>;

    /// Stores many jobs with one durable write; same unique-key rule per job
    /// (also between jobs of the same call). Outcomes are in input order.
    async fn insert_many(&self, jobs: Vec<Job>) -> Result<Vec<InsertOutcome>, StoreError>;

    /// The job with this id, if stored.
    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// Jobs filtered by status and/or worker, newest first, one page at a time.
    async fn list_jobs(&self, query: &ListQuery) -> Result<JobPage, StoreError>;

    /// Claims ready jobs: `queued`, `runAt <= now`, worker not paused; highest
    /// priority first, then earliest `runAt`, then oldest. Each claimed job is
    /// `running` with `attempt + 1`.
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Job>, StoreError>;

    /// Records the result of attempt `attempt`. Stale unless the job is
    /// `running` with exactly that attempt.
    async fn complete(
        &self,
        id: JobId,
        attempt: u32,
        result: serde_json::Value,
    ) -> Result<Outcome, StoreError>;

    /// Records the failure of attempt `attempt`: re-queued for a retry or
    /// ended `failed` (or `cancelled` if a cancel was requested). Stale
    /// unless the job is `running` with exactly that attempt.
    async fn fail(
        &self,
        id: JobId,
        attempt: u32,
        error: String,
        action: FailAction,
    ) -> Result<Outcome, StoreError>;

    /// Cancels a job: queued → `cancelled`; running → `cancelRequested` set.
    async fn cancel(&self, id: JobId) -> Result<CancelOutcome, StoreError>;

    /// Ends a running job `cancelled` after the scheduler stopped attempt
    /// `attempt` because of a cancel request.
    async fn ack_cancel(&self, id: JobId, attempt: u32) -> Result<Outcome, StoreError>;

    /// Ends a queued job `failed` without running it (e.g. its worker is no
    /// longer registered). Stale unless the job is queued.
    async fn discard(&self, id: JobId, error: String) -> Result<Outcome, StoreError>;

    /// Crash recovery, called once when a scheduler starts: every `running`
    /// job goes back to `queued` (runnable at `now`, attempt kept).
    async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError>;

    /// The earliest `runAt` among queued jobs of workers that are not paused
    /// (and, when given, are in `workers`): the time a scheduler may sleep until.
    async fn next_wake(
        &self,
        workers: Option<&[String]>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Removes ended jobs beyond the retention limits, with their steps and
    /// the idempotency keys that name them, and usage call records older
    /// than `max_age` (day totals are kept); returns how many jobs.
    async fn prune(&self, retention: &Retention, now: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Counts by status and by worker.
    async fn counts(&self) -> Result<JobCounts, StoreError>;

    /// Whether the store serves reads and takes writes: `Ok`, or the error
    /// a read meets, or [`StoreError::Failed`] once the store has failed
    /// (a write could not be made durable: see the durability contract in
    /// the [module documentation](super)). What a readiness check asks.
    async fn health(&self) -> Result<(), StoreError>;

    /// Events from other processes sharing this store (work enqueued there,
    /// a cancel of a job running here), for a store that several processes
    /// share; `None` (the default) for one that only this process holds,
    /// whose engine hears of everything directly.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<StoreEvent>> {
        None
    }

    /// The nodes sharing this store, most recently started first; empty
    /// (the default) for a store only this process holds.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        Ok(Vec::new())
    }
}
