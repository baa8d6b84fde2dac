//! [`SledStore`]: the embedded adapter of every storage port, on sled
//! 0.34.7. It imports nothing above the ports (`crate::store`) and the job
//! model and rules (`crate::job`); the contract it keeps is the ports'
//! (see `crate::store`), the layout and durability below are its own.
//!
//! # Durability
//!
//! - **Group commit.** Writers do their (in-memory, microsecond) sled writes
//!   themselves, then register with one committer thread and wait. The
//!   committer takes every waiting writer, runs one flush (plus fdatasync
//!   when asked) and wakes them all; writers that arrive during a flush share
//!   the next one. A single writer pays one flush per write; 64 concurrent
//!   writers share one flush among many writes. The committer is an OS thread
//!   and the wait is a `futures` oneshot, so it works from tokio and from
//!   actix arbiters alike.
//! - **[`Durability::Process`] is the default**: sled 0.34.7's flush ends
//!   with `sync_file_range` on its log, so an acknowledged write survives the
//!   process being killed (SIGKILL, panic, OOM) but *not* a power loss or
//!   kernel crash on a disk with a volatile write cache. (sled's own
//!   background flusher also flushes about every 500 ms, so against power
//!   loss the default leaves a window of roughly that length.) With
//!   [`Durability::PowerLoss`] the committer also `fdatasync`s sled's log
//!   file (`<dir>/db`) after each group flush, before acknowledging; see
//!   `examples/bench_store.rs` for what each costs. Log entries larger than
//!   ~128 KiB (a job with huge args or result) go to sled's `blobs/` files,
//!   which neither mode `fdatasync`s.
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
//!   - memories ([`MemoryStore`](crate::store::MemoryStore),
//!     `sled/memory.rs`): `memories` (16-byte UUID v7 → memory JSON,
//!     the source of truth), `memory_scopes` (length-prefixed agent id and
//!     optional user id ++ memory id → empty: one prefix scan per scope,
//!     oldest first) and `memory_keys` (idempotency key → memory id). Every
//!     memory write is one sled transaction over the trees it touches, so a
//!     compaction (archive the originals, insert the summaries) is atomic
//!     and the scope index never disagrees with the records; memory writes
//!     are rare enough that the transactions' cost does not matter;
//!   - conversations ([`ConversationStore`](crate::store::ConversationStore),
//!     `sled/conversation.rs`): `messages` (length-prefixed
//!     conversation id ++ message UUID v7 → message JSON: the key is its own
//!     time index) and `message_keys` (idempotency key → message key); an
//!     append is one insert, or one transaction with an idempotency key;
//!   - agent steps ([`StepStore`](crate::store::StepStore) and [`IdempotencyStore`](crate::store::IdempotencyStore),
//!     `sled/steps.rs`): `checkpoints` (job id ++ u32 BE step →
//!     step JSON) and `idempotency` (key → claimed JSON, claimed by one
//!     compare-and-swap).
//!
//!   Unlike jobs these have no in-memory index (nothing to scan at open):
//!   their lookups are sled prefix scans.
//! - Opening a directory another process holds fails with
//!   [`StoreError::Locked`] naming it (sled takes an exclusive file lock).
//! - `open` does not change job states: the scheduler calls
//!   [`JobStore::recover`] when it starts, so read-only commands (listing jobs)
//!   never requeue anything.

mod conversation;
mod group_commit;
mod harness;
mod index;
mod keys;
mod memory;
mod steps;
mod usage;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::job::rules::{self, CancelMove};
use crate::job::schedule::{plan_firings, Schedule, ScheduleError};
use crate::job::{FailAction, Job, JobError, JobId, JobStatus};
use crate::store::{
    parked, validate_schedule, CancelOutcome, ClaimRequest, Durability, FiredSchedule,
    InsertOutcome, JobCounts, JobPage, JobStore, ListQuery, Outcome, PauseState, PauseTarget,
    Recovered, Retention, ScheduleStore, StoreError,
};

pub use group_commit::CommitStats;
use group_commit::GroupCommit;
pub use harness::{SledHarness, TempDataDir};
use index::Index;

