//! Requests and answers of the [`super::Store`] trait. Plain data, no
//! backend types, so every store implementation speaks the same language.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::schedule::Schedule;
use crate::job::{Job, JobId, JobStatus};

use super::StoreError;

/// How far an acknowledged write is protected. Each adapter says what the
/// two levels mean for it (sled: `sync_file_range` vs `fdatasync`).
///
/// The default is [`Durability::PowerLoss`]: the group commit shares one
/// `fdatasync` among every write waiting for it, so under load it costs
/// about what the weaker level does (`examples/bench_store.rs`,
/// `examples/bench_agents.rs`). In config: `[store] durability =
/// "power-loss"` or `"process"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// The write survives the process being killed, not necessarily a power
    /// loss or kernel crash (sled: its flush ends with `sync_file_range`, so
    /// the data is in the kernel). The opt-in for those who trade the last
    /// writes before a power cut for a little less I/O.
    Process,
    /// The write also survives a power loss or kernel crash (sled: an
    /// `fdatasync` of its log, and of any blob file written since, per
    /// group commit).
    #[default]
    PowerLoss,
}

/// Whether an insert created a job or found one already holding its unique key.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// The job was stored (and is durable).
    Inserted(Job),
    /// A queued or running job already holds the unique key; nothing was stored.
    Existing(Job),
}

impl InsertOutcome {
    /// The job that now represents the request, new or existing.
    pub fn job(&self) -> &Job {
        match self {
            InsertOutcome::Inserted(j) | InsertOutcome::Existing(j) => j,
        }
    }

    /// Consumes the outcome, returning the job.
    pub fn into_job(self) -> Job {
        match self {
            InsertOutcome::Inserted(j) | InsertOutcome::Existing(j) => j,
        }
    }

    /// True when a new job was stored.
    pub fn is_new(&self) -> bool {
        matches!(self, InsertOutcome::Inserted(_))
    }
}

/// The result of a transition that races with others (complete, fail,
/// cancel acknowledgement, discard): applied, or a no-op that says why.
// Returned once per call and usually matched at once; a Box would only add
// an allocation and noise at every call site.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The change was made and is durable; the job as it is now.
    Applied(Job),
    /// Nothing changed: the job is no longer in the state the caller assumed
    /// (e.g. a second completion, or a completion from an attempt that a
    /// crash recovery already re-queued).
    Stale {
        /// The job's status now.
        status: JobStatus,
        /// The job's attempt now.
        attempt: u32,
    },
}

impl From<crate::job::Stale> for Outcome {
    fn from(stale: crate::job::Stale) -> Self {
        Outcome::Stale {
            status: stale.status,
            attempt: stale.attempt,
        }
    }
}

impl Outcome {
    /// The updated job when the change was applied.
    pub fn applied(&self) -> Option<&Job> {
        match self {
            Outcome::Applied(j) => Some(j),
            Outcome::Stale { .. } => None,
        }
    }
}

/// The result of a cancel request.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// It was queued and is now `cancelled`.
    Cancelled(Job),
    /// It is running: the `cancelRequested` flag is set and durable; the
    /// scheduler must stop the attempt and call `ack_cancel`.
    Requested(Job),
    /// It had already ended; nothing changed.
    AlreadyEnded(Job),
}

/// Which jobs to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Jobs with `runAt <= now` are ready; also the new `updatedAt`.
    pub now: DateTime<Utc>,
    /// At most this many jobs in total.
    pub limit: usize,
    /// `None`: any worker. `Some(map)`: only these workers, each at most its
    /// count (the scheduler passes its free concurrency per worker).
    pub per_worker: Option<BTreeMap<String, usize>>,
}

impl ClaimRequest {
    /// Claim up to `limit` ready jobs of any worker.
    pub fn any(now: DateTime<Utc>, limit: usize) -> Self {
        ClaimRequest {
            now,
            limit,
            per_worker: None,
        }
    }
}

