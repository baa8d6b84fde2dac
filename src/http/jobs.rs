//! `POST /v1/jobs`, `GET /v1/jobs`, `GET /v1/jobs/{id}`,
//! `POST /v1/jobs/{id}/cancel`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::body::{query, read_object};
use super::errors::ApiError;
use super::server::ApiState;
use crate::job::{EnqueueOptions, JobCtx, JobId, JobStatus, DEFAULT_MAX_ATTEMPTS};
use crate::store::{CancelOutcome, InsertOutcome, ListQuery};

/// Largest page of `GET /v1/jobs`.
const MAX_PAGE: usize = 1000;

const ENQUEUE_FIELDS: &[&str] = &[
    "workerName",
    "args",
    "ctx",
    "delayMs",
    "runAt",
    "priority",
    "maxAttempts",
    "uniqueKey",
    "timeoutMs",
];

pub(crate) fn parse_job_id(id: &str) -> Result<JobId, ApiError> {
    JobId::parse_str(id).map_err(|e| ApiError::BadRequest(format!("`{id}` is not a job id: {e}")))
}

/// Enqueues a job (the fields of `troupe enqueue`); 201 with the job once it
/// is durable, or 200 with the job that already holds `uniqueKey`.
pub(crate) async fn enqueue(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut fields = read_object(&req, payload, state.body_limit).await?;
    fields.only(ENQUEUE_FIELDS)?;
    let worker = fields.required_string("workerName")?;
    let mut options = EnqueueOptions::default()
        .priority(fields.int::<i32>("priority")?.unwrap_or(0))
        .max_attempts(
            fields
                .int::<u32>("maxAttempts")?
                .unwrap_or(DEFAULT_MAX_ATTEMPTS),
        );
    if options.max_attempts == 0 {
        return Err(ApiError::field("maxAttempts", "must be at least 1"));
    }
    options.delay = fields.int::<u64>("delayMs")?.map(Duration::from_millis);
    options.run_at = match fields.string("runAt")? {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(&text)
                .map_err(|e| ApiError::field("runAt", format!("expected an RFC 3339 time: {e}")))?
                .with_timezone(&Utc),
        ),
    };
    if options.delay.is_some() && options.run_at.is_some() {
        return Err(ApiError::Invalid(
            "give `delayMs` or `runAt`, not both".into(),
        ));
    }
    options.unique_key = fields.string("uniqueKey")?;
    if options.unique_key.as_deref() == Some("") {
        return Err(ApiError::field("uniqueKey", "must not be empty"));
    }
    options.timeout = match fields.int::<u64>("timeoutMs")? {
        Some(0) => return Err(ApiError::field("timeoutMs", "must be greater than zero")),
        other => other.map(Duration::from_millis),
    };
    let ctx: JobCtx = match fields.take("ctx") {
        None => JobCtx::default(),
        Some(value) if value.is_object() => {
            serde_json::from_value(value).map_err(|e| ApiError::field("ctx", e))?
        }
        Some(_) => return Err(ApiError::field("ctx", "expected a JSON object")),
    };
    let args = fields.take("args").unwrap_or_else(|| json!({}));
    let outcome = state
        .troupe
        .engine()
        .enqueue(&worker, args, ctx, options)
        .await?;
    let status = match outcome {
        InsertOutcome::Inserted(_) => StatusCode::CREATED,
        InsertOutcome::Existing(_) => StatusCode::OK,
    };
    Ok(HttpResponse::build(status).json(outcome.job()))
}

/// A page of jobs, newest first: `status`, `worker`, `limit` (1–1000,
/// default 50), `cursor` (the `nextCursor` of the previous page).
pub(crate) async fn list(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = query(&req, &["status", "worker", "limit", "cursor"])?;
    let status =
        match params.get("status") {
            None => None,
            Some(s) => Some(s.parse::<JobStatus>().map_err(|e| {
                ApiError::BadRequest(format!("invalid query parameter `status`: {e}"))
            })?),
        };
    let limit = match params.get("limit") {
        None => 50,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "invalid query parameter `limit`: expected 1 to {MAX_PAGE}, got `{s}`"
                )))
            }
        },
    };
    let cursor =
        match params.get("cursor") {
            None => None,
            Some(s) => Some(JobId::parse_str(s).map_err(|e| {
                ApiError::BadRequest(format!("invalid query parameter `cursor`: {e}"))
            })?),
        };
    let page = state
        .troupe
        .engine()
        .list_jobs(&ListQuery {
            status,
            worker: params.get("worker").cloned(),
            limit,
            cursor,
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "jobs": page.jobs, "nextCursor": page.next_cursor })))
}

/// One job.
pub(crate) async fn show(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_job_id(&id)?;
    let job = state.troupe.engine().get_job(id).await?;
    Ok(HttpResponse::Ok().json(job))
}

/// Cancels a job: `cancelled` (it was queued), `requested` (it is running
/// and ends cancelled when its run stops) or `alreadyEnded`.
pub(crate) async fn cancel(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_job_id(&id)?;
    let outcome = state.troupe.engine().cancel_job(id).await?;
    let (what, job) = match outcome {
        CancelOutcome::Cancelled(job) => ("cancelled", job),
        CancelOutcome::Requested(job) => ("requested", job),
        CancelOutcome::AlreadyEnded(job) => ("alreadyEnded", job),
    };
    Ok(HttpResponse::Ok().json(json!({ "outcome": what, "job": job })))
}