/// Jobs inserted per acquisition of the index lock in a bulk insert, so
/// claims interleave with a large bulk insert.
const INSERT_CHUNK: usize = 256;

/// How to open a [`SledStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledConfig {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// What an acknowledged write survives; default [`Durability::Process`].
    pub durability: Durability,
    /// sled's page cache size in bytes (`None`: sled's default, 1 GiB max).
    pub cache_capacity: Option<u64>,
    /// At open, move job records that cannot be decoded to the `quarantine`
    /// tree instead of failing. Off by default: a corrupt record is reported
    /// (naming the job id) rather than silently dropped.
    pub quarantine_corrupt: bool,
    /// The group-commit window: under steady load, durable writes are
    /// flushed at most once per window and share that flush (a write after
    /// a quiet spell is flushed at once). Longer saves CPU and disk work per
    /// write and adds up to this much to each durable write's latency.
    /// Default [`DEFAULT_COMMIT_WINDOW`] (500 µs); zero turns it off.
    pub commit_window: Duration,
}

/// The default [`SledConfig::commit_window`].
pub const DEFAULT_COMMIT_WINDOW: Duration = Duration::from_micros(500);

impl SledConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SledConfig {
            dir: dir.into(),
            durability: Durability::Process,
            cache_capacity: None,
            quarantine_corrupt: false,
            commit_window: DEFAULT_COMMIT_WINDOW,
        }
    }

    /// Sets the durability level.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}

/// The embedded job store. Cheap to clone (shared handle); the directory is
/// locked while any clone lives. Dropping the last clone flushes, stops the
/// committer and returns once sled has released the directory (at most ~2 s),
/// so the same process can open it again straight away.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    // Field order matters for drop: the committer joins its thread (which
    // holds a handle on the database) before the trees and `db` go.
    commit: GroupCommit,
    /// Usage records waiting for the committer (see [`usage::UsageBuffer`]).
    usage: Arc<usage::UsageBuffer>,
    jobs: sled::Tree,
    pause: sled::Tree,
    schedules_tree: sled::Tree,
    index: Mutex<Index>,
    schedules: Mutex<BTreeMap<String, Schedule>>,
    db: sled::Db,
    // Last field, so it drops after every sled handle above.
    _release: ReleaseWait,
}

/// Waits, when the store is dropped, until sled has really let go of its
/// data directory. sled's background write threads keep the log file (and
/// its lock) open for a moment after the last handle is dropped; without
/// this, reopening the directory right away in the same process (a restart
/// in tests, a supervisor restarting the engine) can fail as "in use".
struct ReleaseWait {
    db_file: PathBuf,
}

/// Longest time a drop waits for sled's threads to release the lock.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for ReleaseWait {
    fn drop(&mut self) {
        use fs2::FileExt;
        let Ok(file) = File::open(&self.db_file) else {
            return;
        };
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_micros(100);
        while file.try_lock_exclusive().is_err() {
            if start.elapsed() >= RELEASE_WAIT {
                tracing::warn!(file = %self.db_file.display(), "sled still holds its lock after the store was dropped");
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(5));
        }
        let _ = FileExt::unlock(&file);
    }
}

/// What a transition closure decided about one job.
// Built and consumed once per call; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Decision<R> {
    /// Write this new version, answer `R`.
    Write(Job, R),
    /// Leave it, answer `R`.
    Keep(R),
}

