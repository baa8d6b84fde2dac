//! Enqueueing a job at most once per tool call, for the tools whose effect
//! is a job (`scheduler`, `create_task`).
//!
//! The guarantee, for one idempotency key (the tool's name plus
//! [`ToolContext::idempotency_key`](crate::tools::ToolContext::idempotency_key)):
//!
//! - **With the idempotency registry** ([`IdempotencyStore`]): exactly one job
//!   is ever stored, however often and in however many processes the call
//!   repeats, and every repeat answers with that job's id. The call claims
//!   the key with a fresh job id *before* storing the job, then stores the
//!   job under that id (the store refuses a second job with one id), then
//!   records `<key>#done`. A repeat that finds the key claimed looks the job
//!   up: found, or `#done` recorded (the job ended and was pruned), means it
//!   exists or existed, so nothing is stored; otherwise the first call
//!   crashed between claim and insert, and the repeat stores the job with the
//!   recorded id. At most once per key, and at least once once a call
//!   returns.
//! - **Without it**: the job carries the key as its unique key, so a repeat
//!   while the first job is still queued or running returns that job; a
//!   repeat after it ended would enqueue again.

use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::engine::{EngineError, WorkerEngine};
use crate::job::{EnqueueOptions, Job, JobCtx, JobId};
use crate::store::{Claim, IdempotencyStore};
use crate::store::{InsertOutcome, StoreError};
use crate::tools::ToolError;

/// A job enqueued (or found) for one tool call.
pub(crate) struct Enqueued {
    pub(crate) job_id: JobId,
    /// False when a repeat of the call found the job stored before.
    pub(crate) created: bool,
}

/// Everything a job-creating tool needs to enqueue.
pub(crate) struct JobRequest {
    pub(crate) key: String,
    pub(crate) worker: String,
    pub(crate) args: Value,
    pub(crate) ctx: JobCtx,
    pub(crate) options: EnqueueOptions,
}

pub(crate) async fn enqueue_once(
    engine: &WorkerEngine,
    registry: Option<&Arc<dyn IdempotencyStore>>,
    request: JobRequest,
) -> Result<Enqueued, ToolError> {
    let options = request.options.unique_key(request.key.clone());
    let mut job = Job::new(
        request.worker,
        request.args,
        request.ctx,
        &options,
        chrono::Utc::now(),
    )
    .map_err(ToolError::failed)?;
    let Some(registry) = registry else {
        return insert(engine, job).await;
    };
    let claim = registry
        .claim_key(&request.key, json!({ "jobId": job.id }))
        .await
        .map_err(store_error)?;
    let done_key = format!("{}#done", request.key);
    let enqueued = match claim {
        Claim::Claimed => insert(engine, job).await?,
        Claim::Existing(value) => {
            let id = recorded_id(&value)?;
            if engine_has(engine, id).await?
                || registry
                    .get_key(&done_key)
                    .await
                    .map_err(store_error)?
                    .is_some()
            {
                return Ok(Enqueued {
                    job_id: id,
                    created: false,
                });
            }
            job.id = id;
            insert(engine, job).await?
        }
    };
    registry
        .claim_key(&done_key, json!({ "jobId": enqueued.job_id }))
        .await
        .map_err(store_error)?;
    Ok(enqueued)
}

async fn insert(engine: &WorkerEngine, job: Job) -> Result<Enqueued, ToolError> {
    let id = job.id;
    match engine.enqueue_job(job).await {
        Ok(InsertOutcome::Inserted(job)) => Ok(Enqueued {
            job_id: job.id,
            created: true,
        }),
        Ok(InsertOutcome::Existing(job)) => Ok(Enqueued {
            job_id: job.id,
            created: false,
        }),
        // A concurrent repeat stored the same id first: the job exists.
        Err(e) => match engine_has(engine, id).await {
            Ok(true) => Ok(Enqueued {
                job_id: id,
                created: false,
            }),
            _ => Err(engine_error(e)),
        },
    }
}

async fn engine_has(engine: &WorkerEngine, id: JobId) -> Result<bool, ToolError> {
    match engine.get_job(id).await {
        Ok(_) => Ok(true),
        Err(EngineError::JobNotFound { .. }) => Ok(false),
        Err(e) => Err(engine_error(e)),
    }
}

fn recorded_id(value: &Value) -> Result<JobId, ToolError> {
    value
        .get("jobId")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| {
            ToolError::failed(format!(
                "the idempotency registry holds an unexpected value for this call: {value}"
            ))
        })
}

/// A store failure as the model should see it: a bad input names the field.
pub(crate) fn store_error(e: StoreError) -> ToolError {
    match e {
        StoreError::InvalidInput { field, reason } => {
            ToolError::invalid_argument(format!("/{field}"), reason)
        }
        other => ToolError::failed(other),
    }
}

pub(crate) fn engine_error(e: EngineError) -> ToolError {
    match e {
        EngineError::Store(inner) => store_error(inner),
        other => ToolError::failed(other),
    }
}
