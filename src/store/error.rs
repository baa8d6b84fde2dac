//! The one error type of the storage layer.

use std::path::PathBuf;

use crate::job::schedule::ScheduleError;
use crate::job::{JobError, JobId};

/// A boxed error from a storage backend, so the [`crate::store::Store`]
/// trait does not name sled (or PostgreSQL) types.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a store operation. Each variant names
/// what it was about (directory, job id, schedule id, field, operation) so a
/// CLI can print it as one line.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another store in this process) holds the data
    /// directory.
    #[error("data directory {} is already in use by another process; stop it or choose another data directory", dir.display())]
    Locked {
        /// The directory that is held.
        dir: PathBuf,
    },
    /// The data directory could not be opened.
    #[error("cannot open the store in {}: {source}", dir.display())]
    Open {
        /// The directory.
        dir: PathBuf,
        /// What the backend said.
        #[source]
        source: BackendError,
    },
    /// The backend failed during an operation.
    #[error("store operation {operation} failed: {source}")]
    Backend {
        /// Which operation (`insert`, `claim`, …).
        operation: &'static str,
        /// What the backend said.
        #[source]
        source: BackendError,
    },
    /// The database could not be reached or refused the connection: a bad
    /// URL, bad credentials, a server that is down. `target` is the URL
    /// with its password replaced.
    #[error("cannot connect to the database at {target}: {reason}")]
    Connect {
        /// Where (password redacted).
        target: String,
        /// What the client or the server said.
        reason: String,
    },
    /// The database's schema is not one this build can use (older without
    /// migrations allowed, newer than this build, or not troupe's).
    #[error("database schema {schema:?}: {reason}")]
    SchemaVersion {
        /// The schema.
        schema: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A write for a job whose lease this node no longer holds: another
    /// node may be running it now, so the write was dropped.
    #[error("job {id}: this node no longer holds its lease (another node may run it now); the write was dropped")]
    Fenced {
        /// The job.
        id: JobId,
    },
    /// The store has failed: a write could not be made durable (a flush
    /// failed, or did not end in time) or the backend could no longer write.
    /// The write that met the failure may or may not survive a crash; every
    /// later write is refused with this error until the store is opened
    /// again (a restart), while reads go on. The control API answers it
    /// with 503. See the durability contract in [`crate::store`].
    #[error("the store has failed and refuses writes until it is restarted: {reason}")]
    Failed {
        /// What failed (the flush error, the timeout, the backend's error).
        reason: String,
    },
    /// A stored job record cannot be decoded.
    #[error("job {id}: stored record is corrupt: {reason}")]
    CorruptJob {
        /// The key of the record (a job id, or hex when the key itself is bad).
        id: String,
        /// Why decoding failed.
        reason: String,
    },
    /// A stored schedule or pause record cannot be decoded.
    #[error("stored {what} record {key:?} is corrupt: {reason}")]
    CorruptRecord {
        /// `schedule` or `pause`.
        what: &'static str,
        /// Its key.
        key: String,
        /// Why decoding failed.
        reason: String,
    },
    /// No job has this id (it never existed or was pruned).
    #[error("job {id} not found")]
    JobNotFound {
        /// The id asked for.
        id: JobId,
    },
    /// A job handed to the store is not acceptable.
    #[error("job {id}: {source}")]
    InvalidJob {
        /// The job's id.
        id: JobId,
        /// What is wrong with it.
        #[source]
        source: JobError,
    },
    /// A query or option value is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or parameter name.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No record of this kind has this id (a memory, a message …); jobs and
    /// schedules keep their own variants for compatibility.
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked for (`memory`, `message` …).
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The target of an import already holds records (see
    /// [`crate::store::ImportOptions::force`]).
    #[error("{target} is not empty: it already holds {holds}")]
    NotEmpty {
        /// The target (a schema and its URL, the password redacted).
        target: String,
        /// What it holds, counted per kind (`14 jobs, 7 memories`).
        holds: String,
    },
    /// An import met a record whose id (or key) the target already holds;
    /// nothing is overwritten (see [`crate::store::ImportOptions::force`]).
    #[error("{what} {id} is already stored in the target")]
    AlreadyStored {
        /// What kind of record (`job`, `memory`, `idempotency key` …).
        what: &'static str,
        /// Its id or key.
        id: String,
    },
    /// No schedule has this id.
    #[error("schedule {id:?} not found")]
    ScheduleNotFound {
        /// The id asked for.
        id: String,
    },
    /// A schedule cannot be used (bad cron expression, zero interval …).
    #[error("schedule {id:?}: {source}")]
    Schedule {
        /// The schedule's id.
        id: String,
        /// What is wrong.
        #[source]
        source: ScheduleError,
    },
}

impl StoreError {
    /// Whether the same call may succeed if made again: the backend's own
    /// error or a lost connection, not a refusal, a missing record or a
    /// failed store.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Backend { .. } | StoreError::Connect { .. }
        )
    }

    /// Wraps a backend error with the operation it interrupted.
    pub fn backend(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            operation,
            source: Box::new(source),
        }
    }
}