impl SledStore {
    /// Opens (or creates) the store in `config.dir` and rebuilds the indexes
    /// from the records. Fails with [`StoreError::Locked`] when another
    /// process holds the directory, and with [`StoreError::CorruptJob`]
    /// naming the job when a record cannot be decoded (unless
    /// `quarantine_corrupt`).
    ///
    /// Blocking (file I/O and a full scan); call it before starting actors or
    /// from `spawn_blocking`.
    pub fn open(config: SledConfig) -> Result<SledStore, StoreError> {
        let dir = config.dir.clone();
        let open_err = |e: sled::Error| StoreError::Open {
            dir: dir.clone(),
            source: Box::new(e),
        };
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Open {
            dir: dir.clone(),
            source: Box::new(e),
        })?;
        let mut sled_config = sled::Config::new().path(&dir);
        if let Some(bytes) = config.cache_capacity {
            sled_config = sled_config.cache_capacity(bytes);
        }
        let db = sled_config.open().map_err(|e| match e {
            sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
                StoreError::Locked { dir: dir.clone() }
            }
            other => open_err(other),
        })?;
        let jobs = db.open_tree(keys::JOBS).map_err(open_err)?;
        let pause = db.open_tree(keys::PAUSE).map_err(open_err)?;
        let schedules_tree = db.open_tree(keys::SCHEDULES).map_err(open_err)?;

        let mut index = Index::default();
        let mut quarantined = 0usize;
        for entry in jobs.iter() {
            let (key, value) = entry.map_err(open_err)?;
            let decoded = keys::decode_job_key(&key)
                .map_err(|hex| StoreError::CorruptJob {
                    id: hex,
                    reason: "key is not a 16-byte job id".into(),
                })
                .and_then(|id| {
                    let job = keys::decode_job(&id.to_string(), &value)?;
                    if job.id == id {
                        Ok(job)
                    } else {
                        Err(StoreError::CorruptJob {
                            id: id.to_string(),
                            reason: format!("record holds id {}", job.id),
                        })
                    }
                });
            match decoded {
                Ok(job) => index.add(&job),
                Err(e) if config.quarantine_corrupt => {
                    tracing::error!(error = %e, "moving corrupt job record to quarantine");
                    let quarantine = db.open_tree(keys::QUARANTINE).map_err(open_err)?;
                    quarantine.insert(&key, value).map_err(open_err)?;
                    jobs.remove(&key).map_err(open_err)?;
                    quarantined += 1;
                }
                Err(e) => return Err(e),
            }
        }
        for entry in pause.iter() {
            let (key, _) = entry.map_err(open_err)?;
            match keys::decode_pause_key(&key)? {
                None => index.paused.all = true,
                Some(worker) => {
                    index.paused.workers.insert(worker);
                }
            }
        }
        let mut schedules = BTreeMap::new();
        for entry in schedules_tree.iter() {
            let (key, value) = entry.map_err(open_err)?;
            let schedule = keys::decode_schedule(&key, &value)?;
            schedules.insert(schedule.id.clone(), schedule);
        }

        let sync_file = match config.durability {
            Durability::Process => None,
            Durability::PowerLoss => {
                let io_err = |e: std::io::Error| StoreError::Open {
                    dir: dir.clone(),
                    source: Box::new(e),
                };
                // Make the directory entries of sled's files durable once.
                File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err)?;
                Some(File::open(dir.join("db")).map_err(io_err)?)
            }
        };
        let usage = Arc::new(usage::UsageBuffer::open(&db).map_err(open_err)?);
        let buffered = Arc::clone(&usage);
        let commit = GroupCommit::start(
            db.clone(),
            sync_file,
            config.commit_window,
            Box::new(move || buffered.apply_logged()),
        )
        .map_err(|e| StoreError::Open {
            dir: dir.clone(),
            source: Box::new(e),
        })?;
        let store = SledStore {
            inner: Arc::new(Inner {
                dir: dir.clone(),
                commit,
                usage,
                jobs,
                pause,
                schedules_tree,
                index: Mutex::new(index),
                schedules: Mutex::new(schedules),
                _release: ReleaseWait {
                    db_file: dir.join("db"),
                },
                db,
            }),
        };
        if quarantined > 0 {
            store.inner.db.flush().map_err(open_err)?;
        }
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Group-commit figures so far (flushes and writers acknowledged).
    pub fn commit_stats(&self) -> CommitStats {
        self.inner.commit.stats()
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // No code panics while holding this lock; recover the guard if a
        // panic elsewhere poisoned it rather than wedging the store.
        self.inner.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn schedules(&self) -> MutexGuard<'_, BTreeMap<String, Schedule>> {
        self.inner
            .schedules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn durable(&self, operation: &'static str) -> Result<(), StoreError> {
        self.inner
            .commit
            .wait()
            .await
            .map_err(|message| StoreError::Durability { operation, message })
    }

    fn read(
        &self,
        operation: &'static str,
        id: JobId,
    ) -> Result<Option<(sled::IVec, Job)>, StoreError> {
        let bytes = self
            .inner
            .jobs
            .get(keys::job_key(id))
            .map_err(|e| StoreError::backend(operation, e))?;
        match bytes {
            None => Ok(None),
            Some(bytes) => {
                let job = keys::decode_job(&id.to_string(), &bytes)?;
                Ok(Some((bytes, job)))
            }
        }
    }

    /// Read, decide, compare-and-swap, re-index; retried if the record
    /// changed in between. Does not wait for durability.
    fn transition<R>(
        &self,
        operation: &'static str,
        id: JobId,
        decide: impl Fn(&Job) -> Decision<R>,
    ) -> Result<R, StoreError> {
        loop {
            let (old_bytes, old) = self
                .read(operation, id)?
                .ok_or(StoreError::JobNotFound { id })?;
            let (new, answer) = match decide(&old) {
                Decision::Keep(answer) => return Ok(answer),
                Decision::Write(new, answer) => (new, answer),
            };
            let new_bytes = keys::encode_job(&new)?;
            let mut index = self.index();
            let swapped = self
                .inner
                .jobs
                .compare_and_swap(keys::job_key(id), Some(&old_bytes), Some(new_bytes))
                .map_err(|e| StoreError::backend(operation, e))?;
            if swapped.is_ok() {
                index.replace(&old, &new);
                return Ok(answer);
            }
        }
    }

    /// Inserts one encoded job under the index lock (unique-key check included).
    fn insert_locked(
        &self,
        index: &mut Index,
        job: Job,
        bytes: Vec<u8>,
    ) -> Result<InsertOutcome, StoreError> {
        if let Some(key) = &job.unique_key {
            if let Some(holder) = index.unique_holder(key) {
                if let Some((_, existing)) = self.read("insert", holder)? {
                    return Ok(InsertOutcome::Existing(existing));
                }
            }
        }
        let swapped = self
            .inner
            .jobs
            .compare_and_swap(keys::job_key(job.id), None::<&[u8]>, Some(bytes))
            .map_err(|e| StoreError::backend("insert", e))?;
        if swapped.is_err() {
            return Err(StoreError::InvalidJob {
                id: job.id,
                source: JobError::Invalid {
                    field: "id",
                    reason: "a job with this id is already stored".into(),
                },
            });
        }
        index.add(&job);
        Ok(InsertOutcome::Inserted(job))
    }

    fn all_ids(&self, cursor: Option<JobId>, limit: usize) -> Result<Vec<JobId>, StoreError> {
        let iter = match cursor {
            Some(c) => self.inner.jobs.range(..keys::job_key(c).to_vec()),
            None => self.inner.jobs.iter(),
        };
        let mut ids = Vec::with_capacity(limit);
        for key in iter.keys().rev() {
            if ids.len() >= limit {
                break;
            }
            let key = key.map_err(|e| StoreError::backend("list", e))?;
            if let Ok(id) = keys::decode_job_key(&key) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

/// [`rules::validate_new`], as a store error naming the job.
fn validate_new(job: &Job) -> Result<(), StoreError> {
    rules::validate_new(job).map_err(|source| StoreError::InvalidJob { id: job.id, source })
}

/// A rule's answer to a transition that names an attempt, as a decision.
fn decided(next: Result<Job, rules::Stale>) -> Decision<Outcome> {
    match next {
        Ok(new) => Decision::Write(new.clone(), Outcome::Applied(new)),
        Err(stale) => Decision::Keep(stale.into()),
    }
}

#[async_trait]
impl JobStore for SledStore {
    async fn insert(&self, job: Job) -> Result<InsertOutcome, StoreError> {
        validate_new(&job)?;
        let bytes = keys::encode_job(&job)?;
        let outcome = {
            let mut index = self.index();
            self.insert_locked(&mut index, job, bytes)?
        };
        self.durable("insert").await?;
        Ok(outcome)
    }

    async fn insert_many(&self, jobs: Vec<Job>) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut encoded = Vec::with_capacity(jobs.len());
        for job in jobs {
            validate_new(&job)?;
            let bytes = keys::encode_job(&job)?;
            encoded.push((job, bytes));
        }
        let mut outcomes = Vec::with_capacity(encoded.len());
        let mut rest = encoded.into_iter().peekable();
        while rest.peek().is_some() {
            let mut index = self.index();
            for (job, bytes) in rest.by_ref().take(INSERT_CHUNK) {
                outcomes.push(self.insert_locked(&mut index, job, bytes)?);
            }
        }
        self.durable("insert_many").await?;
        Ok(outcomes)
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.read("get", id)?.map(|(_, job)| job))
    }

    async fn list_jobs(&self, query: &ListQuery) -> Result<JobPage, StoreError> {
        let limit = query.page_size();
        // One more than the page tells whether a next page exists.
        let want = limit.saturating_add(1);
        let mut scan_error = None;
        let ids = self.index().list(
            query.status,
            query.worker.as_deref(),
            query.cursor,
            want,
            |cursor, n| {
                self.all_ids(cursor, n).unwrap_or_else(|e| {
                    scan_error = Some(e);
                    Vec::new()
                })
            },
        );
        if let Some(e) = scan_error {
            return Err(e);
        }
        let more = ids.len() > limit;
        let mut jobs = Vec::with_capacity(limit);
        for id in ids.into_iter().take(limit) {
            // A job pruned or changed since the index was read is left out.
            if let Some((_, job)) = self.read("list", id)? {
                let status_ok = query.status.is_none() || query.status == Some(job.status);
                if status_ok {
                    jobs.push(job);
                }
            }
        }
        let next_cursor = if more {
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Job>, StoreError> {
        let now = request.now;
        let candidates =
            self.index()
                .claim_candidates(now, request.limit, request.per_worker.as_ref());
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut prepared = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let Some((bytes, old)) = self.read("claim", candidate.id)? else {
                continue;
            };
            let Some(new) = rules::claim(&old, now) else {
                continue;
            };
            let new_bytes = keys::encode_job(&new)?;
            prepared.push((bytes, old, new, new_bytes));
        }
        let mut claimed = Vec::with_capacity(prepared.len());
        {
            let mut index = self.index();
            for (old_bytes, old, new, new_bytes) in prepared {
                let swapped = self
                    .inner
                    .jobs
                    .compare_and_swap(keys::job_key(old.id), Some(&old_bytes), Some(new_bytes))
                    .map_err(|e| StoreError::backend("claim", e))?;
                // A job changed since it was read (cancelled, claimed by
                // another caller) is simply not claimed.
                if swapped.is_ok() {
                    index.replace(&old, &new);
                    claimed.push(new);
                }
            }
        }
        if !claimed.is_empty() {
            self.durable("claim").await?;
        }
        Ok(claimed)
    }

    async fn complete(
        &self,
        id: JobId,
        attempt: u32,
        result: Value,
    ) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        let outcome = self.transition("complete", id, |job| {
            decided(rules::complete(job, attempt, result.clone(), now))
        })?;
        self.durable("complete").await?;
        Ok(outcome)
    }

    async fn fail(
        &self,
        id: JobId,
        attempt: u32,
        error: String,
        action: FailAction,
    ) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        let outcome = self.transition("fail", id, |job| {
            decided(rules::fail(job, attempt, error.clone(), action, now))
        })?;
        self.durable("fail").await?;
        Ok(outcome)
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome, StoreError> {
        let now = Utc::now();
        let outcome = self.transition("cancel", id, |job| match rules::cancel(job, now) {
            CancelMove::Cancel(new) => Decision::Write(new.clone(), CancelOutcome::Cancelled(new)),
            CancelMove::Request(new) => Decision::Write(new.clone(), CancelOutcome::Requested(new)),
            CancelMove::AlreadyRequested => Decision::Keep(CancelOutcome::Requested(job.clone())),
            CancelMove::AlreadyEnded => Decision::Keep(CancelOutcome::AlreadyEnded(job.clone())),
        })?;
        self.durable("cancel").await?;
        Ok(outcome)
    }

    async fn ack_cancel(&self, id: JobId, attempt: u32) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        let outcome = self.transition("ack_cancel", id, |job| {
            decided(rules::ack_cancel(job, attempt, now))
        })?;
        self.durable("ack_cancel").await?;
        Ok(outcome)
    }

    async fn discard(&self, id: JobId, error: String) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        let outcome = self.transition("discard", id, |job| {
            decided(rules::discard(job, error.clone(), now))
        })?;
        self.durable("discard").await?;
        Ok(outcome)
    }

    async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        let running = self.index().running();
        let mut recovered = Recovered::default();
        for id in running {
            let result = self.transition("recover", id, |job| match rules::recover(job, now) {
                Some(new) => {
                    let status = new.status;
                    Decision::Write(new, Some(status))
                }
                None => Decision::Keep(None),
            });
            match result {
                Ok(Some(JobStatus::Queued)) => recovered.requeued.push(id),
                Ok(Some(_)) => recovered.cancelled.push(id),
                Ok(None) | Err(StoreError::JobNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.durable("recover").await?;
        Ok(recovered)
    }

    async fn next_wake(
        &self,
        workers: Option<&[String]>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.index().next_wake(workers))
    }

    async fn prune(&self, retention: &Retention, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let ids = self.index().prunable(retention, now);
        let mut removed = 0;
        for chunk in ids.chunks(INSERT_CHUNK) {
            let mut index = self.index();
            for id in chunk {
                let Some((bytes, job)) = self.read("prune", *id)? else {
                    continue;
                };
                if !job.status.is_terminal() {
                    continue;
                }
                // Steps and keys first: an ended job never runs again, and a
                // crash in between must not leave them with no job to find
                // them by.
                self.drop_steps(*id)?;
                let swapped = self
                    .inner
                    .jobs
                    .compare_and_swap(keys::job_key(*id), Some(&bytes), None::<&[u8]>)
                    .map_err(|e| StoreError::backend("prune", e))?;
                if swapped.is_ok() {
                    index.remove(&job);
                    removed += 1;
                }
            }
        }
        let mut calls = 0;
        if let Some(cutoff) = retention
            .max_age
            .and_then(|age| chrono::Duration::from_std(age).ok())
            .and_then(|age| now.checked_sub_signed(age))
        {
            calls = self
                .prune_usage_calls(cutoff)
                .map_err(|e| StoreError::backend("prune usage calls", e))?;
        }
        if removed > 0 || calls > 0 {
            self.durable("prune").await?;
        }
        Ok(removed)
    }

    async fn counts(&self) -> Result<JobCounts, StoreError> {
        Ok(self.index().counts())
    }
}

