//! The `Worker` trait: what the engine runs for each job.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alloc::Account;
use crate::job::{Approval, ApprovalRequest, JobCtx, JobId};

/// What a worker is for, shown by `list_workers` and used to group them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerCategory {
    /// Works on memories (e.g. compaction).
    Memory,
    /// Backs a tool.
    Tool,
    /// Reasoning work (reflection, summaries).
    Think,
    /// Runs an agent's tasks.
    Agent,
    /// Smoke tests, probes and benchmarks (`echo`, `sleep`).
    Diagnostic,
    /// Anything else, by name.
    #[serde(untagged)]
    Other(String),
}

impl fmt::Display for WorkerCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            WorkerCategory::Memory => "memory",
            WorkerCategory::Tool => "tool",
            WorkerCategory::Think => "think",
            WorkerCategory::Agent => "agent",
            WorkerCategory::Diagnostic => "diagnostic",
            WorkerCategory::Other(s) => s,
        };
        f.pad(s)
    }
}

/// What a worker gets besides its args: which job and attempt this is, and
/// the job's context (user, conversation, source, extra fields).
#[derive(Debug, Clone, PartialEq)]
pub struct JobContext {
    /// The job's id; with `attempt`, a stable idempotency key.
    pub job_id: JobId,
    /// Which attempt this is (1-based).
    pub attempt: u32,
    /// The job's `maxAttempts`.
    pub max_attempts: u32,
    /// The job's `ctx`.
    pub ctx: JobCtx,
    /// The job's approvals so far, pending or decided: what a task that
    /// parked (see [`WorkerError::Parked`]) finds decided when it resumes.
    pub approvals: Vec<Approval>,
}

/// A source error, boxed so any error type can ride along.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an attempt failed, and what the engine should do about it: retry
/// (no earlier than `retry_after`, if the failure says when another attempt
/// makes sense) or fail the job now.
///
/// Shaped after apalis's `RetryAfterError { source, duration }` and
/// `AbortError { source }`. `Display` is the message alone, one line, and is
/// what the job's `error` field keeps; the message should therefore say what
/// went wrong in full, while `source` keeps the typed cause for callers that
/// walk the chain or downcast.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Worth another attempt, up to the job's `maxAttempts`: after the
    /// engine's backoff, and no earlier than `retry_after`.
    #[error("{message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// The earliest time another attempt makes sense (a provider's
        /// `Retry-After`, a circuit breaker's cooldown), if known.
        retry_after: Option<Duration>,
        /// The cause.
        #[source]
        source: Option<BoxError>,
    },
    /// Something the work depends on is out for a while (a provider's open
    /// circuit, overload or rate limit, a spent daily budget): the job waits
    /// it out, queued again no earlier than `retry_after`, and the attempt
    /// does not count against `maxAttempts` — up to the engine's outage
    /// allowance, past which it counts like [`Retryable`](Self::Retryable).
    #[error("{message}")]
    Outage {
        /// What is out, and for how long if known.
        message: String,
        /// When it should be back, if known.
        retry_after: Option<Duration>,
        /// The cause.
        #[source]
        source: Option<BoxError>,
    },
    /// No attempt can succeed (bad args, a refused key): fail the job now.
    #[error("{message}")]
    Permanent {
        /// What went wrong.
        message: String,
        /// The cause.
        #[source]
        source: Option<BoxError>,
    },
    /// Not a failure: the attempt stops here and the job waits (`waiting`,
    /// holding no worker slot) until a person decides on `approvals` or
    /// their deadlines pass; then it is queued again and the worker runs
    /// it again, finding the decisions in [`JobContext::approvals`]. The
    /// parked attempt does not count against `maxAttempts`.
    #[error("{message}")]
    Parked {
        /// Why it waits (for logs).
        message: String,
        /// What needs approving.
        approvals: Vec<ApprovalRequest>,
    },
}

impl WorkerError {
    /// A failure worth retrying.
    pub fn retryable(msg: impl fmt::Display) -> Self {
        WorkerError::Retryable {
            message: msg.to_string(),
            retry_after: None,
            source: None,
        }
    }

