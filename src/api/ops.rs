//! Operations routes: liveness, readiness, metrics and routing explanations.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Caller};
use crate::config::Role;
use crate::providers::MessageBody;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the store answers and at least one provider's breaker lets calls through.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let gw = &state.gateway;
    let store_ok = gw.store.ping().await.is_ok();
    let registry = gw.router.registry();
    let now = std::time::Instant::now();
    let usable = registry
        .slots()
        .iter()
        .filter(|s| !matches!(s.breaker.state(now), crate::routing::BreakerState::Open { .. }))
        .count();
    let mut warnings = Vec::new();
    if gw.store.kind() == "memory" {
        warnings.push("in-memory store: sessions, limits and logs are neither durable nor shared between instances; set DATABASE_URL");
    }
    if registry.console_only() {
        warnings.push("console provider only: messages are written to the log, not delivered");
    }
    let ready = store_ok && usable > 0;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": { "kind": gw.store.kind(), "reachable": store_ok },
        "providers": { "configured": registry.slots().len(), "usable": usable },
        "warnings": warnings,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.gateway.router.publish_breakers();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.gateway.metrics.render())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    to: String,
    #[serde(default)]
    kind: Option<String>,
}

/// `GET /v1/routing/explain?to=+9198...&kind=otp`: the ordered candidates and why each is in or out.
pub async fn explain(
    state: web::Data<AppState>,
    caller: Caller,
    query: Result<web::Query<ExplainQuery>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let query = query.map_err(|e| ApiError::InvalidRequest(e.to_string()))?.into_inner();
    let to = state.parse_phone(&query.to)?;
    let body = match query.kind.as_deref().unwrap_or("otp") {
        "otp" => MessageBody::Otp {
            code: String::new(),
            text: String::new(),
        },
        "text" => MessageBody::Text { text: String::new() },
        "template" => MessageBody::Template {
            name: String::new(),
            vars: Vec::new(),
        },
        other => {
            return Err(ApiError::InvalidRequest(format!(
                "`kind` must be otp, text or template, not `{other}`"
            )))
        }
    };
    let candidates = state.gateway.router.explain(&body, &to);
    Ok(HttpResponse::Ok().json(json!({ "to": to.masked(), "kind": body.kind(), "candidates": candidates })))
}
