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
//! - **[`Durability::PowerLoss`] is the default**: after each group flush
//!   the committer `fdatasync`s sled's log file (`<dir>/db`), and the blob
//!   files sled wrote since the last group (log entries larger than ~128
//!   KiB, a job with huge args or result, go to `blobs/`) with their
//!   directory, before acknowledging; an acknowledged write survives a
//!   power cut or kernel crash. [`Durability::Process`] skips those syncs:
//!   sled 0.34.7's flush ends with `sync_file_range` on its log, so an
//!   acknowledged write survives the process being killed (SIGKILL, panic,
//!   OOM) but not a power loss on a disk with a volatile write cache (and
//!   sled's own background flusher also flushes about every 500 ms, so the
//!   window is roughly that). See `examples/bench_store.rs` and
//!   `examples/bench_agents.rs` for what each costs.
//! - **A failed flush fails the store.** A flush that errs, or still runs
//!   after [`SledConfig::flush_timeout`] (a watchdog thread watches the
//!   committer), or an I/O error from a sled write marks the store failed:
//!   every waiting and later write gets [`StoreError::Failed`] at once,
//!   reads go on, [`JobStore::health`] says so, and only opening the
//!   directory again (a new process) clears it; see `group_commit.rs` for
//!   why, and for how a store whose committer is stuck in sled is dropped
//!   without waiting for it.
//! - **Owner-only files.** The data directory is created 0700 and sled's
//!   files are 0600, also those sled creates later; an existing directory
//!   open to others is warned about (see `files.rs`).
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
//!   schedules (small, also mirrored in memory; `sled/schedules.rs`).
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

mod approvals;
mod conversation;
mod export;
mod files;
mod group_commit;
mod harness;
mod index;
mod keys;
mod memory;
mod open;
mod power_sync;
mod schedules;
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

use crate::job::rules::{self, CancelMove};
use crate::job::schedule::Schedule;
use crate::job::{FailAction, Job, JobError, JobId, JobStatus};
use crate::store::{
    CancelOutcome, ClaimRequest, Durability, InsertOutcome, JobCounts, JobPage, JobStore,
    ListQuery, Outcome, Recovered, Retention, StoreError,
};

pub use group_commit::CommitStats;
use group_commit::{CommitFate, GroupCommit};
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
    /// What an acknowledged write survives; default [`Durability::PowerLoss`].
    pub durability: Durability,
    /// sled's page cache size in bytes; default [`DEFAULT_CACHE_CAPACITY`]
    /// (32 MiB). sled keeps every record it wrote or read in this cache up
    /// to the cap, so the cap, not the work done, bounds the memory that
    /// cache holds. `None` is sled's own default, 1 GiB, which a daemon
    /// reaches only after hundreds of thousands of tasks: the cache grows
    /// with every task until then. At least [`MIN_CACHE_CAPACITY`]; less is
    /// refused at open ([`StoreError::Open`], naming it).
    pub cache_capacity: Option<u64>,
    /// At open, move job records that cannot be decoded to the `quarantine`
    /// tree instead of failing. Off by default: a corrupt record is reported
    /// (naming the job id) rather than silently dropped.
    pub quarantine_corrupt: bool,
    /// The group-commit window: under steady load, durable writes are
    /// flushed at most once per window and share that flush (a write after
    /// a quiet spell is flushed at once). Longer saves CPU and disk work per
    /// write and adds up to this much to each durable write's latency.
    /// Default [`DEFAULT_COMMIT_WINDOW`] (2 ms); zero turns it off.
    pub commit_window: Duration,
    /// A flush still running after this long fails the store: its writers,
    /// and every later one, get [`StoreError::Failed`] instead of waiting
    /// for ever on a disk (or a sled) that is stuck. Default
    /// [`DEFAULT_FLUSH_TIMEOUT`] (30 s): far beyond what a flush of a
    /// working disk takes, even a slow one under load.
    pub flush_timeout: Duration,
}

/// The default [`SledConfig::commit_window`]: 2 ms. Each sled flush costs
/// some 180–360 µs of CPU whatever it carries (a buffer write and
/// `sync_file_range` on sled's I/O threads, all seven of which sled wakes
/// for each, then the `fdatasync`), and under load the flushes ran back to
/// back, about 1.5 ms apart. Measured with `bench_agents` against 500 µs,
/// in alternating runs: CPU per agent task 3–31% lower at 64 in flight
/// (8 pairs), 4–23% lower at 500 in flight with the share of ideal
/// unchanged (87–90%), and at 2,000 in flight 10–21% lower with the share
/// 4–9 points higher; `bench_engine`'s no-op jobs no slower. A durable
/// write under load waits up to the window longer; a lone writer is
/// flushed at once (or, right after a shared flush, within one window),
/// as before.
pub const DEFAULT_COMMIT_WINDOW: Duration = Duration::from_millis(2);

