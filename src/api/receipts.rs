//! `POST /v1/webhooks/{provider}/status`: delivery receipts pushed by providers. `{provider}` is
//! the configured provider name. No bearer token: each request is authenticated the way its
//! provider signs receipts (`hooks::receipts`), and refused with 401 otherwise, nothing stored.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{ApiError, AppState};
use crate::hooks::receipts::{TakeError, Taken};
use crate::providers::{ReceiptError, ReceiptRequest, ReceiptSecrets};
use crate::store::receipts::ReceiptOutcome;

/// A delivery receipt, in the provider's own format (JSON or a form), authenticated its way.
#[utoipa::path(
    post,
    operation_id = "delivery_receipt",
    path = "/v1/webhooks/{provider}/status",
    tag = "webhooks",
    params(("provider" = String, Path, description = "The configured provider's name")),
    request_body(content = Object, description = "The provider's receipt, JSON or `application/x-www-form-urlencoded`"),
    responses(
        (status = 200, description = "Taken: `matched`, `pending`, `duplicate` or `interim`", body = super::openapi::ReceiptTaken),
        (status = "4XX", description = "Not authenticated as the provider (401), no such provider taking receipts (404), or malformed (400)", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    )
)]
pub async fn status(state: web::Data<AppState>, req: HttpRequest, provider: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let settings = &state.gateway.settings().receipts;
    let url = called_url(&req, settings.public_url.as_deref());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
        .collect();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    let secrets = ReceiptSecrets {
        url_token: settings.url_token.clone(),
        vonage_signature_secret: settings.vonage_signature_secret.clone(),
    };
    let request = ReceiptRequest {
        url: &url,
        content_type: &content_type,
        body: &body,
        headers: &headers,
        secrets: &secrets,
    };
    match state.gateway.take_receipt(&provider, &request).await {
        Ok(Taken::Stored(outcome)) => {
            let status = match outcome {
                ReceiptOutcome::Matched { .. } => "matched",
                ReceiptOutcome::Pending => "pending",
                ReceiptOutcome::Duplicate => "duplicate",
            };
            HttpResponse::Ok().json(json!({ "status": status }))
        }
        Ok(Taken::Interim) => HttpResponse::Ok().json(json!({ "status": "interim" })),
        Err(TakeError::Receipt(ReceiptError::Unauthenticated)) => {
            tracing::warn!(provider = %provider, "delivery receipt refused: not authenticated");
            HttpResponse::Unauthorized().json(json!({
                "error": "unauthorized",
                "message": "the receipt is not signed or authenticated as this provider does",
            }))
        }
        Err(TakeError::Receipt(ReceiptError::NotSupported)) => HttpResponse::NotFound().json(json!({
            "error": "not_found",
            "message": format!("no configured provider named `{provider}` pushes delivery receipts here"),
        })),
        Err(TakeError::Receipt(ReceiptError::Malformed(m))) => actix_web::ResponseError::error_response(&ApiError::InvalidRequest(m)),
        Err(TakeError::Gateway(e)) => actix_web::ResponseError::error_response(&ApiError::from_gateway(e, false)),
    }
}

/// The URL the provider called, as it signed it: `public_url` (or the request's own scheme and
/// host) followed by the path and query.
fn called_url(req: &HttpRequest, public_url: Option<&str>) -> String {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => {
            let info = req.connection_info();
            format!("{}://{}{path}", info.scheme(), info.host())
        }
    }
}