    /// An outage to wait out without spending an attempt (see
    /// [`Outage`](Self::Outage)).
    pub fn outage(msg: impl fmt::Display) -> Self {
        WorkerError::Outage {
            message: msg.to_string(),
            retry_after: None,
            source: None,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(msg: impl fmt::Display) -> Self {
        WorkerError::Permanent {
            message: msg.to_string(),
            source: None,
        }
    }

    /// Says another attempt makes sense no earlier than `wait` from now
    /// (builder style). A permanent error has no next attempt, so it is
    /// returned unchanged.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        if let WorkerError::Retryable { retry_after, .. }
        | WorkerError::Outage { retry_after, .. } = &mut self
        {
            *retry_after = Some(wait);
        }
        self
    }

    /// Keeps `cause` as the error's [`source`](std::error::Error::source)
    /// (builder style). The message is not changed: say in it what matters.
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        match &mut self {
            WorkerError::Retryable { source, .. }
            | WorkerError::Outage { source, .. }
            | WorkerError::Permanent { source, .. } => {
                *source = Some(cause.into());
            }
            WorkerError::Parked { .. } => {}
        }
        self
    }

    /// The attempt parks awaiting a person's approval of `approvals`
    /// (see [`Parked`](Self::Parked)).
    pub fn parked(msg: impl fmt::Display, approvals: Vec<ApprovalRequest>) -> Self {
        WorkerError::Parked {
            message: msg.to_string(),
            approvals,
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            WorkerError::Permanent { .. } | WorkerError::Parked { .. }
        )
    }

    /// Whether it is an outage to wait out (see [`Outage`](Self::Outage)).
    pub fn is_outage(&self) -> bool {
        matches!(self, WorkerError::Outage { .. })
    }

    /// The earliest time another attempt makes sense, if the failure said.
    pub fn earliest_retry(&self) -> Option<Duration> {
        match self {
            WorkerError::Retryable { retry_after, .. }
            | WorkerError::Outage { retry_after, .. } => *retry_after,
            WorkerError::Permanent { .. } | WorkerError::Parked { .. } => None,
        }
    }

    /// What went wrong (also the error's `Display`).
    pub fn message(&self) -> &str {
        match self {
            WorkerError::Retryable { message, .. }
            | WorkerError::Outage { message, .. }
            | WorkerError::Permanent { message, .. }
            | WorkerError::Parked { message, .. } => message,
        }
    }
}

/// A kind of background work the engine runs, one job at a time per call
/// (several calls may run at once, up to the worker's concurrency).
///
/// `run` may be cancelled at any await point (timeout, cancel, shutdown):
/// the engine drops its future. A job may also run more than once (after a
/// crash), so side effects should be idempotent, keyed by
/// [`JobContext::job_id`].
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// The name jobs refer to (`workerName`).
    fn name(&self) -> &str;
    /// One line on what it does.
    fn description(&self) -> &str;
    /// Its category.
    fn category(&self) -> WorkerCategory;
    /// Does the work of one job; the value is stored as the job's `result`.
    async fn run(&self, args: Value, ctx: JobContext) -> Result<Value, WorkerError>;
}

/// A registered worker as `list_workers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its category.
    pub category: WorkerCategory,
    /// How many of its jobs may run at once.
    pub concurrency: usize,
}

/// Builds a fresh instance of a worker, at each start of its actor.
pub(crate) type WorkerFactory = Arc<dyn Fn() -> Arc<dyn Worker> + Send + Sync>;

/// Where a worker's actor gets its worker from at each (re)start.
#[derive(Clone)]
enum Source {
    /// The same instance every time ([`Registration::new`]).
    Shared(Arc<dyn Worker>),
    /// A fresh one every time ([`Registration::with_factory`]); `first` is
    /// the instance built at registration to learn the worker's name, handed
    /// to the first start so that it is not built for nothing.
    Factory {
        factory: WorkerFactory,
        first: Arc<Mutex<Option<Arc<dyn Worker>>>>,
    },
}

/// A worker with the settings it was registered with.
#[derive(Clone)]
pub struct Registration {
    pub(crate) name: String,
    description: String,
    category: WorkerCategory,
    source: Source,
    pub(crate) concurrency: usize,
    pub(crate) own_thread: bool,
    pub(crate) recycle_after: Option<u64>,
    pub(crate) recycle_above_memory: Option<u64>,
    /// What the worker's jobs (and its construction) allocate is charged
    /// here; the same account across restarts of its actor.
    pub(crate) account: Account,
    /// Set by the worker's actor when recycling is due while jobs still run:
    /// the scheduler then gives it no new jobs, so a busy worker also gets
    /// to the idle moment its restart waits for. Cleared by the next start.
    pub(crate) recycling: Arc<std::sync::atomic::AtomicBool>,
}

impl Registration {
    /// Registers `worker` to run at most `concurrency` jobs at once. Every
    /// start of its actor runs this same instance, so a restart (recycling
    /// included) lets go of what the actor and its jobs hold but not of what
    /// the worker itself holds; see [`with_factory`](Self::with_factory).
    pub fn new(worker: Arc<dyn Worker>, concurrency: usize) -> Self {
        Self::build(
            Source::Shared(worker.clone()),
            &*worker,
            concurrency,
            Account::new(),
        )
    }

