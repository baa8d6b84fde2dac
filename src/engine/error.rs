//! Errors of the job engine.

use crate::job::{JobError, JobId};
use crate::store::StoreError;

/// What went wrong with an engine call; each names what the caller must fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No worker with this name is registered.
    #[error("unknown worker `{name}` (registered: {registered})")]
    UnknownWorker {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        registered: String,
    },
    /// A worker with this name is already registered.
    #[error("a worker named `{name}` is already registered")]
    DuplicateWorker {
        /// The repeated name.
        name: String,
    },
    /// A worker setting cannot work.
    #[error("worker `{name}`: invalid {field}: {reason}")]
    InvalidWorker {
        /// The worker.
        name: String,
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No job with this id.
    #[error("no job with id {id}")]
    JobNotFound {
        /// The id asked for.
        id: JobId,
    },
    /// The job as given cannot be enqueued.
    #[error("invalid job: {0}")]
    InvalidJob(#[from] JobError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine's actors could not be started.
    #[error("could not start the engine: {0}")]
    Start(String),
    /// The engine has stopped (or its scheduler is not answering).
    #[error("the engine is not running: {0}")]
    Stopped(String),
}
