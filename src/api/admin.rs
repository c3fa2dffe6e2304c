//! Admin routes: the providers with their live health, the newest attempts, and (for
//! `super_admin`) the clients. Secrets, token hashes and full numbers never appear.

use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Caller};
use crate::config::Role;
use crate::providers::OtpSupport;

/// `GET /v1/admin/providers`: every provider in priority order with its breaker, cool-down and
/// what it can carry where.
pub async fn providers(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let registry = state.gateway.router().registry();
    let now = Instant::now();
    let providers: Vec<_> = registry
        .slots()
        .iter()
        .map(|slot| {
            let caps = slot.provider.capabilities();
            let otp = match caps.otp {
                OtpSupport::None => "none",
                OtpSupport::Local => "local",
                OtpSupport::ProviderHeld => "provider_held",
            };
            json!({
                "name": slot.name(),
                "kind": slot.kind,
                "priority": slot.priority,
                "breaker": slot.breaker.state(now).label(),
                "cooling_for_ms": slot.cooling_until(now).map(|u| (u - now).as_millis() as u64),
                "timeout_ms": slot.timeout.as_millis() as u64,
                "otp": otp,
                "text": caps.text,
                "template": caps.template,
                "countries": caps.countries,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "providers": providers, "routes": state.gateway.settings().routing.countries })))
}

/// `GET /v1/admin/clients` (super_admin): who may call, with which roles and how many active tokens.
pub async fn clients(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::SuperAdmin)?;
    Ok(HttpResponse::Ok().json(json!({ "clients": state.clients.summary() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptsQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/admin/attempts?limit=50`: the newest provider attempts, numbers masked.
pub async fn attempts(state: web::Data<AppState>, caller: Caller, query: web::Query<AttemptsQuery>) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let rows = state
        .gateway
        .recent_attempts(limit)
        .await
        .map_err(|e| ApiError::from_gateway(e, true))?;
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "message_id": r.message_id, "session_id": r.session_id, "kind": r.kind, "provider": r.provider,
                "outcome": r.outcome, "http_status": r.http_status,
                // Providers quote the destination in their errors.
                "error": r.error.as_deref().map(crate::phone::mask_numbers_in),
                "response_time_ms": r.response_time_ms, "ambiguous": r.ambiguous, "created_at": r.created_at,
                "parts": r.parts, "delivery": r.delivery,
                "to": crate::phone::Phone::parse(&r.to, "1").map(|p| p.masked()).unwrap_or_default(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "attempts": rows })))
}
