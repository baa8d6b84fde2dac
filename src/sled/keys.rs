//! Key and value encoding of the sled trees, in one place so the on-disk
//! format is easy to review.
//!
//! - `jobs`: key = the 16 bytes of the job's UUID v7 (big-endian, so key
//!   order is creation order); value = the job's camelCase JSON.
//! - `pause`: key `all` or `worker:<name>`; present means paused.
//! - `schedules`: key = the schedule id (UTF-8); value = its JSON.

use uuid::Uuid;

use crate::job::schedule::Schedule;
use crate::job::{Job, JobId};
use crate::store::StoreError;

/// Tree of job records.
pub(crate) const JOBS: &str = "jobs";
/// Tree of pause flags.
pub(crate) const PAUSE: &str = "pause";
/// Tree of recurring schedules.
pub(crate) const SCHEDULES: &str = "schedules";
/// Tree where corrupt job records are moved when asked to at open.
pub(crate) const QUARANTINE: &str = "quarantine";

/// Pause key for "everything".
pub(crate) const PAUSE_ALL: &[u8] = b"all";
const PAUSE_WORKER_PREFIX: &[u8] = b"worker:";

pub(crate) fn job_key(id: JobId) -> [u8; 16] {
    *id.as_bytes()
}

/// The id in a `jobs` key, or the key in hex when it is not 16 bytes.
pub(crate) fn decode_job_key(key: &[u8]) -> Result<JobId, String> {
    Uuid::from_slice(key).map_err(|_| hex(key))
}

pub(crate) fn encode_job(job: &Job) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(job).map_err(|e| StoreError::backend("encode job", e))
}

pub(crate) fn decode_job(id: &str, bytes: &[u8]) -> Result<Job, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::CorruptJob {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn pause_worker_key(worker: &str) -> Vec<u8> {
    let mut key = PAUSE_WORKER_PREFIX.to_vec();
    key.extend_from_slice(worker.as_bytes());
    key
}

/// The worker named by a pause key (`None` for `all`).
pub(crate) fn decode_pause_key(key: &[u8]) -> Result<Option<String>, StoreError> {
    if key == PAUSE_ALL {
        return Ok(None);
    }
    key.strip_prefix(PAUSE_WORKER_PREFIX)
        .and_then(|w| std::str::from_utf8(w).ok())
        .map(|w| Some(w.to_owned()))
        .ok_or_else(|| StoreError::CorruptRecord {
            what: "pause",
            key: hex(key),
            reason: "unknown pause key".into(),
        })
}

pub(crate) fn encode_schedule(schedule: &Schedule) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(schedule).map_err(|e| StoreError::backend("encode schedule", e))
}

pub(crate) fn decode_schedule(key: &[u8], bytes: &[u8]) -> Result<Schedule, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::CorruptRecord {
        what: "schedule",
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