/// The page size of a [`ListQuery`] whose `limit` is 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// A page query over jobs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this worker.
    pub worker: Option<String>,
    /// Page size (0 means [`DEFAULT_PAGE_SIZE`]).
    pub limit: usize,
    /// Continue after this id (the `next_cursor` of the previous page).
    pub cursor: Option<JobId>,
}

impl ListQuery {
    /// The page size this query asks for, the default filled in.
    pub fn page_size(&self) -> usize {
        if self.limit == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            self.limit
        }
    }
}

/// One page of jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `None` when this is the last.
    pub next_cursor: Option<JobId>,
}

/// What a recovery pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Jobs found `running` and queued again (attempt kept).
    pub requeued: Vec<JobId>,
    /// Jobs found `running` with a cancel request, now `cancelled`.
    pub cancelled: Vec<JobId>,
}

/// Retention of ended jobs. Both limits may be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Remove ended jobs that ended longer ago than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many ended jobs (the most recently ended).
    pub max_count: Option<usize>,
}

/// Job counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobCounts {
    /// Per status, over all workers (every status present, possibly 0).
    pub by_status: BTreeMap<JobStatus, u64>,
    /// Per worker, per status (only non-zero entries).
    pub by_worker: BTreeMap<String, BTreeMap<JobStatus, u64>>,
}

impl JobCounts {
    /// The number of jobs with `status`.
    pub fn status(&self, status: JobStatus) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// The number of jobs of `worker` with `status`.
    pub fn worker(&self, worker: &str, status: JobStatus) -> u64 {
        self.by_worker
            .get(worker)
            .and_then(|m| m.get(&status))
            .copied()
            .unwrap_or(0)
    }
}

/// What a pause applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseTarget {
    /// Every worker.
    All,
    /// One worker by name.
    Worker(String),
}

impl PauseTarget {
    /// Refuses a worker name that is empty ([`StoreError::InvalidInput`]
    /// `worker`): it would pause nothing and could not be resumed by name.
    pub fn validate(&self) -> Result<(), StoreError> {
        match self {
            PauseTarget::Worker(w) if w.trim().is_empty() => Err(StoreError::InvalidInput {
                field: "worker",
                reason: "must not be empty".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// The durable pause state: claims skip paused workers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PauseState {
    /// Everything is paused.
    pub all: bool,
    /// These workers are paused.
    pub workers: BTreeSet<String>,
}

impl PauseState {
    /// Whether jobs of `worker` may be claimed now.
    pub fn is_paused(&self, worker: &str) -> bool {
        self.all || self.workers.contains(worker)
    }
}

/// One schedule evaluated by `fire_due_schedules`.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredSchedule {
    /// The schedule after advancing (new `nextFireAt`, `lastFiredAt`).
    pub schedule: Schedule,
    /// Jobs enqueued for its due fire times (fewer than fire times when a
    /// unique key coalesced a firing into a still-active job).
    pub jobs: Vec<Job>,
}

/// What another process sharing the store did that this process's engine
/// must act on. A store that one process holds (sled, in memory) has no
/// one else to hear from; a cluster store ([`super::JobStore::subscribe`])
/// tells every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Jobs may be ready to claim: enqueued elsewhere, requeued by a
    /// rescue, resumed, or a poll (a notification may have been lost).
    Wake,
    /// A cancel was requested for this running job: the node running it
    /// stops the attempt and acknowledges.
    CancelRequested(JobId),
}

/// A node of a cluster, as the store records it: a `troupe run` process
/// sharing the store with others. A store one process holds has none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The node's id: the owner of its leases.
    pub id: uuid::Uuid,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// The troupe version it runs.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_heartbeat: DateTime<Utc>,
    /// Jobs it was running at its last heartbeat.
    pub running: u64,
    /// Whether its last heartbeat is within the lease: a node that is not
    /// alive has its jobs rescued by the others.
    pub alive: bool,
}
