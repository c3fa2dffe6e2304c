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

/// Ready when the store answers and at least one provider would take a send now (see
/// `Gateway::readiness`); otherwise 503 with the reasons.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let r = state.gateway.readiness().await;
    let ready = r.reasons.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "reasons": r.reasons,
        "store": { "kind": r.store_kind, "reachable": r.store_reachable },
        "providers": { "configured": r.configured, "usable": r.usable },
        "warnings": r.warnings,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.gateway.render_metrics())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    to: String,
    #[serde(default)]
    kind: Option<String>,
}

/// `GET /v1/routing/explain?to=+9198...&kind=otp`: the ordered candidates and why each is in or out.
pub async fn explain(state: web::Data<AppState>, caller: Caller, query: web::Query<ExplainQuery>) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let query = query.into_inner();
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
    state.gateway.health_tick();
    let candidates = state.gateway.router().explain(&body, &to);
    let refreshed = state.gateway.router().health().refreshed_at();
    Ok(HttpResponse::Ok()
        .json(json!({ "to": to.masked(), "kind": body.kind(), "candidates": candidates, "health_refreshed_at": refreshed })))
}
