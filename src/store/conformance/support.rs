//! Helpers the cases share: building jobs, enqueueing and claiming them,
//! reading a job that must exist, and checking which field a refusal names.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{ConformanceError, Context};
use crate::job::{EnqueueOptions, Job, JobCtx, JobId};
use crate::store::prelude::*;
use crate::store::{ClaimRequest, StoreError};

/// A new queued job for `worker` (args `{"n": 1}`, created now).
pub(super) fn new_job(worker: &str, options: EnqueueOptions) -> Result<Job, ConformanceError> {
    Job::new(
        worker,
        json!({"n": 1}),
        JobCtx::default(),
        &options,
        Utc::now(),
    )
    .context(format!("build a job for worker {worker:?}"))
}

/// Inserts a new job for `worker`, which must be stored (not coalesced).
pub(super) async fn enqueue<S: Store + ?Sized>(
    store: &S,
    worker: &str,
    options: EnqueueOptions,
) -> Result<Job, ConformanceError> {
    let job = new_job(worker, options)?;
    let outcome = store
        .insert(job.clone())
        .await
        .context(format!("insert a job for worker {worker:?}"))?;
    ensure!(
        outcome.is_new(),
        "insert of job {} for worker {worker:?} answered Existing({}) although no unique key holds it",
        job.id,
        outcome.job().id
    );
    ensure_eq!(
        outcome.job(),
        &job,
        "insert must answer the job exactly as given"
    );
    Ok(outcome.into_job())
}

/// Claims every ready job of any worker at `now` (up to 10,000).
pub(super) async fn claim_all<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
) -> Result<Vec<Job>, ConformanceError> {
    store
        .claim(&ClaimRequest::any(now, 10_000))
        .await
        .context("claim every ready job")
}

/// Claims ready jobs of `worker` only, at most `limit`.
pub(super) async fn claim_worker<S: Store + ?Sized>(
    store: &S,
    worker: &str,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Job>, ConformanceError> {
    store
        .claim(&ClaimRequest {
            now,
            limit,
            per_worker: Some([(worker.to_owned(), limit)].into()),
        })
        .await
        .context(format!("claim jobs of worker {worker:?}"))
}

/// The stored job with `id`, which must exist.
pub(super) async fn get<S: Store + ?Sized>(store: &S, id: JobId) -> Result<Job, ConformanceError> {
    store
        .get_job(id)
        .await
        .context(format!("get job {id}"))?
        .context(format!("job {id} must be stored"))
}

/// The ids of `jobs`, in order.
pub(super) fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

/// `n` seconds.
pub(super) fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// A fixed instant, from RFC 3339.
#[track_caller]
pub(super) fn at(rfc3339: &str) -> Result<DateTime<Utc>, ConformanceError> {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.with_timezone(&Utc))
        .context(format!("parse {rfc3339}"))
}

/// The field a refusal names: `result` must be
/// [`StoreError::InvalidInput`] for `field`. Returns the error, so the case
/// can check its message too.
#[track_caller]
pub(super) fn refused<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    field: &str,
    doing: &str,
) -> Result<StoreError, ConformanceError> {
    match result {
        Err(e @ StoreError::InvalidInput { field: f, .. }) if f == field => {
            if !e.to_string().contains(field) {
                return Err(ConformanceError::new(format!(
                    "{doing}: the message must name the field {field:?}, got {e}"
                )));
            }
            Ok(e)
        }
        other => Err(ConformanceError::new(format!(
            "{doing}: expected a refusal naming the field {field:?} (StoreError::InvalidInput), got {other:?}"
        ))),
    }
}
