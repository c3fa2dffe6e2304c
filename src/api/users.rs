//! Step-up contacts: `GET` and `PUT /v1/users/{user_id}/contact` over `user_contact_settings`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::fields;
use super::{ApiError, AppState, Caller};
use crate::config::Role;
use crate::store::Contact;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// The user's phone for step-up codes, E.164 (a national number of the default country is
    /// accepted too); absent or null clears it.
    #[serde(default)]
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    phone: Option<String>,
    /// Whether step-up by SMS is on for this user.
    #[serde(default)]
    otp_enabled: bool,
    /// A provider to try first for this user.
    #[serde(default)]
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 64
    )]
    preferred_provider: Option<String>,
}

fn user_id(path: &str) -> Result<String, ApiError> {
    Ok(fields::identifier("user_id", path, 128)?.to_string())
}

/// The user's step-up contact (empty when none is stored).
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/contact",
    tag = "users",
    params(("user_id" = String, Path, description = "The calling app's own user id", pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$", max_length = 128)),
    responses(
        (status = 200, description = "The contact", body = crate::store::Contact),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_contact(state: web::Data<AppState>, caller: Caller, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Send)?;
    let uid = user_id(&path)?;
    let contact = state
        .gateway
        .contact(&caller.tenant(), &uid)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))?;
    Ok(HttpResponse::Ok().json(contact))
}

/// Stores the user's step-up contact.
#[utoipa::path(
    put,
    path = "/v1/users/{user_id}/contact",
    tag = "users",
    params(("user_id" = String, Path, description = "The calling app's own user id", pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$", max_length = 128)),
    request_body = ContactBody,
    responses(
        (status = 200, description = "The contact as stored", body = crate::store::Contact),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_contact(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<ContactBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Send)?;
    let uid = user_id(&path)?;
    let body = body.into_inner();
    let phone = body
        .phone
        .as_deref()
        .map(|p| state.parse_phone(p))
        .transpose()?
        .map(|p| p.e164().to_string());
    let preferred_provider = body
        .preferred_provider
        .as_deref()
        .map(|p| fields::identifier("preferred_provider", p, 64))
        .transpose()?
        .map(str::to_string);
    let contact = Contact {
        client: caller.name.clone(),
        user_id: uid,
        phone,
        otp_enabled: body.otp_enabled,
        preferred_provider,
    };
    let contact = state
        .gateway
        .put_contact(&caller.tenant(), contact)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))?;
    Ok(HttpResponse::Ok().json(contact))
}
