//! Operations routes: liveness, readiness, metrics and routing explanations.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Caller};
use crate::config::Role;
use crate::providers::MessageBody;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive", body = super::openapi::Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the store answers and at least one provider would take a send now (see
/// `Gateway::readiness`); otherwise 503 with the reasons.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = super::openapi::Readiness),
        (status = 503, description = "Not ready; `reasons` says why", body = super::openapi::Readiness),
    )
)]
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

/// Prometheus' text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Every metric", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.gateway.render_metrics())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    /// The destination to route, E.164 (a national number of the default country is accepted too).
    #[param(pattern = "^\\+[1-9][0-9]{7,14}$")]
    to: String,
    /// `otp` (default), `text` or `template`.
    #[serde(default)]
    #[param(pattern = "^(otp|text|template)$")]
    kind: Option<String>,
}

/// `GET /v1/routing/explain?to=+9198...&kind=otp`: the ordered candidates and why each is in or out.
#[utoipa::path(
    get,
    path = "/v1/routing/explain",
    tag = "ops",
    params(ExplainQuery),
    responses(
        (status = 200, description = "The candidates in order", body = super::openapi::Explanation),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
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
