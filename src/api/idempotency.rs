//! `Idempotency-Key` on every send route: the first request with a key runs; a replay with the
//! same body gets the first answer and sends nothing; the same key with another body is 422.
//! A duplicate that arrives while the first still runs waits for its answer. Answers worth
//! retrying (5xx, 429) are not kept: the key is released for the retry.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState, Caller};
use crate::store::IdempotencyClaim;

const KEY_TTL_SECS: u32 = 24 * 3600;
/// A claim whose request never finished (its instance died) is taken over after this.
const LEASE_SECS: u32 = 60;
/// How long a duplicate waits for the first request's answer.
const WAIT: Duration = Duration::from_secs(15);

/// A handler's answer before it becomes a response: status and JSON body.
pub type Answer = Result<(StatusCode, Value), ApiError>;

/// Runs `handler` at most once per (client, key); `body` is the parsed request, hashed with the route.
pub async fn once<F, Fut>(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    body: &impl serde::Serialize,
    handler: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Answer>,
{
    let Some(key) = key_of(req)? else {
        return respond(handler().await);
    };
    let store = &state.gateway.store;
    let mut hasher = Sha256::new();
    hasher.update(req.match_pattern().unwrap_or_default().as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(body).unwrap_or_default());
    let hash = hasher.finalize();
    let deadline = Instant::now() + WAIT;
    loop {
        let claim = store
            .claim_idempotency(&caller.name, &key, &hash, chrono::Utc::now(), KEY_TTL_SECS, LEASE_SECS)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        match claim {
            IdempotencyClaim::Claimed => break,
            IdempotencyClaim::Replay { status, body } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                return Ok(HttpResponse::build(status)
                    .insert_header(("Idempotent-Replayed", "true"))
                    .json(body));
            }
            IdempotencyClaim::Conflict => return Err(ApiError::IdempotencyConflict),
            IdempotencyClaim::InFlight if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            IdempotencyClaim::InFlight => return Err(ApiError::IdempotencyInFlight),
        }
    }
    let answer = handler().await;
    let (status, json) = match &answer {
        Ok((status, json)) => (*status, json.clone()),
        Err(e) => (actix_web::ResponseError::status_code(e), e.body()),
    };
    let stored = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // Worth retrying with the same key (a 429 asks for exactly that, after Retry-After):
        // forget it, or the retry would be answered with the stale refusal for the key's TTL.
        store.release_idempotency(&caller.name, &key).await
    } else {
        store.complete_idempotency(&caller.name, &key, status.as_u16(), &json).await
    };
    if let Err(e) = stored {
        tracing::error!(error = ?e, "storing the idempotent answer failed");
    }
    respond(answer)
}

fn key_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::InvalidRequest("`Idempotency-Key` must be visible ASCII".into()))?
        .trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::InvalidRequest(
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(Some(key.to_string()))
}

fn respond(answer: Answer) -> Result<HttpResponse, ApiError> {
    let (status, body) = answer?;
    Ok(HttpResponse::build(status).json(body))
}
