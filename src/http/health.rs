//! `GET /healthz`, `GET /readyz`, `GET /metrics`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use troupe_actors::ChildState;

use super::server::ApiState;
use crate::provider::BreakerState;

/// Alive: the process answers HTTP.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready: the store answers a read, every supervision tree is up, and no
/// provider actor has stopped for good. Each provider's circuit is shown;
/// an open circuit marks the daemon `degraded` but not unready, because
/// failover and worker jobs still run without that provider.
pub(crate) async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    let troupe = &state.troupe;
    let store = match troupe.store().get_job(uuid::Uuid::nil()).await {
        Ok(_) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let mut ready = store["ok"] == Value::Bool(true);
    let supervisors: Vec<Value> = troupe
        .trees()
        .into_iter()
        .map(|tree| {
            let root = tree.root();
            let ended = tree.outcome();
            let up = ended.is_none() && root.state() == ChildState::Running;
            ready &= up;
            json!({
                "name": root.name(),
                "state": root.state().as_str(),
                "ok": up,
                "ended": ended.map(|o| match o {
                    Ok(()) => "stopped".to_string(),
                    Err(e) => e.to_string(),
                }),
            })
        })
        .collect();
    let mut degraded = false;
    let providers: Vec<Value> = troupe
        .providers()
        .map(|set| set.status())
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let ok = p.actor != "stopped";
            ready &= ok;
            degraded |= p.breaker != BreakerState::Closed;
            json!({
                "name": p.name,
                "circuit": p.breaker,
                "actor": p.actor,
                "restarts": p.restarts,
                "ok": ok,
            })
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(json!({
        "ready": ready,
        "degraded": degraded,
        "store": store,
        "supervisors": supervisors,
        "providers": providers,
    }))
}

/// Prometheus text exposition of [`Troupe::metrics`](crate::runtime::Troupe::metrics).
pub(crate) async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    let text = state.troupe.metrics().await;
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text)
}
