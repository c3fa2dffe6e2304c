//! Hook routes: `POST /v1/hooks/supabase/send-sms`, `POST /v1/hooks/kratos/sms` and
//! `POST /v1/hooks/keycloak/sms`. Each checks its sender's signature or credentials on the raw
//! body (`hooks`), reads the payload, runs one delivery at most once per retried call, and
//! answers in the shape its sender reads. Nothing is sent for a request that fails its check.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::hooks::{keycloak, kratos, supabase, Credentials, Hook, Signed};
use crate::limits::{IdempotencyError, Once, Replayable};
use crate::otp::{ExternalSender, ExternalSent};
use crate::phone::Phone;
use crate::service::GatewayError;

/// Largest Supabase hook body read: GoTrue sends the whole user object, whose metadata can be far
/// larger than an API request.
pub const SUPABASE_MAX_BODY: usize = 256 * 1024;

/// What a delivery came to, shaped for its hook when answered or replayed.
struct Answer {
    hook: Hook,
    result: Result<ExternalSent, ApiError>,
}

impl Answer {
    fn new(hook: Hook, result: Result<ExternalSent, GatewayError>) -> Self {
        let result = result.map_err(|e| ApiError::from_gateway(e, false));
        // The sender sees a stable code only; the cause goes to the log (it holds no code).
        if let Err(ApiError::Internal(cause)) = &result {
            tracing::error!(hook = hook.as_str(), error = ?cause, "a hook delivery failed");
        }
        Self { hook, result }
    }

    /// The `result` label of `smsgate_hook_requests_total`.
    fn label(&self) -> &'static str {
        match &self.result {
            Ok(sent) if sent.confirmed => "sent",
            Ok(_) => "unconfirmed",
            Err(e) if e.status_code().is_server_error() => "failed",
            Err(_) => "refused",
        }
    }

    fn response(&self) -> (StatusCode, Value) {
        match (&self.result, self.hook) {
            // Supabase reads 200 `{}` as sent (an empty body is a failure) and a 200 with
            // `error` as a refusal shown to the user with `http_code`.
            (Ok(_), Hook::Supabase) => (StatusCode::OK, json!({})),
            (Err(e), Hook::Supabase) => (StatusCode::OK, supabase_error(e.status_code(), &e.body()["message"])),
            // Kratos counts any 2xx as sent and requeues anything else; Keycloak logs it.
            (Ok(sent), _) => (
                StatusCode::OK,
                json!({ "message_id": sent.message_id, "status": if sent.confirmed { "accepted" } else { "unconfirmed" }, "provider": sent.provider }),
            ),
            (Err(e), _) => (e.status_code(), e.body()),
        }
    }
}

impl Replayable for Answer {
    fn stored(&self) -> (u16, Value) {
        let (status, body) = self.response();
        (status.as_u16(), body)
    }

    /// A refusal worth retrying (rate limit, every provider down before any was reached) lets
    /// the sender's retry run; once a provider may have sent the code, a retry replays.
    fn releases_key(&self) -> bool {
        match &self.result {
            Ok(_) => false,
            Err(e) => super::idempotency::worth_retrying(e.status_code().as_u16(), &e.body()),
        }
    }
}

