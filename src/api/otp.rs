//! OTP routes: `POST /v1/otp/send`, `POST /v1/otp/verify`, and the seed aliases
//! (`/api/sms/sendOtp`, `/api/sms/verifyOtp`, `/otp/send`, `/otp/verify`) with the seed shapes.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{bounded, ApiError, AppState, Caller};
use crate::gateway::{OtpRequest, OtpSent, Verified};
use crate::otp;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendOtpBody {
    #[serde(alias = "phone_number", alias = "mobile")]
    phone: String,
    #[serde(default)]
    user_id: Option<String>,
    /// The user's name, for the caller's own records; not sent to providers.
    #[serde(default)]
    name: Option<String>,
    /// `login` (default), `step_up`, `phone_change`, or any configured purpose.
    #[serde(default)]
    purpose: Option<String>,
    /// A provider to try first.
    #[serde(default, alias = "provider_hint")]
    provider: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyOtpBody {
    session_id: String,
    #[serde(alias = "code")]
    otp: String,
}

async fn send(state: &AppState, caller: &Caller, body: SendOtpBody) -> Result<OtpSent, ApiError> {
    caller.require("send")?;
    let phone = state.parse_phone(&body.phone)?;
    let user_id = body
        .user_id
        .as_deref()
        .map(|u| bounded("user_id", u, 128))
        .transpose()?
        .map(str::to_string);
    if let Some(n) = &body.name {
        bounded("name", n, 128)?;
    }
    let purpose = bounded("purpose", body.purpose.as_deref().unwrap_or("login"), 32)?.to_string();
    let preferred_provider = body
        .provider
        .as_deref()
        .map(|p| bounded("provider", p, 64))
        .transpose()?
        .map(str::to_string);
    let req = OtpRequest {
        phone,
        user_id,
        purpose,
        preferred_provider,
    };
    state
        .gateway
        .send_otp(req)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))
}

async fn verify(
    state: &AppState,
    caller: &Caller,
    body: VerifyOtpBody,
) -> Result<Verified, ApiError> {
    caller.require("send")?;
    let id = Uuid::parse_str(body.session_id.trim())
        .map_err(|_| ApiError::InvalidRequest("`session_id` must be a UUID".into()))?;
    let code = body.otp.trim();
    if !otp::is_well_formed(code) {
        return Err(ApiError::InvalidOtp("`otp` must be 4 to 10 digits".into()));
    }
    state
        .gateway
        .verify_otp(id, code)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))
}

fn sent_message(sent: &OtpSent) -> &'static str {
    if sent.confirmed {
        "OTP sent"
    } else {
        "OTP sent; the provider did not confirm delivery, so it may be delayed"
    }
}

fn verified_message(v: &Verified) -> &'static str {
    match (v.verified, v.attempts_left) {
        (true, _) => "OTP verified",
        (false, 0) => "wrong code; no attempts left",
        (false, _) => "wrong code",
    }
}

pub async fn send_v1(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<SendOtpBody>,
) -> Result<HttpResponse, ApiError> {
    let sent = send(&state, &caller, body.into_inner()).await?;
    let mut out = json!({
        "session_id": sent.session.id,
        "status": sent.session.status,
        "message": sent_message(&sent),
        "created_at": sent.session.created_at,
        "expires_at": sent.session.expires_at,
    });
    if !sent.confirmed {
        out["delivery"] = json!("unconfirmed");
    }
    Ok(HttpResponse::Ok().json(out))
}

pub async fn send_seed(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<SendOtpBody>,
) -> Result<HttpResponse, ApiError> {
    let sent = send(&state, &caller, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "session_id": sent.session.id,
        "status": sent.session.status,
        "message": sent_message(&sent),
        "response_time_ms": sent.response_time_ms,
    })))
}

pub async fn verify_v1(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<VerifyOtpBody>,
) -> Result<HttpResponse, ApiError> {
    let v = verify(&state, &caller, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "verified": v.verified,
        "status": v.status,
        "message": verified_message(&v),
        "attempts_left": v.attempts_left,
    })))
}

pub async fn verify_seed(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<VerifyOtpBody>,
) -> Result<HttpResponse, ApiError> {
    let v = verify(&state, &caller, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "verified": v.verified,
        "status": v.status,
        "message": verified_message(&v),
        "response_time_ms": v.response_time_ms,
    })))
}
