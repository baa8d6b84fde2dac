//! The `Worker` trait: what the engine runs for each job.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{JobCtx, JobId};

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
}

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// Worth another attempt (with backoff), up to the job's `maxAttempts`.
    #[error("{0}")]
    Retryable(String),
    /// No attempt can succeed (bad args, a refused request): fail the job now.
    #[error("{0}")]
    Permanent(String),
}

impl WorkerError {
    /// A failure worth retrying.
    pub fn retryable(msg: impl fmt::Display) -> Self {
        WorkerError::Retryable(msg.to_string())
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(msg: impl fmt::Display) -> Self {
        WorkerError::Permanent(msg.to_string())
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, WorkerError::Retryable(_))
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

/// A worker with the settings it was registered with.
#[derive(Clone)]
pub struct Registration {
    pub(crate) worker: Arc<dyn Worker>,
    pub(crate) concurrency: usize,
    pub(crate) own_thread: bool,
    pub(crate) recycle_after: Option<u64>,
}

impl Registration {
    /// Registers `worker` to run at most `concurrency` jobs at once.
    pub fn new(worker: Arc<dyn Worker>, concurrency: usize) -> Self {
        Self {
            worker,
            concurrency,
            own_thread: false,
            recycle_after: None,
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
    /// none is running), so that whatever it accumulates is let go.
    pub fn recycle_after(mut self, jobs: u64) -> Self {
        self.recycle_after = Some(jobs.max(1));
        self
    }

    pub(crate) fn info(&self) -> WorkerInfo {
        WorkerInfo {
            name: self.worker.name().to_string(),
            description: self.worker.description().to_string(),
            category: self.worker.category(),
            concurrency: self.concurrency,
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("worker", &self.worker.name())
            .field("concurrency", &self.concurrency)
            .finish()
    }
}