/// The default [`SledConfig::cache_capacity`]: 32 MiB. Measured with
/// `bench_agents --load-child troupe 500 40` (20,000 tasks at 500 in
/// flight): peak RSS 141–161 MiB against 167–178 with sled's 1 GiB
/// default (262 against 374 at 80,000 tasks), and no change in
/// throughput or CPU per task beyond the noise; a running task
/// reads back only what it wrote moments before, so the working set is
/// small and a larger cache only holds finished tasks' records longer.
pub const DEFAULT_CACHE_CAPACITY: u64 = 32 * 1024 * 1024;

/// The smallest [`SledConfig::cache_capacity`] a store opens with (sled
/// itself panics below 256 bytes; a cache smaller than a few nodes would
/// read every node from disk).
pub const MIN_CACHE_CAPACITY: u64 = 1024 * 1024;

/// The default [`SledConfig::flush_timeout`].
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

impl SledConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SledConfig {
            dir: dir.into(),
            durability: Durability::PowerLoss,
            cache_capacity: Some(DEFAULT_CACHE_CAPACITY),
            quarantine_corrupt: false,
            commit_window: DEFAULT_COMMIT_WINDOW,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        }
    }

    /// Sets the durability level.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets sled's page cache size in bytes ([`SledConfig::cache_capacity`]).
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = Some(bytes);
        self
    }
}

/// The embedded job store. Cheap to clone (shared handle); the directory is
/// locked while any clone lives. Dropping the last clone flushes, stops the
/// committer and returns once sled has released the directory (at most ~2 s),
/// so the same process can open it again straight away; a store whose
/// committer is stuck in a flush (see [`SledConfig::flush_timeout`]) is let
/// go of at once, and its directory stays locked until the process ends.
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
    // Last field, so it drops after every sled handle above, holding the
    // last one.
    _release: Release,
}

/// The last handle on sled, dropped after every other field of [`Inner`]:
/// lets go of the database, then waits until sled has really let go of its
/// data directory. sled's background write threads keep the log file (and
/// its lock) open for a moment after the last handle is dropped; without
/// this, reopening the directory right away in the same process (a restart
/// in tests, a supervisor restarting the engine) can fail as "in use".
///
/// Dropping the last handle makes sled flush what it holds. On a failed
/// store that flush may never end (sled 0.34.7 leaves its log waiting for
/// ever after a failed blob write), so there the handle is let go of on a
/// thread of its own, waited for at most [`RELEASE_WAIT`]; and when the
/// committer was left behind in a stuck flush, it still holds the database
/// and nothing is waited for.
struct Release {
    db: Option<sled::Db>,
    db_file: PathBuf,
    fate: CommitFate,
}

/// Longest a drop waits for sled to let go (of a failed store's handle, and
/// of the directory's lock).
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for Release {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else {
            return;
        };
        if self.fate.left_behind() {
            // Not the last handle: no flush runs here, and the lock stays.
            return;
        }
        if !self.fate.failed() {
            drop(db);
        } else if !drop_within(db, RELEASE_WAIT) {
            tracing::warn!(dir = %self.db_file.display(), "sled's last flush of a failed store does not end; leaving it behind");
            return;
        }
        wait_for_lock(&self.db_file);
    }
}

/// Drops `db` on a thread of its own; whether that ended within `limit`.
fn drop_within(db: sled::Db, limit: std::time::Duration) -> bool {
    let (done, dropped) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("troupe-store-release".into())
        .spawn(move || {
            drop(db);
            let _ = done.send(());
        });
    spawned.is_ok() && dropped.recv_timeout(limit).is_ok()
}

