//! `POST /v1/pause` and `POST /v1/resume`: `{}` for everything,
//! `{"worker":"x"}` or `{"agent":"x"}` for one. Durable across restarts.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::read_object;
use super::errors::ApiError;
use super::server::ApiState;
use crate::store::{PauseState, PauseTarget};

async fn target(
    state: &ApiState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<PauseTarget, ApiError> {
    let fields = read_object(req, payload, state.body_limit).await?;
    fields.only(&["worker", "agent"])?;
    match (fields.string("worker")?, fields.string("agent")?) {
        (Some(_), Some(_)) => Err(ApiError::Invalid(
            "give `worker` or `agent`, not both".into(),
        )),
        (None, None) => Ok(PauseTarget::All),
        (Some(worker), None) => {
            let engine = state.troupe.engine();
            let workers = engine.list_workers();
            if !workers.iter().any(|w| w.name == worker) {
                let names: Vec<_> = workers.into_iter().map(|w| w.name).collect();
                return Err(ApiError::NotFound(format!(
                    "unknown worker `{worker}` (registered: {})",
                    names.join(", ")
                )));
            }
            Ok(PauseTarget::Worker(worker))
        }
        (None, Some(agent)) => {
            let agents = &state.troupe.config().agents;
            if !agents.iter().any(|a| a.id == agent) {
                let ids: Vec<_> = agents.iter().map(|a| a.id.as_str()).collect();
                return Err(ApiError::NotFound(format!(
                    "unknown agent `{agent}` (configured: {})",
                    ids.join(", ")
                )));
            }
            // An agent's tasks are the jobs of the worker named after it.
            Ok(PauseTarget::Worker(agent))
        }
    }
}

fn render(state: &PauseState) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "paused": { "all": state.all, "workers": state.workers }
    }))
}

/// Stops claiming jobs of the target; running jobs finish.
pub(crate) async fn pause(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let target = target(&state, &req, payload).await?;
    let now = state.troupe.engine().pause(target).await?;
    Ok(render(&now))
}

/// Claims jobs of the target again.
pub(crate) async fn resume(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let target = target(&state, &req, payload).await?;
    let now = state.troupe.engine().resume(target).await?;
    Ok(render(&now))
}
