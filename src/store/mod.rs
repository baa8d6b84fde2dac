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
//!   (four runs, Process → PowerLoss, enqueues/s; figures swing up to 2x
//!   with the other load on the machine): 1 producer ~6,000-8,100 →
//!   ~2,200-3,200; 8 producers ~19,000-34,000 → ~9,000-16,000; 64 producers
//!   ~38,000-74,000 → ~20,000-81,000 (groups grow while the fdatasync runs:
//!   21-35 jobs per flush). Affordable under concurrency, a 3x cost for a
//!   lone writer; hence opt-in. Log entries larger than ~128 KiB (a job with
//!   huge args or result) go to sled's `blobs/` files, which neither mode
//!   `fdatasync`s.
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
//!   process-wide lock that a running flush holds from the other side (the
//!   shared notes measured ~17,800 vs ~3,500 jobs/s), so they stay off the
//!   hot path; only a schedule firing (rare) uses a transaction, to advance
//!   the schedule and insert its job together.
//! - **Indexes are derived, in memory, rebuilt from the records at open**:
//!   ready jobs per worker ordered by (priority desc, runAt, id), earliest
//!   runAt per worker (wake-up time), ids per status and per worker+status
//!   (listing newest first, counts), ended jobs by end time (retention), and
//!   unique keys of active jobs. They are changed under the same mutex as the
//!   record's compare-and-swap (JSON encoding happens before, outside it), so
//!   within the process an index never disagrees with its job, and after a
//!   crash there is nothing to repair: they are rebuilt from what sled
//!   recovered. A claim still re-reads the record and checks it is queued and
//!   due before swapping it. Why not sled index trees as hints: they would
//!   add 2-4 writes to every transition (about 11 writes per job lifetime
//!   instead of 3) and still need a repair scan at open; at the ~110,000-
//!   135,000 raw inserts/s measured here that alone would cap a job's
//!   lifetime near 10,000/s. The price of memory: a scan of all records at
//!   open (~300 ms for 50,000 jobs here, so ~6 s per million) and roughly
//!   100-200 bytes per stored job; retention (`prune`) bounds both.
//! - Trees `pause` and `schedules` hold the pause state and the recurring
//!   schedules (small, also mirrored in memory).
//! - **Agent data** lives in the same database, on its own trees, made
//!   durable by the same group commit (see each file's documentation for
//!   the exact key encoding):
//!   - memories ([`crate::memory::MemoryStore`],
//!     `sled_store/memory.rs`): `memories` (16-byte UUID v7 → memory JSON,
//!     the source of truth), `memory_scopes` (length-prefixed agent id and
//!     optional user id ++ memory id → empty: one prefix scan per scope,
//!     oldest first) and `memory_keys` (idempotency key → memory id). Every
//!     memory write is one sled transaction over the trees it touches, so a
//!     compaction (archive the originals, insert the summaries) is atomic
//!     and the scope index never disagrees with the records; memory writes
//!     are rare enough that the transactions' cost does not matter;
//!   - conversations ([`crate::conversation::ConversationStore`],
//!     `sled_store/conversation.rs`): `messages` (length-prefixed
//!     conversation id ++ message UUID v7 → message JSON: the key is its own
//!     time index) and `message_keys` (idempotency key → message key); an
//!     append is one insert, or one transaction with an idempotency key;
//!   - agent steps ([`crate::agent::checkpoint::CheckpointStore`],
//!     `sled_store/checkpoint.rs`): `checkpoints` (job id ++ u32 BE step →
//!     step JSON) and `idempotency` (key → claimed JSON, claimed by one
//!     compare-and-swap).
//!
//!   Unlike jobs these have no in-memory index (nothing to scan at open):
//!   their lookups are sled prefix scans.
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
pub use sled_store::{CommitStats, SledConfig, SledStore, DEFAULT_COMMIT_WINDOW};
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
