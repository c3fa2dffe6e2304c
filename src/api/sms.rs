//! Message routes: `POST /v1/sms/send` (transactional text), `POST /v1/sms/template`, and the
//! seed aliases `/sms/send-transactional` and `/api/sms/sendTemplate`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{fields, idempotency};
use super::{ApiError, AppState, Caller, Shape, Speaks};
use crate::config::Role;
use crate::limits::Claim;
use crate::messages::{MessageRequest, MessageSent, MessageType};
use crate::providers::MessageBody;

/// Longest text accepted (Twilio's limit; about ten SMS parts).
const MAX_TEXT: usize = 1600;
const MAX_VARS: usize = 20;
const MAX_VAR: usize = 500;

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    /// Destination, E.164 (a national number of the default country is accepted too).
    #[serde(alias = "phone")]
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    to: String,
    /// The message, at most 1600 characters; line breaks and tabs are kept, other control
    /// characters refused.
    #[schema(
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$",
        max_length = 1600
    )]
    text: String,
    /// The calling app's own id of the user.
    #[serde(default)]
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 128
    )]
    user_id: Option<String>,
    /// The end user's IP address, for the per-IP limit (IPv4 shown; IPv6 is accepted too).
    #[serde(default)]
    #[schema(pattern = "^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$")]
    client_ip: Option<String>,
    /// `transactional` (the default) or `promotional`.
    #[serde(default, rename = "type")]
    kind: MessageType,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// Destination, E.164 (a national number of the default country is accepted too).
    #[serde(alias = "phone")]
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    to: String,
    /// The provider-side template's name.
    #[serde(alias = "template_name")]
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 100
    )]
    template: String,
    /// The template's values, in order (at most 20, each at most 500 characters).
    #[serde(default)]
    #[schema(max_items = 20)]
    vars: Vec<String>,
    /// The calling app's own id of the user.
    #[serde(default)]
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 128
    )]
    user_id: Option<String>,
    /// The end user's IP address, for the per-IP limit (IPv4 shown; IPv6 is accepted too).
    #[serde(default)]
    #[schema(pattern = "^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$")]
    client_ip: Option<String>,
    /// `transactional` (the default) or `promotional`.
    #[serde(default, rename = "type")]
    kind: MessageType,
}

/// Where a message goes and for whom, as the request named it.
struct Recipient<'a> {
    to: &'a str,
    user_id: Option<&'a str>,
    client_ip: Option<&'a str>,
    kind: MessageType,
}

/// Validates what every message shares and sends it.
async fn send(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    recipient: Recipient<'_>,
    body: MessageBody,
    shape: Shape,
    claim: Option<Arc<Claim>>,
) -> idempotency::Answer {
    caller.require(Role::Send)?;
    let to = state.parse_phone(recipient.to)?;
    let user_id = recipient
        .user_id
        .map(|u| fields::identifier("user_id", u, 128))
        .transpose()?
        .map(str::to_string);
    let client_ip = state.client_ip(req, recipient.client_ip)?;
    let request = MessageRequest {
        to,
        body,
        kind: recipient.kind,
        user_id,
        client: caller.name.clone(),
        client_ip,
        claim,
    };
    let sent = state
        .gateway
        .send_message(request)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))?;
    Ok((StatusCode::ACCEPTED, accepted_json(&sent, shape)))
}

fn accepted_json(sent: &MessageSent, shape: Shape) -> Value {
    let status = if sent.confirmed { "accepted" } else { "unconfirmed" };
    let mut out = json!({ "message_id": sent.message_id, "status": status, "provider": sent.provider });
    if let (Some(parts), Shape::V1) = (sent.parts, shape) {
        out["parts"] = json!(parts);
    }
    if shape == Shape::Seed {
        out["message"] = json!(if sent.confirmed {
            "message accepted by the provider"
        } else {
            "the provider did not confirm; the message may still be delivered"
        });
        out["response_time_ms"] = json!(sent.response_time_ms);
    }
    out
}

/// Sends a transactional text through the first provider that takes it.
#[utoipa::path(
    post,
    path = "/v1/sms/send",
    tag = "sms",
    request_body = TextBody,
    params(super::openapi::IdempotencyKey),
    responses(
        (status = 202, description = "Accepted by a provider (or sent without its confirmation)", body = super::openapi::MessageAccepted),
        (status = "4XX", description = "Refused; nothing was sent", body = super::openapi::ErrorBody),
        (status = "5XX", description = "Every provider failed or the store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn text_route<S: Speaks>(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<TextBody>,
) -> Result<HttpResponse, ApiError> {
    let (state, caller, req, body) = (&state, &caller, &req, &*body);
    idempotency::once(state, caller, req, body, move |claim| async move {
        let text = fields::text("text", &body.text, MAX_TEXT)?.to_string();
        let recipient = Recipient {
            to: &body.to,
            user_id: body.user_id.as_deref(),
            client_ip: body.client_ip.as_deref(),
            kind: body.kind,
        };
        send(state, caller, req, recipient, MessageBody::Text { text }, S::SHAPE, claim).await
    })
    .await
}

/// Sends a provider-side template with its values.
#[utoipa::path(
    post,
    path = "/v1/sms/template",
    tag = "sms",
    request_body = TemplateBody,
    params(super::openapi::IdempotencyKey),
    responses(
        (status = 202, description = "Accepted by a provider (or sent without its confirmation)", body = super::openapi::MessageAccepted),
        (status = "4XX", description = "Refused; nothing was sent", body = super::openapi::ErrorBody),
        (status = "5XX", description = "Every provider failed or the store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn template_route<S: Speaks>(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<TemplateBody>,
) -> Result<HttpResponse, ApiError> {
    let (state, caller, req, body) = (&state, &caller, &req, &*body);
    idempotency::once(state, caller, req, body, move |claim| async move {
        let name = fields::identifier("template", &body.template, 100)?.to_string();
        if body.vars.len() > MAX_VARS {
            return Err(ApiError::InvalidRequest(format!("`vars` may hold at most {MAX_VARS} values")));
        }
        for (i, v) in body.vars.iter().enumerate() {
            fields::var(&format!("vars[{i}]"), v, MAX_VAR)?;
        }
        let message = MessageBody::Template {
            name,
            vars: body.vars.clone(),
        };
        let recipient = Recipient {
            to: &body.to,
            user_id: body.user_id.as_deref(),
            client_ip: body.client_ip.as_deref(),
            kind: body.kind,
        };
        send(state, caller, req, recipient, message, S::SHAPE, claim).await
    })
    .await
}
