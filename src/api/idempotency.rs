//! The HTTP side of `Idempotency-Key`: read the header, hash the route and the parsed body, and
//! let `limits::Idempotency` run the handler at most once. A replay carries
//! `Idempotent-Replayed: true`.

use std::future::Future;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{fields, ApiError, AppState, Caller};
use crate::limits::{Claim, IdempotencyError, Once, Replayable};

/// A handler's answer before it becomes a response: status and JSON body.
pub type Answer = Result<(StatusCode, Value), ApiError>;

impl Replayable for Answer {
    fn stored(&self) -> (u16, Value) {
        match self {
            Ok((status, json)) => (status.as_u16(), json.clone()),
            Err(e) => (e.status_code().as_u16(), e.body()),
        }
    }

    fn releases_key(&self) -> bool {
        let (status, body) = self.stored();
        worth_retrying(status, &body)
    }
}

/// Whether an answer should let a retry with the same key run again: a 5xx or a 429 (which asks
/// for exactly that, after Retry-After; kept, the retry would get the stale refusal for the key's
/// TTL), but never once a provider may have sent the message, or a retry would send it twice.
pub(super) fn worth_retrying(status: u16, body: &Value) -> bool {
    (status >= 500 || status == 429) && body["delivery"] != "unknown"
}

/// Runs `handler` at most once per (client, key) past its admission, which claims the key (see
/// `limits::Idempotency`); `body` is the parsed request, hashed with the route.
pub async fn once<F, Fut>(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    body: &impl serde::Serialize,
    handler: F,
) -> Result<HttpResponse, ApiError>
where
    F: Fn(Option<Arc<Claim>>) -> Fut,
    Fut: Future<Output = Answer>,
{
    let key = key_of(req)?;
    let mut hasher = Sha256::new();
    hasher.update(req.match_pattern().unwrap_or_default().as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(body).unwrap_or_default());
    let hash = hasher.finalize();
    let once = state.gateway.idempotency().once(&caller.name, key.as_deref(), &hash, handler).await;
    match once {
        Ok(Once::Ran(answer)) => {
            let (status, body) = answer?;
            Ok(HttpResponse::build(status).json(body))
        }
        Ok(Once::Replayed { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            Ok(HttpResponse::build(status)
                .insert_header(("Idempotent-Replayed", "true"))
                .json(body))
        }
        Err(IdempotencyError::Conflict) => Err(ApiError::IdempotencyConflict),
        Err(IdempotencyError::InFlight) => Err(ApiError::IdempotencyInFlight),
        Err(IdempotencyError::Store(e)) => Err(ApiError::Internal(anyhow::Error::new(e).context("claiming the Idempotency-Key"))),
    }
}

fn key_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::InvalidRequest("`Idempotency-Key` must be visible ASCII".into()))?;
    let key = fields::identifier("Idempotency-Key", key, 255)?;
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::InvalidRequest(
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(Some(key.to_string()))
}