/// Waits (at most [`RELEASE_WAIT`]) until the lock on sled's log file is free.
fn wait_for_lock(db_file: &Path) {
    use fs2::FileExt;
    let Ok(file) = File::open(db_file) else {
        return;
    };
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_micros(100);
    while file.try_lock_exclusive().is_err() {
        if start.elapsed() >= RELEASE_WAIT {
            tracing::warn!(file = %db_file.display(), "sled still holds its lock after the store was dropped");
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
    let _ = FileExt::unlock(&file);
}

/// What a transition closure decided about one job.
// Built and consumed once per call; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Decision<R> {
    /// Write this new version; once it is written, answer what the function
    /// makes of it (the version itself moves into the answer, uncopied).
    Write(Job, fn(Job) -> R),
    /// Leave it, answer `R`.
    Keep(R),
}

impl SledStore {
    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Group-commit figures so far (flushes and writers acknowledged).
    pub fn commit_stats(&self) -> CommitStats {
        self.inner.commit.stats()
    }

    /// Durable writes so far per operation (`insert`, `claim`, `save step`,
    /// `append message` …): each waited for a group commit. For
    /// benchmarks that count what a task writes.
    pub fn writes_by_operation(&self) -> Vec<(&'static str, u64)> {
        self.inner.commit.writes_by_operation()
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

    /// Marks the store failed, as a failed flush does: every write waiting
    /// for durability and every later one gets [`StoreError::Failed`] with
    /// `reason` (the first reason given stays), reads go on, and
    /// [`JobStore::health`] reports it. Nothing clears it but opening the
    /// store again. For a service that learns by other means that the disk
    /// cannot be trusted, and for the conformance suite's failure cases.
    pub fn mark_failed(&self, reason: impl Into<String>) {
        self.inner.commit.fail(reason.into());
    }

    /// Refuses a write at once when the store has failed.
    fn writable(&self) -> Result<(), StoreError> {
        match self.inner.commit.failure() {
            None => Ok(()),
            Some(reason) => Err(StoreError::Failed {
                reason: reason.to_owned(),
            }),
        }
    }

    /// Waits until this thread's writes so far are durable (group commit).
    async fn durable(&self, operation: &'static str) -> Result<(), StoreError> {
        self.inner.commit.wait(operation).await.map_err(|reason| {
            tracing::debug!(operation, %reason, "a write could not be made durable");
            StoreError::Failed { reason }
        })
    }

    /// The error of a sled write. An I/O error (or corruption, or a bug sled
    /// reports) means sled cannot make writes durable any more (it keeps the
    /// error, or its log is left waiting for ever), so it fails the store
    /// like a failed flush; any other error is the operation's own.
    fn write_error(&self, operation: &'static str, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Io(_) | sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => {
                self.inner.commit.fail(format!("{operation}: {e}"));
                self.writable()
                    .err()
                    .unwrap_or_else(|| StoreError::backend(operation, e))
            }
            other => StoreError::backend(operation, other),
        }
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
    /// changed in between, `decide` then getting back the version it made
    /// the time before (so it can reuse what it moved into it). Does not
    /// wait for durability.
    ///
    /// `decide` owns the version read: a rule that changes it in place
    /// ([`rules::complete_in`]) makes the new version without copying the
    /// job's args and result; the index keeps only [`Index::shell`] of it.
    fn transition<R>(
        &self,
        operation: &'static str,
        id: JobId,
        mut decide: impl FnMut(Job, Option<Job>) -> Decision<R>,
    ) -> Result<R, StoreError> {
        let mut lost = None;
        loop {
            let (old_bytes, read) = self
                .read(operation, id)?
                .ok_or(StoreError::JobNotFound { id })?;
            let old = Index::shell(&read);
            let (new, answer) = match decide(read, lost.take()) {
                Decision::Keep(answer) => return Ok(answer),
                Decision::Write(new, answer) => (new, answer),
            };
            let new_bytes = keys::encode_job(&new)?;
            let mut index = self.index();
            let swapped = self
                .inner
                .jobs
                .compare_and_swap(keys::job_key(id), Some(&old_bytes), Some(new_bytes))
                .map_err(|e| self.write_error(operation, e))?;
            if swapped.is_ok() {
                index.replace(&old, &new);
                return Ok(answer(new));
            }
            lost = Some(new);
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
            .map_err(|e| self.write_error("insert", e))?;
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

/// The most entries' room a drained batch list leaves to the next.
const MAX_KEPT_ROOM: usize = 1024;

/// Takes the batch in `list`, leaving an empty list with its room (at most
/// [`MAX_KEPT_ROOM`] entries): the writers that fill the next batch push
/// under a lock they share, and a list grown from empty at every flush was
/// copied over and over there; bounded, so a burst's room is not made again
/// at every later flush. (The group committer's waiting writers, the usage
/// buffer's records.)
fn take_keeping_room<T>(list: &mut Vec<T>) -> Vec<T> {
    let room = list.capacity().min(MAX_KEPT_ROOM);
    std::mem::replace(list, Vec::with_capacity(room))
}

/// [`rules::validate_new`], as a store error naming the job.
fn validate_new(job: &Job) -> Result<(), StoreError> {
    rules::validate_new(job).map_err(|source| StoreError::InvalidJob { id: job.id, source })
}

/// A rule's answer to a transition that names an attempt, as a decision.
fn decided(next: Result<Job, rules::Stale>) -> Decision<Outcome> {
    match next {
        Ok(new) => Decision::Write(new, Outcome::Applied),
        Err(stale) => Decision::Keep(stale.into()),
    }
}

#[async_trait]
impl JobStore for SledStore {
    async fn insert(&self, job: Job) -> Result<InsertOutcome, StoreError> {
        self.writable()?;
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
        self.writable()?;
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
        self.writable()?;
        let now = request.now;
        let candidates =
            self.index()
                .claim_candidates(now, request.limit, request.per_worker.as_ref());
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut prepared = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let Some((bytes, mut new)) = self.read("claim", candidate.id)? else {
                continue;
            };
            let old = Index::shell(&new);
            if !rules::claim_in(&mut new, now) {
                continue;
            }
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
                    .map_err(|e| self.write_error("claim", e))?;
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
        self.writable()?;
        let now = Utc::now();
        // The result moves into the new version; a lost race hands it back.
        let mut result = Some(result);
        let outcome = self.transition("complete", id, |mut job, lost| {
            let result = result
                .take()
                .or_else(|| lost.and_then(|j| j.result))
                .unwrap_or_default();
            match rules::complete_in(&mut job, attempt, result, now) {
                Ok(()) => Decision::Write(job, Outcome::Applied),
                Err(stale) => Decision::Keep(stale.into()),
            }
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
        self.writable()?;
        let now = Utc::now();
        let outcome = self.transition("fail", id, |job, _| {
            decided(rules::fail(&job, attempt, error.clone(), action, now))
        })?;
        self.durable("fail").await?;
        Ok(outcome)
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome, StoreError> {
        self.writable()?;
        let now = Utc::now();
        let outcome = self.transition("cancel", id, |job, _| match rules::cancel(&job, now) {
            CancelMove::Cancel(new) => Decision::Write(new, CancelOutcome::Cancelled),
            CancelMove::Request(new) => Decision::Write(new, CancelOutcome::Requested),
            CancelMove::AlreadyRequested => Decision::Keep(CancelOutcome::Requested(job)),
            CancelMove::AlreadyEnded => Decision::Keep(CancelOutcome::AlreadyEnded(job)),
        })?;
        self.durable("cancel").await?;
        Ok(outcome)
    }

    async fn ack_cancel(&self, id: JobId, attempt: u32) -> Result<Outcome, StoreError> {
        self.writable()?;
        let now = Utc::now();
        let outcome = self.transition("ack_cancel", id, |job, _| {
            decided(rules::ack_cancel(&job, attempt, now))
        })?;
        self.durable("ack_cancel").await?;
        Ok(outcome)
    }

    async fn discard(&self, id: JobId, error: String) -> Result<Outcome, StoreError> {
        self.writable()?;
        let now = Utc::now();
        let outcome = self.transition("discard", id, |job, _| {
            decided(rules::discard(&job, error.clone(), now))
        })?;
        self.durable("discard").await?;
        Ok(outcome)
    }

    async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        self.writable()?;
        let running = self.index().running();
        let mut recovered = Recovered::default();
        for id in running {
            let result = self.transition("recover", id, |job, _| match rules::recover(&job, now) {
                Some(new) => Decision::Write(new, |new| Some(new.status)),
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
        self.writable()?;
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
                    .map_err(|e| self.write_error("prune", e))?;
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

    async fn health(&self) -> Result<(), StoreError> {
        self.writable()?;
        self.read("health", JobId::nil())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{take_keeping_room, MAX_KEPT_ROOM};

    #[test]
    fn a_drained_batch_leaves_its_room_up_to_the_bound() {
        let mut list: Vec<u32> = (0..100).collect();
        let room = list.capacity();
        let batch = take_keeping_room(&mut list);
        assert_eq!(batch.len(), 100);
        assert!(list.is_empty());
        assert!(list.capacity() >= room.min(MAX_KEPT_ROOM));

        let mut burst: Vec<u32> = Vec::with_capacity(MAX_KEPT_ROOM * 10);
        burst.push(1);
        let batch = take_keeping_room(&mut burst);
        assert_eq!(batch, vec![1]);
        assert!(
            burst.capacity() < MAX_KEPT_ROOM * 10,
            "a burst's room is not kept"
        );
        assert!(burst.capacity() >= MAX_KEPT_ROOM);
    }
}