    /// Registers a worker built by `factory`, at most `concurrency` jobs at
    /// once. The factory is called once now (for the worker's name,
    /// description and category; that instance serves the first start) and
    /// again at every restart of the worker's actor, so a restart (after a
    /// panic, or recycling) drops the old instance and everything it
    /// accumulated. Every instance must have the same name.
    pub fn with_factory<F>(factory: F, concurrency: usize) -> Self
    where
        F: Fn() -> Arc<dyn Worker> + Send + Sync + 'static,
    {
        let account = Account::new();
        let first = {
            let _in = account.enter();
            factory()
        };
        Self::build(
            Source::Factory {
                factory: Arc::new(factory),
                first: Arc::new(Mutex::new(Some(first.clone()))),
            },
            &*first,
            concurrency,
            account,
        )
    }

    fn build(source: Source, worker: &dyn Worker, concurrency: usize, account: Account) -> Self {
        Self {
            name: worker.name().to_string(),
            description: worker.description().to_string(),
            category: worker.category(),
            source,
            concurrency,
            own_thread: false,
            recycle_after: None,
            recycle_above_memory: None,
            account,
            recycling: Default::default(),
        }
    }

    /// Runs the worker's actor on a thread of its own, for work that blocks
    /// or burns CPU: it then cannot stall the scheduler or other workers,
    /// and the scheduler's watchdog can fail its jobs and restart it when it
    /// stops answering.
    pub fn on_own_thread(mut self) -> Self {
        self.own_thread = true;
        self
    }

    /// Restarts the worker's actor after this many jobs, between jobs (when
    /// none is running), so that whatever it accumulates is let go. Once it
    /// is due the worker takes no new jobs, so a busy worker gets there too.
    /// 0 counts as 1.
    pub fn recycle_after(mut self, jobs: u64) -> Self {
        self.recycle_after = Some(jobs.max(1));
        self
    }

    /// Restarts the worker's actor between jobs (when none is running; once
    /// due it takes no new jobs) once
    /// the heap its actor has gained since it started is more than `bytes`:
    /// what is charged to the worker's [`account`](Self::account) now, less
    /// the least it held since that start (so memory an earlier instance
    /// left behind, in a cache or another actor, cannot make it restart
    /// after every job). Needs the [`crate::alloc::AccountingAllocator`] as
    /// the global allocator: the engine refuses to start the worker without
    /// it. Use [`with_factory`](Self::with_factory) so that a restart also
    /// drops the worker's own state. 0 counts as 1.
    pub fn recycle_above_memory(mut self, bytes: u64) -> Self {
        self.recycle_above_memory = Some(bytes.max(1));
        self
    }

    /// The heap account of the worker: what its jobs and its construction
    /// allocated and is not yet freed ([`Account::live_bytes`]), across
    /// restarts of its actor.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker instance for a start of its actor: the shared one, or a
    /// fresh one from the factory (built under the worker's account).
    pub(crate) fn instance(&self) -> Arc<dyn Worker> {
        match &self.source {
            Source::Shared(worker) => worker.clone(),
            Source::Factory { factory, first } => {
                let first = first
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                first.unwrap_or_else(|| {
                    let _in = self.account.enter();
                    factory()
                })
            }
        }
    }

    pub(crate) fn info(&self) -> WorkerInfo {
        WorkerInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            concurrency: self.concurrency,
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("worker", &self.name)
            .field("concurrency", &self.concurrency)
            .field("factory", &matches!(self.source, Source::Factory { .. }))
            .field("recycle_after", &self.recycle_after)
            .field("recycle_above_memory", &self.recycle_above_memory)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn a_worker_error_keeps_its_wait_and_its_source_and_displays_its_message() {
        assert_send_sync_static::<WorkerError>();
        let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "disk slow");
        let e = WorkerError::retryable("saving a checkpoint failed: disk slow")
            .retry_after(Duration::from_secs(120))
            .with_source(cause);
        assert!(e.is_retryable());
        assert_eq!(e.earliest_retry(), Some(Duration::from_secs(120)));
        assert_eq!(e.to_string(), "saving a checkpoint failed: disk slow");
        assert_eq!(e.message(), e.to_string());
        let source = e.source().expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the io error");
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);

        // A permanent error has no next attempt, whatever it is told.
        let e = WorkerError::permanent("bad args").retry_after(Duration::from_secs(5));
        assert!(!e.is_retryable());
        assert_eq!(e.earliest_retry(), None);
        assert!(e.source().is_none());
        assert_eq!(e.to_string(), "bad args");
    }
}
