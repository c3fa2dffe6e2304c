//! Message routes: `POST /v1/sms/send` (transactional text), `POST /v1/sms/template`, and the
//! seed aliases `/sms/send-transactional` and `/api/sms/sendTemplate`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{fields, idempotency};
use super::{ApiError, AppState, Caller, Shape, Speaks};
use crate::config::Role;
use crate::messages::{MessageRequest, MessageSent, MessageType};
use crate::providers::MessageBody;

/// Longest text accepted (Twilio's limit; about ten SMS parts).
const MAX_TEXT: usize = 1600;
const MAX_VARS: usize = 20;
const MAX_VAR: usize = 500;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    #[serde(alias = "phone")]
    to: String,
    text: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    client_ip: Option<String>,
    /// `transactional` (the default) or `promotional`.
    #[serde(default, rename = "type")]
    kind: MessageType,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    #[serde(alias = "phone")]
    to: String,
    #[serde(alias = "template_name")]
    template: String,
    #[serde(default)]
    vars: Vec<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
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

pub async fn text_route<S: Speaks>(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<TextBody>,
) -> Result<HttpResponse, ApiError> {
    idempotency::once(&state, &caller, &req, &*body, || async {
        let text = fields::text("text", &body.text, MAX_TEXT)?.to_string();
        let recipient = Recipient {
            to: &body.to,
            user_id: body.user_id.as_deref(),
            client_ip: body.client_ip.as_deref(),
            kind: body.kind,
        };
        send(&state, &caller, &req, recipient, MessageBody::Text { text }, S::SHAPE).await
    })
    .await
}

pub async fn template_route<S: Speaks>(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<TemplateBody>,
) -> Result<HttpResponse, ApiError> {
    idempotency::once(&state, &caller, &req, &*body, || async {
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
        send(&state, &caller, &req, recipient, message, S::SHAPE).await
    })
    .await
}
