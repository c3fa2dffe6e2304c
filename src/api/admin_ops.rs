//! Admin operations routes: who am I, the test sender, the logs (behind MFA when the admin has
//! a phone), MFA itself and the live status. Validation errors name their field.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{fields, ApiError, AppState, Caller};
use crate::admin::logs::{self, DEFAULT_LIMIT, MAX_LIMIT};
use crate::admin::mfa::MfaCheck;
use crate::admin::test_send::TestSendError;
use crate::config::Role;
use crate::phone::Phone;
use crate::store::admin_logs::{LogFilter, LogSource};

/// The header carrying a passed MFA check's token.
pub const MFA_HEADER: &str = "x-admin-mfa";

/// Outcomes (attempts, the first 6) and statuses (OTP events) the logs can be filtered by.
const OUTCOMES: [&str; 18] = [
    "accepted",
    "throttled",
    "unavailable",
    "misconfigured",
    "rejected",
    "timeout",
    "sent",
    "failed",
    "unconfirmed",
    "verified",
    "wrong_code",
    "expired",
    "already_verified",
    "exhausted",
    "provider_unreachable",
    "limited",
    "not_found",
    "error",
];
/// Attempt types and OTP event types (`template` is both).
const TYPES: [&str; 6] = ["otp", "text", "template", "autogen", "local", "verify"];
const ATTEMPT_OUTCOMES: usize = 6;

/// The one log an outcome or type can be found in, when only one has it: the other is not read.
fn only_source(outcome: Option<&str>, kind: Option<&str>) -> Option<LogSource> {
    let by_outcome = outcome.map(|o| {
        if OUTCOMES[..ATTEMPT_OUTCOMES].contains(&o) {
            LogSource::Attempt
        } else {
            LogSource::OtpEvent
        }
    });
    let by_kind = match kind {
        Some("otp" | "text") => Some(LogSource::Attempt),
        Some("autogen" | "local" | "verify") => Some(LogSource::OtpEvent),
        _ => None,
    };
    by_outcome.or(by_kind)
}

/// A refusal of these routes: an `ApiError`, or one of their own with an optional `field`.
#[derive(Debug)]
pub enum OpsError {
    Api(ApiError),
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
}

impl OpsError {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: format!("{field}: {}", message.into()),
            field: Some(field),
        }
    }

    fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
}

impl std::fmt::Display for OpsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(e) => e.fmt(f),
            Self::Refused { message, .. } => f.write_str(message),
        }
    }
}

impl From<ApiError> for OpsError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl ResponseError for OpsError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status_code(),
            Self::Refused { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Api(e) => e.error_response(),
            Self::Refused {
                status,
                code,
                message,
                field,
            } => {
                let mut body = json!({ "error": code, "message": message });
                if let Some(field) = field {
                    body["field"] = json!(field);
                }
                HttpResponse::build(*status).json(body)
            }
        }
    }
}

type Answer = Result<HttpResponse, OpsError>;

fn gateway_error(e: crate::service::GatewayError) -> OpsError {
    OpsError::Api(ApiError::from_gateway(e, true))
}

/// The caller's own phone from its client entry, when it has one (MFA applies).
fn admin_phone(state: &AppState, caller: &Caller) -> Result<Option<Phone>, OpsError> {
    let settings = state.gateway.settings();
    let Some(raw) = settings
        .clients
        .iter()
        .find(|c| c.name == caller.name)
        .and_then(|c| c.phone.as_deref())
    else {
        return Ok(None);
    };
    Phone::parse(raw, &settings.otp.default_country).map(Some).map_err(|e| {
        OpsError::Api(ApiError::Internal(anyhow::anyhow!(
            "clients.phone of {} is unusable: {e}",
            caller.name
        )))
    })
}

/// Whether the request's MFA token opens the logs for the caller: `Ok` when the caller needs
/// none or holds a valid one.
fn mfa_gate(state: &AppState, caller: &Caller, req: &HttpRequest) -> Result<(), OpsError> {
    if admin_phone(state, caller)?.is_none() {
        return Ok(());
    }
    let refuse = |why: &str| OpsError::refused(StatusCode::FORBIDDEN, "mfa_required", why);
    let token =
        req.headers().get(MFA_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            refuse("logs need a passed MFA check: POST /v1/admin/mfa/send, then /v1/admin/mfa/verify, then send X-Admin-MFA")
        })?;
    state.gateway.check_mfa(&caller.name, token).map_err(|e| refuse(&e.to_string()))
}

