//! `GET /v1/agents`, `POST /v1/agents/{id}/tasks`,
//! `GET /v1/agents/{id}/memories`, `GET /v1/conversations/{id}/messages`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::{query, read_object};
use super::errors::ApiError;
use super::server::ApiState;
use crate::agent::ProcessingResult;
use crate::config::AgentConfig;
use crate::job::JobStatus;
use crate::memory::MemoryScope;
use crate::runtime::{TaskError, TaskOptions};

fn agent<'a>(state: &'a ApiState, id: &str) -> Result<&'a AgentConfig, ApiError> {
    let agents = &state.troupe.config().agents;
    agents.iter().find(|a| a.id == id).ok_or_else(|| {
        let ids: Vec<_> = agents.iter().map(|a| a.id.as_str()).collect();
        ApiError::NotFound(format!(
            "unknown agent `{id}` (configured: {})",
            ids.join(", ")
        ))
    })
}

/// The configured agents with their model, tools, pause state and jobs.
pub(crate) async fn list(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let engine = state.troupe.engine();
    let pause = engine.store().pause_state().await?;
    let counts = engine.counts().await?;
    let agents: Vec<_> = state
        .troupe
        .config()
        .agents
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "name": a.name,
                "provider": a.model_config.provider,
                "model": a.model_config.model,
                "tools": a.tools,
                "concurrency": a.concurrency,
                "paused": pause.is_paused(&a.id),
                "queued": counts.worker(&a.id, JobStatus::Queued),
                "running": counts.worker(&a.id, JobStatus::Running),
                "completed": counts.worker(&a.id, JobStatus::Completed),
                "failed": counts.worker(&a.id, JobStatus::Failed),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "agents": agents })))
}

/// Queues a task for the agent: 201 with the job once it is durable; with
/// `"wait": true`, waits for the end and answers 200 with the
/// ProcessingResult (`success: false` and the error if the job failed).
pub(crate) async fn task(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let agent = agent(&state, &id)?.id.clone();
    let fields = read_object(&req, payload, state.body_limit).await?;
    fields.only(&["prompt", "conversationId", "userId", "wait"])?;
    let prompt = fields.required_string("prompt")?;
    let options = TaskOptions {
        conversation_id: fields.string("conversationId")?,
        user_id: fields.string("userId")?,
        source: Some("api".into()),
    };
    for (name, value) in [
        ("conversationId", &options.conversation_id),
        ("userId", &options.user_id),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(ApiError::field(name, "must not be empty"));
        }
    }
    let wait = fields.bool("wait")?.unwrap_or(false);
    let job = state.troupe.task(&agent, &prompt, options).await?;
    if !wait {
        return Ok(HttpResponse::build(StatusCode::CREATED).json(job));
    }
    let result = match state.troupe.wait(job.id).await {
        Err(TaskError::Runtime(e)) => return Err(e.into()),
        outcome => ProcessingResult::of(outcome),
    };
    Ok(HttpResponse::Ok().json(result))
}

/// An agent's memories, oldest first: `userId` for one user's scope (else
/// the agent-wide scope), `archived=true` to include compacted originals.
pub(crate) async fn memories(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let agent = agent(&state, &id)?.id.clone();
    let params = query(&req, &["userId", "archived"])?;
    let include_archived = match params.get("archived").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid query parameter `archived`: expected true or false, got `{other}`"
            )))
        }
    };
    let scope = match params.get("userId") {
        Some(user) => MemoryScope::user(agent, user.clone()),
        None => MemoryScope::agent(agent),
    };
    scope
        .validate()
        .map_err(|e| ApiError::BadRequest(format!("invalid query parameter `userId`: {e}")))?;
    let memories = state
        .troupe
        .memories()
        .list(scope, include_archived)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "memories": memories })))
}

/// A conversation's messages, oldest first; 404 when it has none (a
/// conversation exists once a message is added to it).
pub(crate) async fn messages(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let messages = state.troupe.conversations().messages(&id).await?;
    if messages.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no conversation with id `{id}`"
        )));
    }
    Ok(HttpResponse::Ok().json(json!({ "messages": messages })))
}
