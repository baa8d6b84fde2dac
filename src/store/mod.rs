//! Durable storage for the job engine: the [`Store`] trait and its embedded
//! implementation [`SledStore`].
//!
//! # Durability contract
//!
//! - **Every call that changes state returns only after the change is
//!   durable.** Inserting, claiming, completing, failing, cancelling,
//!   recovering, pruning, pausing and saving/firing schedules all end by
//!   waiting for a flush that started after their writes.
//! - **"Durable" means [`Durability::Process`] by default**: sled 0.34.7's
//!   flush ends with `sync_file_range` on its log, so an acknowledged write
//!   survives the process being killed (SIGKILL, panic, OOM) but *not* a power
//!   loss or kernel crash on a disk with a volatile write cache. (sled's own
//!   background flusher also `fsync`s the log about every 500 ms, so against
//!   power loss the default leaves a window of roughly that length.) With
//!   [`Durability::PowerLoss`] the committer also `fdatasync`s sled's log file
//!   (`<dir>/db`) after each group flush, before acknowledging. Measured with
//!   `examples/bench_store.rs` on the shared 2-core development machine
//!   (three runs, Process → PowerLoss, enqueues/s): 1 producer ~6,000-8,100
//!   → ~2,300-3,200; 8 producers ~27,000-34,000 → ~12,000-16,000; 64
//!   producers ~51,000-74,000 → ~47,000-81,000 (CPU-bound and noisy there:
//!   groups grow while the fdatasync runs, 22-32 jobs per flush). Affordable
//!   under concurrency, a 3x cost for a lone writer; hence opt-in. Log
//!   entries larger than ~128 KiB (a job with huge args or result) go to
//!   sled's `blobs/` files, which neither mode `fdatasync`s.
//! - **Group commit.** Writers do their (in-memory, microsecond) sled writes
//!   themselves, then register with one committer thread and wait. The
//!   committer takes every waiting writer, runs one flush (plus fdatasync
//!   when asked) and wakes them all; writers that arrive during a flush share
//!   the next one. A single writer pays one flush per write; 64 concurrent
//!   writers share one flush among many writes. The committer is an OS thread
//!   and the wait is a `futures` oneshot, so it works from tokio and from
//!   actix arbiters alike.
//! - **Reads may see writes whose flush is still in flight** (e.g. a claim can
//!   pick up a job whose enqueue has not been acknowledged yet). The claim's
//!   own flush then covers the enqueue too, so nothing is acted upon that a
//!   crash could take back without also taking back the action.
//! - **At least once, completion once.** After a crash, `recover` puts every
//!   `running` job back to `queued` (its attempt stays counted, the
//!   interruption is appended to `errors`). A job may therefore run twice;
//!   `complete` and `fail` name the attempt they finish and are no-ops
//!   ([`Outcome::Stale`]) unless the job is still `running` with that
//!   attempt, and terminal statuses have no way out, so a completion is
//!   recorded once.
//!
//! # Layout of the sled store
//!
//! - The **job record is the single source of truth**: tree `jobs`, key = the
//!   16 bytes of the UUID v7 id (so key order is creation order), value = the
//!   job's camelCase JSON. A transition is one compare-and-swap of that
//!   record; nothing else is written on the hot path (one write per enqueue,
//!   claim and completion). sled `Batch`es and transactions take a
//!   process-wide lock that a running flush holds from the other side
//!   (measured ~5x slower under group commit), so they stay off the hot path;
//!   only a schedule firing (rare) uses a transaction, to advance the
//!   schedule and insert its job together.
//! - **Indexes are derived, in memory, rebuilt from the records at open**:
//!   ready jobs per worker ordered by (priority desc, runAt, id), earliest
//!   runAt per worker (wake-up time), ids per status and per worker+status
//!   (listing newest first, counts), ended jobs by end time (retention), and
//!   unique keys of active jobs. They are changed under the same mutex as the
//!   record's compare-and-swap, so within the process an index never
//!   disagrees with its job, and after a crash there is nothing to repair:
//!   they are rebuilt from what sled recovered. The price is a scan of all
//!   records at open and roughly 100-200 bytes of memory per stored job;
//!   retention (`prune`) bounds both.
//! - Trees `pause` and `schedules` hold the pause state and the recurring
//!   schedules (small, also mirrored in memory).
//! - Opening a directory another process holds fails with
//!   [`StoreError::Locked`] naming it (sled takes an exclusive file lock).
//! - `open` does not change job states: the scheduler calls
//!   [`Store::recover`] when it starts, so read-only commands (listing jobs)
//!   never requeue anything.

mod error;
mod sled_store;
mod types;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::job::schedule::Schedule;
use crate::job::{Job, JobId};

pub use error::{BackendError, StoreError};
pub use sled_store::{CommitStats, SledConfig, SledStore};
pub use types::{
    CancelOutcome, ClaimRequest, Durability, FailAction, FiredSchedule, InsertOutcome, JobCounts,
    JobPage, ListQuery, Outcome, PauseState, PauseTarget, Recovered, Retention,
};

/// Durable storage of jobs, schedules and the pause state.
///
/// Object safe, so the engine holds an `Arc<dyn Store>` and a PostgreSQL
/// store can replace the sled one. Every method that changes state returns
/// only once the change is durable (see the module documentation).
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a new queued job (built with [`Job::new`]). If its unique key
    /// is held by a queued or running job, stores nothing and returns that job.
    async fn insert(&self, job: Job) -> Result<InsertOutcome, StoreError>;

    /// Stores many jobs with one durable flush; same unique-key rule per job
    /// (also between jobs of the same call). Outcomes are in input order.
    async fn insert_many(&self, jobs: Vec<Job>) -> Result<Vec<InsertOutcome>, StoreError>;

    /// The job with this id, if stored.
    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// Jobs filtered by status and/or worker, newest first, one page at a time.
    async fn list(&self, query: &ListQuery) -> Result<JobPage, StoreError>;

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

    /// Removes ended jobs beyond the retention limits; returns how many.
    async fn prune(&self, retention: &Retention, now: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Counts by status and by worker.
    async fn counts(&self) -> Result<JobCounts, StoreError>;

    /// Pauses or resumes claiming for everything or one worker; durable.
    async fn set_paused(&self, target: PauseTarget, paused: bool)
        -> Result<PauseState, StoreError>;

    /// The current pause state.
    async fn pause_state(&self) -> Result<PauseState, StoreError>;

    /// Creates or replaces a schedule (its spec is validated).
    async fn put_schedule(&self, schedule: Schedule) -> Result<(), StoreError>;

    /// The schedule with this id.
    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError>;

    /// All schedules, by id.
    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError>;

    /// Deletes a schedule; returns whether it existed.
    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError>;

    /// Fires every schedule due at `now` (see
    /// [`crate::job::schedule::plan_firings`]): enqueues its jobs and advances
    /// it, both in one atomic, durable step, so each firing happens once
    /// across restarts.
    async fn fire_due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<FiredSchedule>, StoreError>;

    /// The earliest `nextFireAt` among schedules.
    async fn next_schedule_fire(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
}