#[async_trait]
impl ScheduleStore for SledStore {
    async fn set_paused(
        &self,
        target: PauseTarget,
        paused: bool,
    ) -> Result<PauseState, StoreError> {
        target.validate()?;
        let key = match &target {
            PauseTarget::All => keys::PAUSE_ALL.to_vec(),
            PauseTarget::Worker(w) => keys::pause_worker_key(w),
        };
        let state = {
            let mut index = self.index();
            let result = if paused {
                self.inner.pause.insert(key, &b"1"[..]).map(|_| ())
            } else {
                self.inner.pause.remove(key).map(|_| ())
            };
            result.map_err(|e| StoreError::backend("set_paused", e))?;
            match (target, paused) {
                (PauseTarget::All, p) => index.paused.all = p,
                (PauseTarget::Worker(w), true) => {
                    index.paused.workers.insert(w);
                }
                (PauseTarget::Worker(w), false) => {
                    index.paused.workers.remove(&w);
                }
            }
            index.paused.clone()
        };
        self.durable("set_paused").await?;
        Ok(state)
    }

    async fn pause_state(&self) -> Result<PauseState, StoreError> {
        Ok(self.index().paused.clone())
    }

    async fn put_schedule(&self, schedule: Schedule) -> Result<(), StoreError> {
        validate_schedule(&schedule)?;
        let bytes = keys::encode_schedule(&schedule)?;
        {
            let mut schedules = self.schedules();
            self.inner
                .schedules_tree
                .insert(schedule.id.as_bytes(), bytes)
                .map_err(|e| StoreError::backend("put_schedule", e))?;
            schedules.insert(schedule.id.clone(), schedule);
        }
        self.durable("put_schedule").await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        Ok(self.schedules().get(id).cloned())
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        Ok(self.schedules().values().cloned().collect())
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let existed = {
            let mut schedules = self.schedules();
            self.inner
                .schedules_tree
                .remove(id.as_bytes())
                .map_err(|e| StoreError::backend("delete_schedule", e))?;
            schedules.remove(id).is_some()
        };
        self.durable("delete_schedule").await?;
        Ok(existed)
    }