fn supabase_error(status: StatusCode, message: &Value) -> Value {
    json!({ "error": { "http_code": status.as_u16(), "message": message } })
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn count(state: &AppState, hook: Hook, result: &str) {
    state
        .gateway
        .metrics()
        .hook_requests
        .with_label_values(&[hook.as_str(), result])
        .inc();
}

/// Refuses a request that failed its hook's check; nothing is sent.
fn refuse(state: &AppState, hook: Hook, result: &str, reason: &str) -> HttpResponse {
    count(state, hook, result);
    tracing::warn!(hook = hook.as_str(), reason, "hook request refused");
    let body = match hook {
        Hook::Supabase => supabase_error(StatusCode::UNAUTHORIZED, &json!(reason)),
        _ => json!({ "error": "unauthorized", "message": reason }),
    };
    HttpResponse::Unauthorized().json(body)
}

/// A body that passed its check but cannot be delivered: the sender's own mistake.
fn invalid(state: &AppState, hook: Hook, message: String) -> HttpResponse {
    count(state, hook, "invalid");
    let e = ApiError::InvalidRequest(message);
    match hook {
        Hook::Supabase => HttpResponse::Ok().json(supabase_error(e.status_code(), &e.body()["message"])),
        _ => e.error_response(),
    }
}

/// Runs `deliver` at most once per `key` (24 h) in the hook's scope past its admission, which
/// claims the key, and answers.
async fn once<F, Fut>(state: &AppState, hook: Hook, key: &str, body: &[u8], sender: ExternalSender, deliver: F) -> HttpResponse
where
    F: Fn(ExternalSender) -> Fut,
    Fut: std::future::Future<Output = Result<ExternalSent, GatewayError>>,
{
    let hash = Sha256::digest(body);
    let ran = state
        .gateway
        .idempotency()
        .once(hook.client(), Some(key), &hash, |claim| {
            let delivered = deliver(ExternalSender { claim, ..sender.clone() });
            async move { Answer::new(hook, delivered.await) }
        })
        .await;
    let (status, json) = match ran {
        Ok(Once::Ran(answer)) => {
            count(state, hook, answer.label());
            answer.response()
        }
        Ok(Once::Replayed { status, body }) => {
            count(state, hook, "replayed");
            (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
        }
        Err(e) => {
            let e = match e {
                IdempotencyError::Conflict => ApiError::IdempotencyConflict,
                IdempotencyError::InFlight => ApiError::IdempotencyInFlight,
                IdempotencyError::Store(e) => {
                    tracing::error!(hook = hook.as_str(), error = ?e, "claiming a hook's dedupe key failed");
                    ApiError::Internal(anyhow::Error::new(e).context("claiming a hook's dedupe key"))
                }
            };
            Answer { hook, result: Err(e) }.response()
        }
    };
    HttpResponse::build(status).json(json)
}

/// `POST /v1/hooks/supabase/send-sms`: Supabase Auth's Send SMS hook.
#[utoipa::path(
    post,
    path = "/v1/hooks/supabase/send-sms",
    tag = "hooks",
    request_body(content = super::openapi::HookPayload, description = "Supabase Auth's payload, signed per Standard Webhooks"),
    params(
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks message id"),
        ("webhook-timestamp" = Option<String>, Header, description = "Unix seconds"),
        ("webhook-signature" = Option<String>, Header, description = "`v1,<base64 HMAC-SHA256>`"),
    ),
    responses(
        (status = 200, description = "`{}` when sent; `{error: {http_code, message}}` when refused", body = super::openapi::SupabaseAnswer),
        (status = 401, description = "Unsigned, wrongly signed, or the hook has no secret", body = super::openapi::SupabaseAnswer),
        (status = "5XX", description = "An unexpected failure", body = super::openapi::SupabaseAnswer),
    )
)]
pub async fn supabase(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let hook = Hook::Supabase;
    let verifier = &state.hooks.supabase;
    if !verifier.is_configured() {
        return refuse(&state, hook, "not_configured", "the Supabase hook has no secret configured");
    }
    let signed = Signed {
        id: header(&req, "webhook-id"),
        timestamp: header(&req, "webhook-timestamp"),
        signature: header(&req, "webhook-signature"),
    };
    let now = state.gateway.clock().now().timestamp();
    if let Err(e) = verifier.verify(signed, &body, now) {
        return refuse(&state, hook, "unauthorized", &e.to_string());
    }
    let sms = match supabase::parse(&body) {
        Ok(sms) => sms,
        Err(e) => return invalid(&state, hook, e.to_string()),
    };
    let sender = ExternalSender {
        client: hook.client().to_string(),
        user_id: sms.user_id.clone(),
        client_ip: sms.client_ip,
        within: Some(state.hooks.supabase_deadline),
        claim: None,
    };
    let ttl = state.hooks.supabase_code_ttl_secs;
    once(&state, hook, &sms.dedupe_key, &body, sender, |sender| {
        state.gateway.deliver_code(sms.to.clone(), sms.otp.clone(), ttl, sender)
    })
    .await
}

