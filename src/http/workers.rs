//! `GET /v1/workers`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::errors::ApiError;
use super::server::ApiState;

/// The registered workers (agents among them: an agent is the worker of its
/// tasks), each with whether it is paused and its queued and running jobs.
pub(crate) async fn list(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let engine = state.troupe.engine();
    let pause = engine.store().pause_state().await?;
    let counts = engine.counts().await?;
    let workers: Vec<_> = engine
        .list_workers()
        .into_iter()
        .map(|w| {
            let queued = counts.worker(&w.name, crate::job::JobStatus::Queued);
            let running = counts.worker(&w.name, crate::job::JobStatus::Running);
            let paused = pause.is_paused(&w.name);
            let mut value = json!(w);
            value["paused"] = json!(paused);
            value["queued"] = json!(queued);
            value["running"] = json!(running);
            value
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "workers": workers, "pausedAll": pause.all })))
}
