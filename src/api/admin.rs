//! Admin routes: the provider registry (read, add, change, remove, reorder) with each provider's
//! live health, the audit trail, the newest attempts, and (for `super_admin`) the clients.
//! Secrets (shown masked), token hashes and full numbers never appear.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Caller};
use crate::admin::change::{NewProvider, ProviderPatch};
use crate::admin::{AdminError, Change, OrderChange, ProviderView, Snapshot};
use crate::config::Role;
use crate::providers::OtpSupport;
use crate::routing::Registry;

/// `GET /v1/admin/providers`: the registry in force, in priority order: each provider's keys,
/// its secrets masked, its breaker and cool-down.
#[utoipa::path(
    get,
    path = "/v1/admin/providers",
    tag = "admin",
    responses(
        (status = 200, description = "The registry in force", body = super::openapi::ProviderRegistry),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn providers(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let snapshot = state.registry.snapshot();
    Ok(HttpResponse::Ok().json(json!({
        "version": snapshot.version,
        "source": snapshot.source,
        "providers": provider_list(&state, &snapshot),
        "routes": state.gateway.settings().routing.countries,
    })))
}

/// `POST /v1/admin/providers`: adds a provider.
#[utoipa::path(
    post,
    path = "/v1/admin/providers",
    tag = "admin",
    request_body = super::openapi::NewProviderBody,
    responses(
        (status = 201, description = "Added: the provider as now in force", body = super::openapi::ProviderEntry),
        (status = "4XX", description = "Refused; on a registry read from the config file (no database), changes answer 409 `registry_read_only`", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_provider(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, actix_web::Error> {
    caller.require(Role::Admin)?;
    let body: NewProvider = super::fields::with_whole_numbers(body.into_inner(), &["priority"])?;
    let name = body.name.clone();
    let snapshot = state.registry.apply(&caller.name, Change::Create(body)).await?;
    Ok(HttpResponse::Created().json(one_provider(&state, &snapshot, &name)))
}

/// `PATCH /v1/admin/providers/{name}`: changes a provider's switch, priority, keys or secrets.
#[utoipa::path(
    patch,
    path = "/v1/admin/providers/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The provider's name")),
    request_body = super::openapi::ProviderPatchBody,
    responses(
        (status = 200, description = "Changed: the provider as now in force", body = super::openapi::ProviderEntry),
        (status = "4XX", description = "Refused; on a registry read from the config file (no database), changes answer 409 `registry_read_only`", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_provider(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, actix_web::Error> {
    caller.require(Role::Admin)?;
    let body: ProviderPatch = super::fields::with_whole_numbers(body.into_inner(), &["priority"])?;
    let name = name.into_inner();
    let snapshot = state.registry.apply(&caller.name, Change::Update(name.clone(), body)).await?;
    Ok(HttpResponse::Ok().json(one_provider(&state, &snapshot, &name)))
}

/// `DELETE /v1/admin/providers/{name}`.
#[utoipa::path(
    delete,
    path = "/v1/admin/providers/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = "4XX", description = "Refused; on a registry read from the config file (no database), changes answer 409 `registry_read_only`", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_provider(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    caller.require(Role::Admin)?;
    state.registry.apply(&caller.name, Change::Delete(name.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /v1/admin/providers/order`: `["twilio", "2factor"]` or `{"order": [...], "enabled": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OrderBody {
    List(Vec<String>),
    Object {
        order: Vec<String>,
        #[serde(default)]
        enabled: BTreeMap<String, bool>,
    },
}

/// `PUT /v1/admin/providers/order`: the whole order (and switches), applied at once.
#[utoipa::path(
    put,
    path = "/v1/admin/providers/order",
    tag = "admin",
    request_body = super::openapi::OrderBodyDoc,
    responses(
        (status = 200, description = "The new order", body = super::openapi::ProviderOrder),
        (status = "4XX", description = "Refused; on a registry read from the config file (no database), changes answer 409 `registry_read_only`", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn reorder(state: web::Data<AppState>, caller: Caller, body: web::Json<OrderBody>) -> Result<HttpResponse, actix_web::Error> {
    caller.require(Role::Admin)?;
    let change = match body.into_inner() {
        OrderBody::List(order) => OrderChange {
            order,
            enabled: BTreeMap::new(),
        },
        OrderBody::Object { order, enabled } => OrderChange { order, enabled },
    };
    let snapshot = state.registry.apply(&caller.name, Change::Order(change)).await?;
    Ok(HttpResponse::Ok().json(json!({ "version": snapshot.version, "providers": provider_list(&state, &snapshot) })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The `next_cursor` of the previous page (empty: the first page).
    #[serde(default)]
    #[param(pattern = "^(|-?[0-9]{1,18})$")]
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 50; larger is clamped).
    #[serde(default, deserialize_with = "super::fields::page_size")]
    #[param(minimum = 0)]
    limit: Option<usize>,
}

/// `GET /v1/admin/audit?cursor=&limit=`: registry changes, newest first.
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "Registry changes, newest first", body = super::openapi::AuditPage),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn audit(state: web::Data<AppState>, caller: Caller, query: web::Query<AuditQuery>) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500) as i64;
    let before = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::InvalidRequest("cursor: not a cursor this API gave".into()))?,
        ),
        None => None,
    };
    let rows = state
        .registry
        .audit_page(before, limit)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let items: Vec<_> = rows
        .iter()
        .map(|r| json!({"id": r.id, "at": r.at, "actor": r.actor, "action": r.action, "target": r.target, "before": r.before, "after": r.after}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_cursor": next })))
}

/// The providers of `snapshot` in priority order, each with its live state on this instance.
fn provider_list(state: &AppState, snapshot: &Snapshot) -> Vec<serde_json::Value> {
    let registry = state.gateway.router().registry();
    let mut entries: Vec<_> = snapshot.entries.iter().collect();
    entries.sort_by_key(|e| (e.config.common().priority, e.config.name().to_string()));
    entries.iter().map(|e| provider_json(state.registry.view(e), &registry)).collect()
}

fn one_provider(state: &AppState, snapshot: &Snapshot, name: &str) -> serde_json::Value {
    let registry = state.gateway.router().registry();
    snapshot
        .entries
        .iter()
        .find(|e| e.config.name() == name)
        .map(|e| provider_json(state.registry.view(e), &registry))
        .unwrap_or_default()
}

/// A provider's view with its breaker and what it can carry where (when it is built).
fn provider_json(view: ProviderView, registry: &Registry) -> serde_json::Value {
    let now = Instant::now();
    let mut out = serde_json::to_value(&view).unwrap_or_default();
    let slot = registry.slot(&view.name);
    out["breaker"] = json!(slot.map_or("closed", |s| s.breaker.state(now).label()));
    out["cooling_for_ms"] = json!(slot.and_then(|s| s.cooling_until(now)).map(|u| (u - now).as_millis() as u64));
    if let Some(slot) = slot {
        let caps = slot.provider.capabilities();
        out["otp"] = json!(match caps.otp {
            OtpSupport::None => "none",
            OtpSupport::Local => "local",
            OtpSupport::ProviderHeld => "provider_held",
        });
        out["text"] = json!(caps.text);
        out["template"] = json!(caps.template);
        out["countries"] = json!(caps.countries);
        out["timeout_ms"] = json!(slot.timeout.as_millis() as u64);
    }
    out
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::ReadOnly | Self::NoMasterKey | Self::Exists(_) | Self::Busy => StatusCode::CONFLICT,
            Self::InvalidField { .. } | Self::NoEnabledProvider(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            Self::ReadOnly => "registry_read_only",
            Self::NoMasterKey => "master_key_missing",
            Self::InvalidField { .. } => "invalid_field",
            Self::NoEnabledProvider(_) => "no_enabled_provider",
            Self::NotFound(_) => "provider_not_found",
            Self::Exists(_) => "provider_exists",
            Self::Busy => "registry_busy",
            Self::Store(e) => return ApiError::Internal(anyhow::anyhow!("registry store: {e}")).error_response(),
        };
        let mut body = json!({ "error": code, "message": self.to_string() });
        if let Self::InvalidField { field, .. } = self {
            body["field"] = json!(field);
        }
        HttpResponse::build(self.status_code()).json(body)
    }
}

/// `GET /v1/admin/clients` (super_admin): who may call, with which roles and how many active tokens.
#[utoipa::path(
    get,
    path = "/v1/admin/clients",
    tag = "admin",
    responses(
        (status = 200, description = "The clients (super_admin only)", body = super::openapi::ClientList),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn clients(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::SuperAdmin)?;
    Ok(HttpResponse::Ok().json(json!({ "clients": state.clients.summary() })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptsQuery {
    /// How many, 1 to 500 (default 50; larger is clamped).
    #[serde(default, deserialize_with = "super::fields::page_size")]
    #[param(minimum = 0)]
    limit: Option<usize>,
}

/// `GET /v1/admin/attempts?limit=50`: the newest provider attempts, numbers masked.
#[utoipa::path(
    get,
    path = "/v1/admin/attempts",
    tag = "admin",
    params(AttemptsQuery),
    responses(
        (status = 200, description = "The newest attempts, numbers masked", body = super::openapi::AttemptList),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
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
