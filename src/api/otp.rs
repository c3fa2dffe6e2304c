//! OTP routes: `POST /v1/otp/send`, `POST /v1/otp/verify`, `POST /v1/otp/resend`,
//! `GET /v1/otp/sessions/{id}`, and the
//! seed aliases (`/api/sms/sendOtp`, `/api/sms/verifyOtp`, `/otp/send`, `/otp/verify`) with the
//! seed shapes.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::fields;
use super::idempotency::{self, Answer};
use super::{ApiError, AppState, Caller, Shape, Speaks};
use crate::config::Role;
use crate::limits::Claim;
use crate::otp::{self, OtpRequest, OtpSent, Recipient, Resent, Verified};

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendOtpBody {
    /// Destination, E.164 (a national number of the default country is accepted too); may be
    /// left out when `user_id` has a stored phone.
    #[serde(default, alias = "phone_number", alias = "mobile")]
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    phone: Option<String>,
    /// The calling app's own id of the user (step-up: their stored phone is used).
    #[serde(default)]
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 128
    )]
    user_id: Option<String>,
    /// The user's name, for the caller's own records; not sent to providers.
    #[serde(default)]
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 128
    )]
    name: Option<String>,
    /// `login` (default), `step_up`, `phone_change`, or any configured purpose.
    #[serde(default)]
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 32
    )]
    purpose: Option<String>,
    /// A provider to try first.
    #[serde(default, alias = "provider_hint")]
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 64
    )]
    provider: Option<String>,
    /// The end user's IP address, for the per-IP limit (IPv4 shown; IPv6 is accepted too).
    #[serde(default)]
    #[schema(pattern = "^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$")]
    client_ip: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyOtpBody {
    /// The `session_id` the send returned.
    #[schema(format = Uuid)]
    session_id: String,
    /// The code the user typed: 4 to 10 digits.
    #[serde(alias = "code")]
    #[schema(pattern = "^[0-9]{4,10}$")]
    otp: String,
}

async fn send(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    body: &SendOtpBody,
    claim: Option<Arc<Claim>>,
) -> Result<OtpSent, ApiError> {
    caller.require(Role::Send)?;
    let user_id = body
        .user_id
        .as_deref()
        .map(|u| fields::identifier("user_id", u, 128))
        .transpose()?
        .map(str::to_string);
    if let Some(n) = &body.name {
        fields::identifier("name", n, 128)?;
    }
    let purpose = fields::identifier("purpose", body.purpose.as_deref().unwrap_or("login"), 32)?.to_string();
    let preferred_provider = body
        .provider
        .as_deref()
        .map(|p| fields::identifier("provider", p, 64))
        .transpose()?
        .map(str::to_string);
    let to = match (&body.phone, &user_id) {
        (Some(raw), _) => Recipient::Phone(state.parse_phone(raw)?),
        // Step-up: the user's stored phone, and their preferred provider first.
        (None, Some(uid)) => Recipient::StoredPhoneOf(uid.clone()),
        (None, None) => {
            return Err(ApiError::InvalidRequest(
                "`phone` (or a `user_id` with a stored phone) is required".into(),
            ))
        }
    };
    let client_ip = state.client_ip(req, body.client_ip.as_deref())?;
    let otp_req = OtpRequest {
        to,
        user_id,
        purpose,
        preferred_provider,
        client: caller.name.clone(),
        client_ip,
        claim,
    };
    state
        .gateway
        .send_otp(otp_req)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))
}

fn sent_json(sent: &OtpSent, shape: Shape) -> Value {
    let message = if sent.confirmed {
        "OTP sent"
    } else {
        "OTP sent; the provider did not confirm delivery, so it may be delayed"
    };
    let mut out = json!({ "session_id": sent.session.id, "status": sent.session.status, "message": message });
    match shape {
        Shape::Seed => out["response_time_ms"] = json!(sent.response_time_ms),
        Shape::V1 => {
            out["created_at"] = json!(sent.session.created_at);
            out["expires_at"] = json!(sent.session.expires_at);
            out["resend_after_seconds"] = json!(sent.resend_after_secs.unwrap_or(0));
            if !sent.confirmed {
                out["delivery"] = json!("unconfirmed");
            }
        }
    }
    out
}

async fn verify(state: &AppState, caller: &Caller, body: &VerifyOtpBody, shape: Shape) -> Answer {
    caller.require(Role::Send)?;
    let id = Uuid::parse_str(body.session_id.trim()).map_err(|_| ApiError::InvalidRequest("`session_id` must be a UUID".into()))?;
    let code = body.otp.trim();
    if !otp::is_well_formed(code) {
        return Err(ApiError::InvalidOtp("`otp` must be 4 to 10 digits".into()));
    }
    let v: Verified = state
        .gateway
        .verify_otp(&caller.tenant(), id, code)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))?;
    let message = match (v.verified, v.attempts_left) {
        (true, _) => "OTP verified",
        (false, 0) => "wrong code; no attempts left",
        (false, _) => "wrong code",
    };
    let mut out = json!({ "verified": v.verified, "status": v.status, "message": message });
    match shape {
        Shape::Seed => out["response_time_ms"] = json!(v.response_time_ms),
        Shape::V1 => {
            out["attempts_left"] = json!(v.attempts_left);
            if let Some(token) = v.token {
                out["verification_token"] = json!(token);
            }
        }
    }
    Ok((StatusCode::OK, out))
}

