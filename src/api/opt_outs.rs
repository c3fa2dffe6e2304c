//! Opt-out routes: `POST /v1/opt-outs` (any sending app), `GET` and `DELETE /v1/opt-outs`
//! (admins: the list spans every app), and Twilio's inbound-message webhook
//! `POST /v1/webhooks/twilio/inbound`, where a STOP reply opts the sender out.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::campaigns::Failure;
use super::{ApiError, AppState, Caller};
use crate::campaigns::twilio_inbound::{self, Keyword};
use crate::campaigns::OPT_OUT_SCOPES;
use crate::config::Role;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutBody {
    /// The number, E.164.
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    phone: String,
    /// `promotional` (the default) or `all`.
    #[serde(default)]
    #[schema(pattern = "^(promotional|all)$")]
    scope: Option<String>,
}

fn scope(given: Option<&str>) -> Result<&str, ApiError> {
    let s = given.unwrap_or("promotional");
    OPT_OUT_SCOPES
        .iter()
        .find(|k| **k == s)
        .copied()
        .ok_or_else(|| ApiError::InvalidRequest("`scope` must be promotional or all".into()))
}

/// `POST /v1/opt-outs {phone, scope?}`: 201 when new, 200 when the number already had it.
#[utoipa::path(
    post,
    operation_id = "add_opt_out",
    path = "/v1/opt-outs",
    tag = "opt-outs",
    request_body = OptOutBody,
    responses(
        (status = 201, description = "Opted out", body = super::openapi::OptOut),
        (status = 200, description = "The number already had this opt-out", body = super::openapi::OptOut),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn add(state: web::Data<AppState>, caller: Caller, body: web::Json<OptOutBody>) -> Result<HttpResponse, Failure> {
    caller.require(Role::Send)?;
    let phone = state.parse_phone(&body.phone)?;
    let scope = scope(body.scope.as_deref())?;
    let added = state
        .gateway
        .add_opt_out(&phone, scope, "api")
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let answer = json!({ "phone": phone.e164(), "scope": scope, "created": added });
    Ok(if added { HttpResponse::Created() } else { HttpResponse::Ok() }.json(answer))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// The number, E.164.
    #[param(pattern = "^\\+[1-9][0-9]{7,14}$")]
    phone: String,
    /// `promotional` or `all`; every scope when absent.
    #[serde(default)]
    #[param(pattern = "^(promotional|all)$")]
    scope: Option<String>,
}

/// `DELETE /v1/opt-outs?phone=…[&scope=…]`: every scope unless one is named.
#[utoipa::path(
    delete,
    operation_id = "remove_opt_out",
    path = "/v1/opt-outs",
    tag = "opt-outs",
    params(RemoveQuery),
    responses(
        (status = 200, description = "Removed", body = super::openapi::OptOutRemoved),
        (status = "4XX", description = "Refused, or the number has no such opt-out (404)", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove(state: web::Data<AppState>, caller: Caller, q: web::Query<RemoveQuery>) -> Result<HttpResponse, Failure> {
    caller.require(Role::Admin)?;
    let phone = state.parse_phone(&q.phone)?;
    let scope = q.scope.as_deref().map(|s| scope(Some(s))).transpose()?;
    let removed = state
        .gateway
        .remove_opt_out(&phone, scope)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    if removed == 0 {
        return Err(Failure::Own {
            status: actix_web::http::StatusCode::NOT_FOUND,
            code: "opt_out_not_found",
            message: "this number has no such opt-out".into(),
            extra: serde_json::Value::Null,
        });
    }
    Ok(HttpResponse::Ok().json(json!({ "phone": phone.e164(), "removed": removed })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this number, E.164.
    #[serde(default)]
    #[param(pattern = "^\\+[1-9][0-9]{7,14}$")]
    phone: Option<String>,
    /// The `next_after` of the previous page.
    #[serde(default)]
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100; larger is clamped).
    #[serde(default, deserialize_with = "super::fields::page_size")]
    #[param(minimum = 0)]
    limit: Option<usize>,
}

/// `GET /v1/opt-outs[?phone=…][&after=…][&limit=…]`, ordered by number.
#[utoipa::path(
    get,
    operation_id = "list_opt_outs",
    path = "/v1/opt-outs",
    tag = "opt-outs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of opt-outs", body = super::openapi::OptOutPage),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller, q: web::Query<ListQuery>) -> Result<HttpResponse, Failure> {
    caller.require(Role::Admin)?;
    let phone = q.phone.as_deref().map(|p| state.parse_phone(p)).transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let page = state
        .gateway
        .opt_outs(phone.as_ref(), q.after.as_deref(), limit)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let next = (page.len() == limit).then(|| page.last().map(|o| o.phone.clone())).flatten();
    Ok(HttpResponse::Ok().json(json!({ "opt_outs": page, "next_after": next })))
}

/// `POST /v1/webhooks/twilio/inbound`: a reply to one of our numbers. Refused with 403 unless
/// `X-Twilio-Signature` signs the full URL and the form under the Twilio auth token; a STOP
/// reply opts the sender out of promotional messages, START opts them back in.
#[utoipa::path(
    post,
    path = "/v1/webhooks/twilio/inbound",
    tag = "webhooks",
    request_body(content = super::openapi::TwilioInbound, content_type = "application/x-www-form-urlencoded"),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the URL and the form")),
    responses(
        (status = 200, description = "Taken: an empty TwiML answer", body = String, content_type = "text/xml"),
        (status = "4XX", description = "Not signed by Twilio (403), or no Twilio auth token configured (404)", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    )
)]
pub async fn twilio_inbound(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let gw = &state.gateway;
    let count = |result: &str| gw.metrics().inbound_messages.with_label_values(&["twilio", result]).inc();
    let Some(token) = state.twilio_inbound_token.as_ref() else {
        return Err(ApiError::RouteNotFound.into());
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let signature = req.headers().get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let url = match &gw.settings().campaigns.public_base_url {
        Some(base) => format!("{}{}", base.trim_end_matches('/'), req.uri()),
        None => {
            let info = req.connection_info();
            format!("{}://{}{}", info.scheme(), info.host(), req.uri())
        }
    };
    if signature.is_empty() || !twilio_inbound::signature_valid(token.expose_secret(), &url, &params, signature) {
        count("refused");
        tracing::warn!("Twilio inbound webhook refused: missing or wrong X-Twilio-Signature");
        return Err(Failure::Own {
            status: actix_web::http::StatusCode::FORBIDDEN,
            code: "invalid_signature",
            message: "X-Twilio-Signature is missing or does not sign this request".into(),
            extra: serde_json::Value::Null,
        });
    }
    let field = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let from = field("From").map(|f| state.parse_phone(f));
    let result = match (field("Body").and_then(twilio_inbound::keyword), from) {
        (Some(Keyword::Stop), Some(Ok(phone))) => {
            gw.add_opt_out(&phone, "promotional", "twilio_inbound")
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
            "opted_out"
        }
        (Some(Keyword::Start), Some(Ok(phone))) => {
            gw.remove_opt_out(&phone, Some("promotional"))
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
            "opted_in"
        }
        _ => "ignored",
    };
    count(result);
    // An empty TwiML answer: Twilio sends no reply of ours (it answers STOP itself).
    Ok(HttpResponse::Ok()
        .content_type("text/xml")
        .body("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"))
}