/// `POST /v1/hooks/kratos/sms`: Ory Kratos' courier HTTP channel.
#[utoipa::path(
    post,
    path = "/v1/hooks/kratos/sms",
    tag = "hooks",
    request_body(content = super::openapi::KratosMessage, description = "Ory Kratos' courier HTTP channel payload"),
    responses(
        (status = 200, description = "Sent (or sent without the provider's confirmation)", body = super::openapi::MessageAccepted),
        (status = "4XX", description = "Refused: credentials, payload, limits", body = super::openapi::ErrorBody),
        (status = "5XX", description = "Every provider failed or the store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("hook_basic" = []), ("bearer" = []))
)]
pub async fn kratos(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let hook = Hook::Kratos;
    if let Some(refused) = refusal(&state, &req, hook, &state.hooks.kratos) {
        return refused;
    }
    let parsed = kratos::parse(&body, &state.gateway.settings().otp.default_country)
        .map(|s| (s.to, s.text))
        .map_err(|e| e.to_string());
    deliver_text(&state, hook, parsed, &body).await
}

/// `POST /v1/hooks/keycloak/sms`: Keycloak's SMS authenticator ("api" service).
#[utoipa::path(
    post,
    path = "/v1/hooks/keycloak/sms",
    tag = "hooks",
    request_body(content = super::openapi::KeycloakMessage, description = "Keycloak's SMS authenticator payload"),
    responses(
        (status = 200, description = "Sent (or sent without the provider's confirmation)", body = super::openapi::MessageAccepted),
        (status = "4XX", description = "Refused: credentials, payload, limits", body = super::openapi::ErrorBody),
        (status = "5XX", description = "Every provider failed or the store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("hook_basic" = []), ("bearer" = []))
)]
pub async fn keycloak(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let hook = Hook::Keycloak;
    if let Some(refused) = refusal(&state, &req, hook, &state.hooks.keycloak) {
        return refused;
    }
    let parsed = keycloak::parse(&body, &state.gateway.settings().otp.default_country)
        .map(|s| (s.to, s.text))
        .map_err(|e| e.to_string());
    deliver_text(&state, hook, parsed, &body).await
}

/// The 401 for a request without this hook's credentials; `None` lets it through.
fn refusal(state: &AppState, req: &HttpRequest, hook: Hook, credentials: &Credentials) -> Option<HttpResponse> {
    if !credentials.is_configured() {
        return Some(refuse(state, hook, "not_configured", "this hook has no credentials configured"));
    }
    if !credentials.accept(|name| header(req, name)) {
        return Some(refuse(state, hook, "unauthorized", "missing or wrong hook credentials"));
    }
    None
}

/// Delivers an authenticated hook's text once per body: a requeued message (Kratos sends the
/// same body again) is answered as the first was.
async fn deliver_text(state: &AppState, hook: Hook, parsed: Result<(Phone, String), String>, body: &[u8]) -> HttpResponse {
    let (to, text) = match parsed {
        Err(message) => return invalid(state, hook, message),
        Ok(sms) => sms,
    };
    let key = format!("sha256:{}", hex::encode(Sha256::digest(body)));
    let sender = ExternalSender {
        client: hook.client().to_string(),
        user_id: None,
        client_ip: None,
        within: None,
        claim: None,
    };
    once(state, hook, &key, body, sender, |sender| {
        state.gateway.deliver_text(to.clone(), text.clone(), sender)
    })
    .await
}