    async fn fire_due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<FiredSchedule>, StoreError> {
        let mut fired = Vec::new();
        {
            let mut schedules = self.schedules();
            let due: Vec<String> = schedules
                .values()
                .filter(|s| s.next_fire_at <= now)
                .map(|s| s.id.clone())
                .collect();
            for id in due {
                let Some(schedule) = schedules.get(&id).cloned() else {
                    continue;
                };
                if let Some(done) = self.fire_one(&schedule, now)? {
                    schedules.insert(id, done.schedule.clone());
                    fired.push(done);
                }
            }
        }
        if !fired.is_empty() {
            self.durable("fire_due_schedules").await?;
        }
        Ok(fired)
    }

    async fn next_schedule_fire(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.schedules().values().map(|s| s.next_fire_at).min())
    }
}

impl SledStore {
    /// Fires one due schedule: its jobs and its advanced record in one sled
    /// transaction (rare, so off the hot path), under the index lock.
    fn fire_one(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<Option<FiredSchedule>, StoreError> {
        let schedule_err = |source: ScheduleError| StoreError::Schedule {
            id: schedule.id.clone(),
            source,
        };
        let plan = match plan_firings(
            &schedule.spec,
            schedule.next_fire_at,
            now,
            schedule.catch_up,
        ) {
            Ok(plan) => plan,
            Err(ScheduleError::Exhausted { .. }) => {
                // Never fires again: park it instead of finding it due forever.
                let parked = parked(schedule);
                let bytes = keys::encode_schedule(&parked)?;
                self.inner
                    .schedules_tree
                    .insert(parked.id.as_bytes(), bytes)
                    .map_err(|e| StoreError::backend("fire_due_schedules", e))?;
                return Ok(Some(FiredSchedule {
                    schedule: parked,
                    jobs: Vec::new(),
                }));
            }
            Err(e) => return Err(schedule_err(e)),
        };
        let Some(last) = plan.fire_times.last().copied() else {
            return Ok(None);
        };
        let mut advanced = schedule.clone();
        advanced.next_fire_at = plan.next_fire_at;
        advanced.last_fired_at = Some(last);
        let schedule_bytes = keys::encode_schedule(&advanced)?;

        let mut index = self.index();
        let mut jobs = Vec::new();
        for fire_at in &plan.fire_times {
            if let Some(key) = &schedule.unique_key {
                let held = index.unique_holder(key).is_some()
                    || jobs
                        .iter()
                        .any(|j: &Job| j.unique_key.as_deref() == Some(key));
                if held {
                    continue;
                }
            }
            let job = rules::scheduled_job(schedule, *fire_at, now).map_err(|e| {
                StoreError::InvalidInput {
                    field: "schedule",
                    reason: format!("schedule {:?}: {e}", schedule.id),
                }
            })?;
            jobs.push(job);
        }
        let mut encoded = Vec::with_capacity(jobs.len());
        for job in &jobs {
            encoded.push((keys::job_key(job.id), keys::encode_job(job)?));
        }
        let result: Result<(), TransactionError<()>> =
            (&self.inner.jobs, &self.inner.schedules_tree).transaction(
                |(jobs_tx, schedules_tx)| {
                    for (key, bytes) in &encoded {
                        jobs_tx.insert(&key[..], bytes.as_slice())?;
                    }
                    schedules_tx.insert(advanced.id.as_bytes(), schedule_bytes.as_slice())?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            );
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => {
                return Err(StoreError::backend("fire_due_schedules", e))
            }
            Err(TransactionError::Abort(())) => {
                return Err(StoreError::InvalidInput {
                    field: "schedule",
                    reason: format!("firing schedule {:?} was aborted", schedule.id),
                })
            }
        }
        for job in &jobs {
            index.add(job);
        }
        Ok(Some(FiredSchedule {
            schedule: advanced,
            jobs,
        }))
    }
}
