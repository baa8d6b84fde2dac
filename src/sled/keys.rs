//! Key and value encoding of the sled trees, in one place so the on-disk
//! format is easy to review.
//!
//! - `jobs`: key = the 16 bytes of the job's UUID v7 (big-endian, so key
//!   order is creation order); value = the job's camelCase JSON, without
//!   the fields at their defaults (`null`, `[]`, `{}`, `false`, 0): every
//!   job is written three times or more (enqueue, claim, end), and sled
//!   rewrites a page of up to 16 records every 10 writes to it, so each
//!   byte saved is saved several times over. Reading fills them back in,
//!   and reads records written whole by earlier versions the same.
//! - `pause`: key `all` or `worker:<name>`; present means paused.
//! - `schedules`: key = the schedule id (UTF-8); value = its JSON.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::job::schedule::Schedule;
use crate::job::{Approval, AttemptError, Job, JobCtx, JobId, JobStatus};
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
    serde_json::to_vec(&StoredJob::of(job)).map_err(|e| StoreError::backend("encode job", e))
}

/// A [`Job`] as the `jobs` tree holds it: [`Job`]'s own JSON less the
/// fields at their defaults, which [`Job`]'s `Deserialize` fills back in.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredJob<'a> {
    id: &'a JobId,
    worker_name: &'a str,
    status: JobStatus,
    attempt: u32,
    max_attempts: u32,
    #[serde(skip_serializing_if = "is_zero")]
    outages: u32,
    #[serde(skip_serializing_if = "is_zero")]
    parked: u32,
    priority: i32,
    run_at: &'a DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unique_key: &'a Option<String>,
    #[serde(rename = "timeout", skip_serializing_if = "Option::is_none")]
    timeout_ms: &'a Option<u64>,
    #[serde(skip_serializing_if = "Value::is_null")]
    args: &'a Value,
    #[serde(skip_serializing_if = "is_empty_ctx")]
    ctx: &'a JobCtx,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: &'a Option<String>,
    #[serde(skip_serializing_if = "<[AttemptError]>::is_empty")]
    errors: &'a [AttemptError],
    #[serde(skip_serializing_if = "is_false")]
    cancel_requested: bool,
    #[serde(skip_serializing_if = "<[Approval]>::is_empty")]
    approvals: &'a [Approval],
    created_at: &'a DateTime<Utc>,
    updated_at: &'a DateTime<Utc>,
}

impl<'a> StoredJob<'a> {
    fn of(job: &'a Job) -> Self {
        // Destructured, so a field added to `Job` must be added here too.
        let Job {
            id,
            worker_name,
            status,
            attempt,
            max_attempts,
            outages,
            parked,
            priority,
            run_at,
            unique_key,
            timeout_ms,
            args,
            ctx,
            result,
            error,
            errors,
            cancel_requested,
            approvals,
            created_at,
            updated_at,
        } = job;
        StoredJob {
            id,
            worker_name,
            status: *status,
            attempt: *attempt,
            max_attempts: *max_attempts,
            outages: *outages,
            parked: *parked,
            priority: *priority,
            run_at,
            unique_key,
            timeout_ms,
            args,
            ctx,
            result,
            error,
            errors,
            cancel_requested: *cancel_requested,
            approvals,
            created_at,
            updated_at,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_empty_ctx(ctx: &&JobCtx) -> bool {
    ctx.user_id.is_none()
        && ctx.conversation_id.is_none()
        && ctx.source.is_none()
        && ctx.extra.is_empty()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::job::EnqueueOptions;

    /// A record without its default fields reads back as the same job, a
    /// full one (as earlier versions wrote it) too; the defaults are left
    /// out and everything else is kept.
    #[test]
    fn job_records_leave_out_defaults_and_read_back_whole() {
        let now = Utc::now();
        let fresh = Job::new(
            "w",
            Value::Null,
            JobCtx::default(),
            &EnqueueOptions::default(),
            now,
        )
        .unwrap();
        let bytes = encode_job(&fresh).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        for gone in [
            "uniqueKey",
            "timeout",
            "\"args\"",
            "ctx",
            "result",
            "\"error\"",
            "errors",
            "cancelRequested",
            "outages",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert_eq!(decode_job("x", &bytes).unwrap(), fresh);
        let whole = serde_json::to_vec(&fresh).unwrap();
        assert!(bytes.len() < whole.len());
        assert_eq!(decode_job("x", &whole).unwrap(), fresh);

        let mut busy = fresh.clone();
        busy.unique_key = Some("k".into());
        busy.timeout_ms = Some(5);
        busy.args = json!({"prompt": "p"});
        busy.ctx.user_id = Some("u".into());
        busy.ctx.extra.insert("project".into(), json!("x"));
        busy.result = Some(json!({"ok": true}));
        busy.error = Some("e".into());
        busy.errors.push(AttemptError {
            attempt: 1,
            at: now,
            message: "m".into(),
        });
        busy.cancel_requested = true;
        busy.outages = 2;
        let bytes = encode_job(&busy).unwrap();
        assert_eq!(decode_job("x", &bytes).unwrap(), busy);
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            serde_json::to_value(&busy).unwrap(),
            "nothing but defaults is left out"
        );
    }
}
