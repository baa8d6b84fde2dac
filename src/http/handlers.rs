//! One handler per route: read the typed request, call the
//! [`Control`](crate::api::Control),
//! write the answer. What each operation does is in [`crate::api`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::body::{read_body, read_query};
use super::server::ApiState;
use crate::api::{
    parse_approval_id, parse_job_id, parse_last_event_id, ApproveRequest, ControlError,
    DenyRequest, EnqueueRequest, FramesStream, JobsQuery, MemoriesQuery, PauseRequest, RecallQuery,
    TaskAnswer, TaskRequest, LAST_EVENT_ID,
};
use crate::events::sse;

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

/// The approvals waiting for a person.
pub(crate) async fn approvals(state: web::Data<ApiState>) -> Answer {
    ok(state.control.approvals().await?)
}

/// Approves a tool call (body `{"note"?}`); 409 when already decided.
pub(crate) async fn approve(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Answer {
    let id = parse_approval_id(&id)?;
    let request: ApproveRequest = read_body(&req, payload, state.body_limit).await?;
    ok(state.control.approve(id, request).await?)
}

/// Denies a tool call (body `{"reason"}`); 409 when already decided.
pub(crate) async fn deny(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Answer {
    let id = parse_approval_id(&id)?;
    let request: DenyRequest = read_body(&req, payload, state.body_limit).await?;
    ok(state.control.deny(id, request).await?)
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

/// A job's events as Server-Sent Events: those after `Last-Event-ID` (the
/// `seq` last seen, which grows across restarts too; none: from the
/// first), then live ones, one frame each (`id:` the seq, `event:` the
/// type, `data:` the JSON; the frames ready together in one chunk; the
/// head with the first of them, or after [`FIRST_FRAME_WITHIN`]); a keep-alive
/// comment every [`KEEP_ALIVE_EVERY`] of silence; the response ends after
/// the terminal event.
pub(crate) async fn events(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Answer {
    let id = parse_job_id(&id)?;
    let last = req
        .headers()
        .get(LAST_EVENT_ID)
        .map(|v| {
            v.to_str().map_err(|_| {
                ControlError::BadRequest(format!("{LAST_EVENT_ID} is not readable text"))
            })
        })
        .transpose()?;
    let after = parse_last_event_id(last)?;
    use futures::StreamExt;
    // Fused, so that one which ended at once (resumed after the end)
    // is not polled again.
    let mut frames = state.control.event_frames(id, after).await?.fuse();
    // The head goes out with the first event, not alone before it: a
    // follower of a task that has not started yet would otherwise cost a
    // write (and its reader a wake-up) more. Not for longer than
    // `FIRST_FRAME_WITHIN`, so a client still sees at once that it is
    // connected.
    let first = tokio::time::timeout(FIRST_FRAME_WITHIN, frames.next())
        .await
        .ok()
        .flatten();
    let stream: FramesStream = Box::pin(futures::stream::iter(first).chain(frames));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(sse_body(stream, KEEP_ALIVE_EVERY)))
}

/// How long the answer to a follower waits for the job's first event
/// before its head goes out without one.
pub(crate) const FIRST_FRAME_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a follower's connection may be silent before a keep-alive
/// comment.
pub(crate) const KEEP_ALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// `frames` as the body: each wake-up's ready frames in one chunk (a
/// burst of events is one write), a keep-alive comment once `every` passed
/// without one; ends with the stream (an error from it ends it too: the
/// client resumes with the last id). The keep-alive timer is not reset per
/// chunk: when it fires early it is set again from the last chunk.
fn sse_body(
    frames: FramesStream,
    every: std::time::Duration,
) -> impl futures::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    use futures::{FutureExt, StreamExt};
    use tokio::time::Instant;
    struct Body {
        frames: FramesStream,
        timer: std::pin::Pin<Box<tokio::time::Sleep>>,
        last_sent: Instant,
        done: bool,
    }
    let body = Body {
        frames,
        timer: Box::pin(tokio::time::sleep(every)),
        last_sent: Instant::now(),
        done: false,
    };
    fn ended(e: crate::api::ControlError) {
        tracing::warn!(error = %e, "a job's event stream ended early");
    }
    futures::stream::unfold(body, move |mut b| async move {
        if b.done {
            return None;
        }
        loop {
            tokio::select! {
                next = b.frames.next() => {
                    let mut chunk = match next {
                        Some(Ok(frame)) => {
                            let mut chunk = String::with_capacity(frame.len().max(1024));
                            chunk.push_str(&frame);
                            chunk
                        }
                        Some(Err(e)) => {
                            ended(e);
                            return None;
                        }
                        None => return None,
                    };
                    while let Some(next) = b.frames.next().now_or_never() {
                        match next {
                            Some(Ok(frame)) => chunk.push_str(&frame),
                            Some(Err(e)) => {
                                ended(e);
                                b.done = true;
                                break;
                            }
                            None => {
                                b.done = true;
                                break;
                            }
                        }
                    }
                    b.last_sent = Instant::now();
                    return Some((Ok(web::Bytes::from(chunk)), b));
                }
                _ = b.timer.as_mut() => {
                    let due = b.last_sent + every;
                    if due > Instant::now() {
                        b.timer.as_mut().reset(due);
                        continue;
                    }
                    b.last_sent = Instant::now();
                    b.timer.as_mut().reset(b.last_sent + every);
                    return Some((Ok(web::Bytes::from_static(sse::KEEP_ALIVE.as_bytes())), b));
                }
            }
        }
    })
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
