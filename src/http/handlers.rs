//! One handler per route: read the typed request, call the
//! [`Control`](crate::api::Control),
//! write the answer. What each operation does is in [`crate::api`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::body::{read_body, read_query};
use super::server::ApiState;
use crate::api::{
    parse_job_id, ControlError, EnqueueRequest, JobsQuery, MemoriesQuery, PauseRequest,
    RecallQuery, TaskAnswer, TaskRequest,
};

type Answer = Result<HttpResponse, ControlError>;

fn ok(value: impl serde::Serialize) -> Answer {
    Ok(HttpResponse::Ok().json(value))
}

/// Alive: the process answers HTTP.
pub(crate) async fn healthz(state: web::Data<ApiState>) -> Answer {
    ok(state.control.health().await?)
}

/// Ready (200), or not (503) with the same body saying why.
pub(crate) async fn readyz(state: web::Data<ApiState>) -> Answer {
    let readiness = state.control.readiness().await?;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(HttpResponse::build(status).json(readiness))
}

/// Prometheus text.
pub(crate) async fn metrics(state: web::Data<ApiState>) -> Answer {
    let text = state.control.metrics().await?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

/// 201 with the job once it is durable, or 200 with the job that already
/// holds `uniqueKey`.
pub(crate) async fn enqueue(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Answer {
    let request: EnqueueRequest = read_body(&req, payload, state.body_limit).await?;
    let enqueued = state.control.enqueue(request).await?;
    let status = if enqueued.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(enqueued.job))
}

/// A page of jobs, newest first.
pub(crate) async fn jobs(state: web::Data<ApiState>, req: HttpRequest) -> Answer {
    let query: JobsQuery = read_query(&req)?;
    ok(state.control.jobs(query).await?)
}

/// One job.
pub(crate) async fn job(state: web::Data<ApiState>, id: web::Path<String>) -> Answer {
    ok(state.control.job(parse_job_id(&id)?).await?)
}

/// Cancels a job: `cancelled`, `requested` or `alreadyEnded`.
pub(crate) async fn cancel(state: web::Data<ApiState>, id: web::Path<String>) -> Answer {
    ok(state.control.cancel(parse_job_id(&id)?).await?)
}

/// The registered workers.
pub(crate) async fn workers(state: web::Data<ApiState>) -> Answer {
    ok(state.control.workers().await?)
}

/// The nodes sharing the store.
pub(crate) async fn nodes(state: web::Data<ApiState>) -> Answer {
    ok(state.control.nodes().await?)
}

/// The configured agents.
pub(crate) async fn agents(state: web::Data<ApiState>) -> Answer {
    ok(state.control.agents().await?)
}

/// 201 with the job once it is durable; with `"wait": true`, 200 with the
/// ProcessingResult once it has ended.
pub(crate) async fn task(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Answer {
    let request: TaskRequest = read_body(&req, payload, state.body_limit).await?;
    Ok(match state.control.task(&id, request).await? {
        TaskAnswer::Queued(job) => HttpResponse::Created().json(job),
        TaskAnswer::Finished(result) => HttpResponse::Ok().json(result),
    })
}

/// An agent's memories, oldest first.
pub(crate) async fn memories(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Answer {
    let query: MemoriesQuery = read_query(&req)?;
    ok(state.control.memories(&id, query).await?)
}

/// A conversation's messages, oldest first.
pub(crate) async fn messages(state: web::Data<ApiState>, id: web::Path<String>) -> Answer {
    ok(state.control.messages(&id).await?)
}

/// Stops claiming jobs of the target; running jobs finish.
pub(crate) async fn pause(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Answer {
    let request: PauseRequest = read_body(&req, payload, state.body_limit).await?;
    ok(state.control.pause(request).await?)
}

/// Claims jobs of the target again.
pub(crate) async fn resume(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Answer {
    let request: PauseRequest = read_body(&req, payload, state.body_limit).await?;
    ok(state.control.resume(request).await?)
}

/// The one-screen status; `daemon` is this server as the client reached it.
pub(crate) async fn status(state: web::Data<ApiState>, req: HttpRequest) -> Answer {
    let mut screen = state.control.status().await?;
    if screen.daemon.is_none() {
        let conn = req.connection_info();
        screen.daemon = Some(format!("{}://{}", conn.scheme(), conn.host()));
    }
    ok(screen)
}

/// An agent task's checkpoint records.
pub(crate) async fn steps(state: web::Data<ApiState>, id: web::Path<String>) -> Answer {
    ok(state.control.steps(parse_job_id(&id)?).await?)
}

/// The last hour per minute, provider calls, spend against budgets.
pub(crate) async fn stats(state: web::Data<ApiState>) -> Answer {
    ok(state.control.stats().await?)
}

/// One agent's settings and state.
pub(crate) async fn agent(state: web::Data<ApiState>, id: web::Path<String>) -> Answer {
    ok(state.control.agent(&id).await?)
}

/// An agent's memories ranked for a query.
pub(crate) async fn recall(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Answer {
    let query: RecallQuery = read_query(&req)?;
    ok(state.control.recall(&id, query).await?)
}