/// `GET /v1/admin/me`: who the token is and what the page may offer it.
#[utoipa::path(
    get,
    path = "/v1/admin/me",
    tag = "admin",
    responses(
        (status = 200, description = "The caller", body = super::openapi::AdminMe),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn me(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Answer {
    caller.require(Role::Admin)?;
    let mfa_required = admin_phone(&state, &caller)?.is_some();
    let mfa_ok = mfa_gate(&state, &caller, &req).is_ok();
    let database = state.gateway.has_database();
    Ok(HttpResponse::Ok().json(json!({
        "name": caller.name,
        "roles": caller.roles,
        "mfa_required": mfa_required,
        "mfa_ok": mfa_ok,
        "database": database,
        "can_set_secrets": database && state.registry.can_set_secrets(),
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// Where to send the test code, E.164.
    #[serde(default)]
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$", nullable = false, required = true)]
    phone: Option<String>,
}

/// `POST /v1/admin/providers/{name}/test`: a test OTP through that provider alone.
#[utoipa::path(
    post,
    path = "/v1/admin/providers/{name}/test",
    tag = "admin",
    params(("name" = String, Path, description = "The provider's name")),
    request_body = TestBody,
    responses(
        (status = 200, description = "Tried: `status` says whether the provider took it", body = super::openapi::TestSent),
        (status = "4XX", description = "Refused, no such provider (404), or it cannot carry to this number (422)", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn test_send(state: web::Data<AppState>, caller: Caller, name: web::Path<String>, body: web::Json<TestBody>) -> Answer {
    caller.require(Role::Admin)?;
    let raw = body.phone.as_deref().ok_or_else(|| OpsError::field("phone", "is required"))?;
    let phone = state.parse_phone(raw).map_err(|e| OpsError::Refused {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_phone",
        message: format!("phone: {e}"),
        field: Some("phone"),
    })?;
    let sent = match state.gateway.admin_test_send(&caller.name, name.trim(), phone).await {
        Ok(sent) => sent,
        Err(TestSendError::UnknownProvider(p)) => {
            return Err(OpsError::refused(
                StatusCode::NOT_FOUND,
                "provider_not_found",
                format!("no provider named `{p}`"),
            ))
        }
        Err(e @ TestSendError::CannotCarry { .. }) => {
            return Err(OpsError::Refused {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "no_route",
                message: e.to_string(),
                field: Some("phone"),
            })
        }
        Err(TestSendError::Gateway(e)) => return Err(gateway_error(e)),
    };
    Ok(HttpResponse::Ok().json(json!({
        "session_id": sent.session_id,
        "provider": sent.provider,
        "status": if sent.sent { "sent" } else { "failed" },
        "http_status": sent.http_status,
        "raw": sent.raw,
        "response_time_ms": sent.response_time_ms,
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The `session_id` the send returned.
    #[serde(default)]
    #[schema(format = Uuid, nullable = false, required = true)]
    session_id: Option<String>,
    /// The code: 4 to 10 digits.
    #[serde(default, alias = "otp")]
    #[schema(pattern = "^[0-9]{4,10}$", nullable = false, required = true)]
    code: Option<String>,
}

impl CodeBody {
    fn parse(&self) -> Result<(Uuid, &str), OpsError> {
        let id = self
            .session_id
            .as_deref()
            .ok_or_else(|| OpsError::field("session_id", "is required"))?;
        let id = Uuid::parse_str(id.trim()).map_err(|_| OpsError::field("session_id", "must be a UUID"))?;
        let code = self.code.as_deref().ok_or_else(|| OpsError::field("code", "is required"))?.trim();
        if !crate::otp::is_well_formed(code) {
            return Err(OpsError::field("code", "must be 4 to 10 digits"));
        }
        Ok((id, code))
    }
}

/// `POST /v1/admin/providers/{name}/test/verify`: checks a test send's code.
#[utoipa::path(
    post,
    path = "/v1/admin/providers/{name}/test/verify",
    tag = "admin",
    params(("name" = String, Path, description = "The provider's name")),
    request_body = CodeBody,
    responses(
        (status = 200, description = "Checked", body = super::openapi::TestVerified),
        (status = "4XX", description = "Refused, or no such test session", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn test_verify(state: web::Data<AppState>, caller: Caller, _name: web::Path<String>, body: web::Json<CodeBody>) -> Answer {
    caller.require(Role::Admin)?;
    let (id, code) = body.parse()?;
    let v = state
        .gateway
        .admin_test_verify(&caller.name, id, code)
        .await
        .map_err(gateway_error)?;
    Ok(HttpResponse::Ok().json(json!({ "status": v.status, "attempts_left": v.attempts_left, "raw": v.raw })))
}

/// `POST /v1/admin/mfa/send`: an OTP to the admin's own phone.
#[utoipa::path(
    post,
    path = "/v1/admin/mfa/send",
    tag = "admin",
    responses(
        (status = 200, description = "Sent to the admin's own phone", body = super::openapi::MfaSent),
        (status = "4XX", description = "Refused, or this client has no phone (409 `mfa_not_configured`)", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn mfa_send(state: web::Data<AppState>, caller: Caller) -> Answer {
    caller.require(Role::Admin)?;
    let phone = admin_phone(&state, &caller)?.ok_or_else(|| {
        OpsError::refused(
            StatusCode::CONFLICT,
            "mfa_not_configured",
            "this client has no `phone`; its logs need no MFA",
        )
    })?;
    let sent = state.gateway.send_mfa(&caller.name, phone).await.map_err(gateway_error)?;
    Ok(HttpResponse::Ok().json(json!({ "session_id": sent.session.id, "expires_at": sent.session.expires_at })))
}

/// `POST /v1/admin/mfa/verify`: the code of an MFA send, answered with a 15-minute token.
#[utoipa::path(
    post,
    path = "/v1/admin/mfa/verify",
    tag = "admin",
    request_body = CodeBody,
    responses(
        (status = 200, description = "Passed: a 15-minute token for the logs", body = super::openapi::MfaPassed),
        (status = "4XX", description = "Refused, a wrong code (400 `invalid_code`), or this client has no phone (409)", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn mfa_verify(state: web::Data<AppState>, caller: Caller, body: web::Json<CodeBody>) -> Answer {
    caller.require(Role::Admin)?;
    let phone = admin_phone(&state, &caller)?.ok_or_else(|| {
        OpsError::refused(
            StatusCode::CONFLICT,
            "mfa_not_configured",
            "this client has no `phone`; its logs need no MFA",
        )
    })?;
    let (id, code) = body.parse()?;
    match state
        .gateway
        .verify_mfa(&caller.name, &phone, id, code)
        .await
        .map_err(gateway_error)?
    {
        MfaCheck::Passed(p) => Ok(HttpResponse::Ok().json(json!({ "mfa_token": p.token, "expires_at": p.expires_at }))),
        MfaCheck::WrongCode { attempts_left } => Err(OpsError::Refused {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_code",
            message: format!("code: wrong code; {attempts_left} attempts left"),
            field: Some("code"),
        }),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only this number, E.164. An empty value is no filter, as for each of these.
    #[param(pattern = "^(|\\+[1-9][0-9]{7,14})$")]
    phone: Option<String>,
    /// Only this provider.
    #[param(
        pattern = "^$|^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 64
    )]
    provider: Option<String>,
    /// Only this attempt outcome or OTP event status.
    #[param(
        pattern = "^(|accepted|throttled|unavailable|misconfigured|rejected|timeout|sent|failed|unconfirmed|verified|wrong_code|expired|already_verified|exhausted|provider_unreachable|limited|not_found|error)$"
    )]
    outcome: Option<String>,
    /// Only this attempt or OTP event type.
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = "^(|otp|text|template|autogen|local|verify)$")]
    kind: Option<String>,
    /// From this time (RFC 3339).
    #[param(
        pattern = "^(|(19|20)[0-9]{2}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]))$"
    )]
    since: Option<String>,
    /// Before this time (RFC 3339), after `since`.
    #[param(
        pattern = "^(|(19|20)[0-9]{2}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]))$"
    )]
    until: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, at least 1 (larger than the maximum is clamped).
    #[param(pattern = "^(|[1-9][0-9]{0,8})$")]
    limit: Option<String>,
}

fn time_field(field: &'static str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, OpsError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| OpsError::field(field, "must be an RFC 3339 time such as 2026-01-31T09:00:00Z"))
        })
        .transpose()
}

fn one_of(field: &'static str, raw: Option<&str>, allowed: &[&str]) -> Result<Option<String>, OpsError> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
        Some(_) => Err(OpsError::field(field, format!("must be one of {}", allowed.join(", ")))),
    }
}

impl LogsQuery {
    fn filter(&self, state: &AppState) -> Result<LogFilter, OpsError> {
        let phone = match self.phone.as_deref().filter(|s| !s.is_empty()) {
            Some(raw) => Some(
                state
                    .parse_phone(raw)
                    .map_err(|e| OpsError::field("phone", e.to_string()))?
                    .e164()
                    .to_string(),
            ),
            None => None,
        };
        let provider = match self.provider.as_deref().filter(|s| !s.is_empty()) {
            Some(p) => Some(
                fields::identifier("provider", p, 64)
                    .map_err(|e| OpsError::field("provider", e.to_string()))?
                    .to_string(),
            ),
            None => None,
        };
        let since = time_field("since", self.since.as_deref())?;
        let until = time_field("until", self.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err(OpsError::field("until", "must be after since"));
            }
        }
        let outcome = one_of("outcome", self.outcome.as_deref(), &OUTCOMES)?;
        let kind = one_of("type", self.kind.as_deref(), &TYPES)?;
        Ok(LogFilter {
            phone,
            provider,
            source: only_source(outcome.as_deref(), kind.as_deref()),
            outcome,
            kind,
            since,
            until,
        })
    }

    fn limit(&self) -> Result<usize, OpsError> {
        match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(DEFAULT_LIMIT),
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n.min(MAX_LIMIT)),
                _ => Err(OpsError::field("limit", format!("must be a whole number from 1 to {MAX_LIMIT}"))),
            },
        }
    }
}

/// `GET /v1/admin/logs`: attempts and OTP events newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/admin/logs",
    tag = "admin",
    params(LogsQuery),
    responses(
        (status = 200, description = "A page of attempts and OTP events, newest first", body = super::openapi::LogPage),
        (status = "4XX", description = "Refused, or MFA needed first (the client has a phone)", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn logs(state: web::Data<AppState>, caller: Caller, req: HttpRequest, query: web::Query<LogsQuery>) -> Answer {
    caller.require(Role::Admin)?;
    mfa_gate(&state, &caller, &req)?;
    let filter = query.filter(&state)?;
    let limit = query.limit()?;
    let cursor = match query.cursor.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => Some(logs::decode_cursor(raw).ok_or_else(|| OpsError::field("cursor", "is not a cursor this gateway gave out"))?),
        None => None,
    };
    let page = state
        .gateway
        .admin_logs(&filter, cursor.as_ref(), limit)
        .await
        .map_err(gateway_error)?;
    let full = caller.has(Role::SuperAdmin);
    let country = &state.gateway.settings().otp.default_country;
    let items: Vec<_> = page.items.iter().map(|i| logs::item_json(i, full, country)).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_cursor": page.next.as_ref().map(logs::encode_cursor) })))
}

/// `GET /v1/admin/status`: each provider's breaker, cool-down, success rate and latency.
#[utoipa::path(
    get,
    operation_id = "provider_status",
    path = "/v1/admin/status",
    tag = "admin",
    responses(
        (status = 200, description = "Each provider's live state", body = super::openapi::ProviderStatus),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn status(state: web::Data<AppState>, caller: Caller) -> Answer {
    caller.require(Role::Admin)?;
    let registry = state.registry.snapshot();
    Ok(HttpResponse::Ok().json(json!({
        "version": registry.version,
        "providers": state.gateway.provider_status(&registry),
    })))
}
