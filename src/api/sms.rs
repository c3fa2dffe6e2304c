//! Message routes: `POST /v1/sms/send` (transactional text), `POST /v1/sms/template`, and the
//! seed aliases `/sms/send-transactional` and `/api/sms/sendTemplate`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{bounded, ApiError, AppState, Caller};
use crate::gateway::MessageSent;
use crate::providers::MessageBody;

/// Longest text accepted (Twilio's limit; about ten SMS parts).
const MAX_TEXT: usize = 1600;
const MAX_VARS: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    #[serde(alias = "phone")]
    to: String,
    text: String,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
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
}

async fn send_text(
    state: &AppState,
    caller: &Caller,
    body: TextBody,
) -> Result<MessageSent, ApiError> {
    caller.require("send")?;
    let to = state.parse_phone(&body.to)?;
    let text = bounded("text", &body.text, MAX_TEXT)?.to_string();
    let user_id = body
        .user_id
        .as_deref()
        .map(|u| bounded("user_id", u, 128))
        .transpose()?
        .map(str::to_string);
    state
        .gateway
        .send_message(to, MessageBody::Text { text }, user_id)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))
}

async fn send_template(
    state: &AppState,
    caller: &Caller,
    body: TemplateBody,
) -> Result<MessageSent, ApiError> {
    caller.require("send")?;
    let to = state.parse_phone(&body.to)?;
    let name = bounded("template", &body.template, 100)?.to_string();
    if body.vars.len() > MAX_VARS {
        return Err(ApiError::InvalidRequest(format!(
            "`vars` may hold at most {MAX_VARS} values"
        )));
    }
    if body.vars.iter().any(|v| v.chars().count() > 500) {
        return Err(ApiError::InvalidRequest(
            "each of `vars` must be at most 500 characters".into(),
        ));
    }
    let user_id = body
        .user_id
        .as_deref()
        .map(|u| bounded("user_id", u, 128))
        .transpose()?
        .map(str::to_string);
    let body = MessageBody::Template {
        name,
        vars: body.vars,
    };
    state
        .gateway
        .send_message(to, body, user_id)
        .await
        .map_err(|e| ApiError::from_gateway(e, caller.is_admin()))
}

fn accepted_v1(sent: &MessageSent) -> HttpResponse {
    HttpResponse::Accepted().json(json!({
        "message_id": sent.message_id,
        "status": if sent.confirmed { "accepted" } else { "unconfirmed" },
        "provider": sent.provider,
    }))
}

fn accepted_seed(sent: &MessageSent) -> HttpResponse {
    HttpResponse::Accepted().json(json!({
        "message_id": sent.message_id,
        "status": if sent.confirmed { "accepted" } else { "unconfirmed" },
        "message": if sent.confirmed { "message accepted by the provider" } else { "the provider did not confirm; the message may still be delivered" },
        "provider": sent.provider,
        "response_time_ms": sent.response_time_ms,
    }))
}

pub async fn send_text_v1(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<TextBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(accepted_v1(
        &send_text(&state, &caller, body.into_inner()).await?,
    ))
}

pub async fn send_text_seed(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<TextBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(accepted_seed(
        &send_text(&state, &caller, body.into_inner()).await?,
    ))
}

pub async fn send_template_v1(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<TemplateBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(accepted_v1(
        &send_template(&state, &caller, body.into_inner()).await?,
    ))
}

pub async fn send_template_seed(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<TemplateBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(accepted_seed(
        &send_template(&state, &caller, body.into_inner()).await?,
    ))
}