/// Opens an OTP session and sends its code through the first provider that takes it.
#[utoipa::path(
    post,
    path = "/v1/otp/send",
    tag = "otp",
    request_body = SendOtpBody,
    params(super::openapi::IdempotencyKey),
    responses(
        (status = 200, description = "Sent (or sent without the provider's confirmation)", body = super::openapi::OtpSent),
        (status = "4XX", description = "Refused; nothing was sent", body = super::openapi::ErrorBody),
        (status = "5XX", description = "Every provider failed or the store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send_route<S: Speaks>(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<SendOtpBody>,
) -> Result<HttpResponse, ApiError> {
    let (state, caller, req, body) = (&state, &caller, &req, &*body);
    idempotency::once(state, caller, req, body, move |claim| async move {
        let sent = send(state, caller, req, body, claim).await?;
        Ok((StatusCode::OK, sent_json(&sent, S::SHAPE)))
    })
    .await
}

/// Checks a code against its session; a wrong code spends one attempt.
#[utoipa::path(
    post,
    path = "/v1/otp/verify",
    tag = "otp",
    request_body = VerifyOtpBody,
    responses(
        (status = 200, description = "Checked: `verified` tells whether the code was right", body = super::openapi::OtpVerified),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The provider holding the code could not be asked", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn verify_route<S: Speaks>(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<VerifyOtpBody>,
) -> Result<HttpResponse, ApiError> {
    let (status, json) = verify(&state, &caller, &body, S::SHAPE).await?;
    Ok(HttpResponse::build(status).json(json))
}

/// `GET /v1/otp/sessions/{id}`: the session's status, for an app that lost track of it.
#[utoipa::path(
    get,
    path = "/v1/otp/sessions/{id}",
    tag = "otp",
    params(("id" = uuid::Uuid, Path, description = "The session id")),
    responses(
        (status = 200, description = "The session", body = super::openapi::SessionState),
        (status = "4XX", description = "Refused, or no such session for this app", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn session_status(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Send)?;
    let id = Uuid::parse_str(path.trim()).map_err(|_| ApiError::InvalidRequest("the session id must be a UUID".into()))?;
    let session = state
        .gateway
        .session(&caller.tenant(), id)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))?;
    Ok(HttpResponse::Ok().json(json!({
        "session_id": session.id,
        "status": session.status,
        "purpose": session.purpose,
        "user_id": session.user_id,
        "attempts_left": session.max_attempts.saturating_sub(session.attempts),
        "created_at": session.created_at,
        "expires_at": session.expires_at,
        "verified_at": session.verified_at,
    })))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendOtpBody {
    /// The `session_id` the send returned.
    #[schema(format = Uuid)]
    session_id: String,
    /// The end user's IP address, for the per-IP limit (IPv4 shown; IPv6 is accepted too).
    #[serde(default)]
    #[schema(pattern = "^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$")]
    client_ip: Option<String>,
}

/// `POST /v1/otp/resend`: the session's code again, through a provider that has not carried it.
#[utoipa::path(
    post,
    path = "/v1/otp/resend",
    tag = "otp",
    request_body = ResendOtpBody,
    responses(
        (status = 200, description = "Resent (or resent without the provider's confirmation)", body = super::openapi::OtpResent),
        (status = "4XX", description = "Refused: no such session, not pending, too soon, or no sends left", body = super::openapi::ErrorBody),
        (status = "5XX", description = "Every provider failed or the store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn resend_route(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<ResendOtpBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Send)?;
    let id = Uuid::parse_str(body.session_id.trim()).map_err(|_| ApiError::InvalidRequest("`session_id` must be a UUID".into()))?;
    let client_ip = state.client_ip(&req, body.client_ip.as_deref())?;
    let r: Resent = state
        .gateway
        .resend_otp(&caller.tenant(), id, client_ip)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))?;
    let mut out = json!({
        "session_id": r.session.id,
        "status": r.session.status,
        "message": if r.confirmed { "OTP resent" } else { "OTP resent; the provider did not confirm delivery, so it may be delayed" },
        "attempt": r.attempt,
        "max_sends": r.max_sends,
        "resend_after_seconds": r.resend_after_secs,
        "expires_at": r.session.expires_at,
    });
    if !r.confirmed {
        out["delivery"] = json!("unconfirmed");
    }
    Ok(HttpResponse::Ok().json(out))
}
