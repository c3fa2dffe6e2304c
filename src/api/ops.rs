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

/// How long `/readyz` waits for the store: a probe must answer while the database stalls.
const STORE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ready when the store answers `SELECT 1` within a second and at least one provider would take
/// a send now (breaker not open, not cooling down after a 429): otherwise every send would
/// answer 503, so the instance answers 503 with the reasons.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let gw = &state.gateway;
    let store_ok = matches!(tokio::time::timeout(STORE_PROBE_TIMEOUT, gw.store.ping()).await, Ok(Ok(())));
    let registry = gw.router.registry();
    let now = std::time::Instant::now();
    let open = |s: &crate::routing::Slot| matches!(s.breaker.state(now), crate::routing::BreakerState::Open { .. });
    let usable = registry
        .slots()
        .iter()
        .filter(|s| !open(s) && s.cooling_until(now).is_none())
        .count();
    let mut warnings = Vec::new();
    if gw.store.kind() == "memory" {
        warnings.push("in-memory store: sessions, limits and logs are neither durable nor shared between instances; set DATABASE_URL");
    }
    if registry.console_only() {
        warnings.push("console provider only: messages are written to the log, not delivered");
    }
    let mut reasons = Vec::new();
    if !store_ok {
        reasons.push("the store did not answer within 1 s");
    }
    if usable == 0 {
        reasons.push("no provider can take a send now: every one is cooling down after a 429 or has its breaker open");
    }
    let ready = reasons.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "reasons": reasons,
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
    let candidates = state.gateway.router.explain(&body, &to);
    Ok(HttpResponse::Ok().json(json!({ "to": to.masked(), "kind": body.kind(), "candidates": candidates })))
}
