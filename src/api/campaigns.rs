//! Campaign routes: `POST /v1/campaigns` (JSON, or a CSV upload with the campaign's fields as
//! query parameters), `GET /v1/campaigns` (cursor paged), `GET /v1/campaigns/{id}`, and
//! `POST /v1/campaigns/{id}/pause|resume|cancel`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{fields, ApiError, AppState, Caller};
use crate::campaigns::{progress, recipients, shown_status, CampaignError, CampaignRequest, RawRecipient};
use crate::config::Role;
use crate::store::campaigns::{Campaign, CampaignContent, CampaignKind, PageCursor};

const MAX_TEXT: usize = 1600;
const MAX_NAME: usize = 200;
/// Invalid recipients listed in the answer; `invalid_count` has them all.
const MAX_LISTED_INVALID: usize = 1000;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// A refusal this room's routes add to `ApiError`'s, in the same `{error, message}` shape.
#[derive(Debug)]
pub enum Failure {
    Api(ApiError),
    Own {
        status: StatusCode,
        code: &'static str,
        message: String,
        extra: Value,
    },
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<CampaignError> for Failure {
    fn from(e: CampaignError) -> Self {
        let message = e.to_string();
        let (status, code, extra) = match e {
            CampaignError::Store(s) => return Self::Api(ApiError::Internal(anyhow::Error::new(s))),
            CampaignError::TooManyRecipients { max, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_recipients",
                json!({ "max_recipients": max }),
            ),
            CampaignError::NoValidRecipients { invalid } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_valid_recipients",
                json!({ "invalid": invalid.iter().take(MAX_LISTED_INVALID).collect::<Vec<_>>() }),
            ),
            CampaignError::NotFound => (StatusCode::NOT_FOUND, "campaign_not_found", Value::Null),
            CampaignError::WrongState { status, .. } => (StatusCode::CONFLICT, "campaign_state", json!({ "status": status })),
        };
        Self::Own {
            status,
            code,
            message,
            extra,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(e) => e.fmt(f),
            Self::Own { message, .. } => f.write_str(message),
        }
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status_code(),
            Self::Own { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Api(e) => e.error_response(),
            Self::Own {
                status,
                code,
                message,
                extra,
            } => {
                let mut body = json!({ "error": code, "message": crate::phone::mask_numbers_in(message) });
                if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
                    b.extend(x.clone());
                }
                HttpResponse::build(*status).json(body)
            }
        }
    }
}

/// The campaign fields a JSON body or a CSV upload's query string carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFields {
    name: String,
    /// `promotional` (the default: opt-outs and quiet hours apply) or `transactional`.
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    schedule_at: Option<DateTime<Utc>>,
    #[serde(default)]
    max_per_second: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCampaign {
    #[serde(flatten)]
    fields: CampaignFieldsJson,
    recipients: Vec<RawRecipient>,
}

/// `CampaignFields` plus the campaign-wide template values (JSON only). `flatten` cannot be
/// combined with `deny_unknown_fields`, so the JSON body is checked on its own.
#[derive(Debug, Deserialize)]
struct CampaignFieldsJson {
    name: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    vars: Vec<String>,
    #[serde(default)]
    schedule_at: Option<DateTime<Utc>>,
    #[serde(default)]
    max_per_second: Option<u32>,
}

const JSON_KEYS: [&str; 8] = [
    "name",
    "type",
    "text",
    "template",
    "vars",
    "schedule_at",
    "max_per_second",
    "recipients",
];

/// `POST /v1/campaigns`: `application/json` `{name, type, text | template+vars, recipients,
/// schedule_at?, max_per_second?}`, or `text/csv` (`phone[,var1,…]` rows) with the same fields
/// but `recipients` and `vars` as query parameters.
#[utoipa::path(
    post,
    operation_id = "create_campaign",
    path = "/v1/campaigns",
    tag = "campaigns",
    description = "A campaign from a JSON body (shown), or a `text/csv` upload of `phone[,var1,…]` rows with the campaign's other fields as query parameters.",
    request_body = super::openapi::CampaignBody,
    responses(
        (status = 202, description = "Created and queued; invalid recipients are listed, not sent", body = super::openapi::CampaignCreated),
        (status = "4XX", description = "Refused; nothing was queued", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(state: web::Data<AppState>, caller: Caller, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, Failure> {
    caller.require(Role::Send)?;
    let limit = state.gateway.settings().campaigns.max_body_bytes;
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let request = match essence.as_str() {
        "application/json" => {
            let body = read_limited(payload, limit).await?;
            from_json(&body)?
        }
        "text/csv" => {
            let fields = web::Query::<CampaignFields>::from_query(req.query_string())
                .map_err(|e| ApiError::InvalidRequest(e.to_string()))?
                .into_inner();
            let body = read_limited(payload, limit).await?;
            let text = std::str::from_utf8(&body).map_err(|_| ApiError::InvalidRequest("the CSV upload is not UTF-8".into()))?;
            let json = CampaignFieldsJson {
                name: fields.name,
                kind: fields.kind,
                text: fields.text,
                template: fields.template,
                vars: Vec::new(),
                schedule_at: fields.schedule_at,
                max_per_second: fields.max_per_second,
            };
            campaign_request(json, recipients::from_csv(text))?
        }
        _ => return Err(ApiError::UnsupportedMediaType.into()),
    };
    let created = state.gateway.create_campaign(&caller.tenant(), request).await?;
    let campaign = state.gateway.campaign(&caller.tenant(), created.id).await?;
    let invalid: Vec<_> = created.invalid.iter().take(MAX_LISTED_INVALID).collect();
    Ok(HttpResponse::Accepted().json(json!({
        "id": created.id,
        "status": shown_status(&campaign, state.gateway.clock().now()),
        "queued": created.queued,
        "duplicates": created.duplicates,
        "invalid_count": created.invalid.len(),
        "invalid": invalid,
    })))
}

/// Reads the body up to `limit` bytes; more is 413.
async fn read_limited(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match super::deadline::is_body_timeout(&e) {
            true => ApiError::RequestTimeout,
            false => ApiError::InvalidRequest(e.to_string()),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn from_json(body: &[u8]) -> Result<CampaignRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(format!("request body is not valid JSON: {e}")))?;
    if let Some(unknown) = value.as_object().and_then(|o| o.keys().find(|k| !JSON_KEYS.contains(&k.as_str()))) {
        return Err(ApiError::InvalidRequest(format!("unknown field `{unknown}`")));
    }
    let parsed: JsonCampaign = fields::with_whole_numbers(value, &["max_per_second"])?;
    campaign_request(parsed.fields, parsed.recipients.into_iter().enumerate().collect())
}

/// Checks the campaign's own fields and pairs them with its recipients.
fn campaign_request(f: CampaignFieldsJson, recipients: Vec<(usize, RawRecipient)>) -> Result<CampaignRequest, ApiError> {
    let name = fields::identifier("name", &f.name, MAX_NAME)?.to_string();
    let kind = match f.kind.as_deref() {
        None => CampaignKind::Promotional,
        Some(k) => CampaignKind::parse(k).ok_or_else(|| ApiError::InvalidRequest("`type` must be transactional or promotional".into()))?,
    };
    let content = match (&f.text, &f.template) {
        (Some(text), None) if f.vars.is_empty() => CampaignContent::Text {
            text: fields::text("text", text, MAX_TEXT)?.to_string(),
        },
        (None, Some(template)) => {
            if f.vars.len() > recipients::MAX_VARS {
                return Err(ApiError::InvalidRequest(format!(
                    "`vars` may hold at most {} values",
                    recipients::MAX_VARS
                )));
            }
            for (i, v) in f.vars.iter().enumerate() {
                fields::var(&format!("vars[{i}]"), v, recipients::MAX_VAR)?;
            }
            CampaignContent::Template {
                template: fields::identifier("template", template, 100)?.to_string(),
                vars: f.vars,
            }
        }
        _ => return Err(ApiError::InvalidRequest("give either `text` or `template` (with `vars`)".into())),
    };
    if f.max_per_second == Some(0) {
        return Err(ApiError::InvalidRequest("`max_per_second` must be at least 1".into()));
    }
    Ok(CampaignRequest {
        name,
        kind,
        content,
        recipients,
        schedule_at: f.schedule_at,
        max_per_second: f.max_per_second,
    })
}

fn campaign_json(c: &Campaign, now: DateTime<Utc>) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "type": c.kind.as_str(),
        "status": shown_status(c, now),
        "schedule_at": c.schedule_at,
        "max_per_second": c.max_per_second,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "counts": progress(c),
    })
}

/// `GET /v1/campaigns/{id}`: a campaign and its progress.
#[utoipa::path(
    get,
    operation_id = "get_campaign",
    path = "/v1/campaigns/{id}",
    tag = "campaigns",
    params(("id" = uuid::Uuid, Path, description = "The campaign id")),
    responses(
        (status = 200, description = "The campaign", body = super::openapi::CampaignState),
        (status = "4XX", description = "Refused, or no such campaign for this app", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<Uuid>) -> Result<HttpResponse, Failure> {
    caller.require(Role::Send)?;
    let c = state.gateway.campaign(&caller.tenant(), *id).await?;
    Ok(HttpResponse::Ok().json(campaign_json(&c, state.gateway.clock().now())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 200 (default 50; larger is clamped).
    #[serde(default, deserialize_with = "fields::page_size")]
    #[param(minimum = 0)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[param(pattern = "^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

/// `GET /v1/campaigns?limit=&cursor=`: newest first; `next_cursor` fetches the next page.
#[utoipa::path(
    get,
    operation_id = "list_campaigns",
    path = "/v1/campaigns",
    tag = "campaigns",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of campaigns", body = super::openapi::CampaignPage),
        (status = "4XX", description = "Refused", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(state: web::Data<AppState>, caller: Caller, q: web::Query<ListQuery>) -> Result<HttpResponse, Failure> {
    caller.require(Role::Send)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let before = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let (page, next) = state.gateway.campaigns(&caller.tenant(), before, limit).await?;
    let now = state.gateway.clock().now();
    Ok(HttpResponse::Ok().json(json!({
        "campaigns": page.iter().map(|c| campaign_json(c, now)).collect::<Vec<_>>(),
        "next_cursor": next.map(|c| format!("{}_{}", c.created_at.timestamp_micros(), c.id)),
    })))
}

fn parse_cursor(text: &str) -> Result<PageCursor, ApiError> {
    let bad = || ApiError::InvalidRequest("`cursor` is not one this API gave".into());
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    Ok(PageCursor {
        created_at: DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?,
        id: id.parse().map_err(|_| bad())?,
    })
}

/// `POST /v1/campaigns/{id}/{action}` with action pause, resume or cancel.
#[utoipa::path(
    post,
    operation_id = "control_campaign",
    path = "/v1/campaigns/{id}/{action}",
    tag = "campaigns",
    params(
        ("id" = uuid::Uuid, Path, description = "The campaign id"),
        ("action" = String, Path, description = "`pause`, `resume` or `cancel`", pattern = "^(pause|resume|cancel)$"),
    ),
    responses(
        (status = 200, description = "The campaign in its new state", body = super::openapi::CampaignState),
        (status = "4XX", description = "Refused, no such campaign, or not in a state that allows it (409)", body = super::openapi::ErrorBody),
        (status = "5XX", description = "The store is unavailable", body = super::openapi::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn control(state: web::Data<AppState>, caller: Caller, path: web::Path<(Uuid, String)>) -> Result<HttpResponse, Failure> {
    caller.require(Role::Send)?;
    let (id, action) = path.into_inner();
    let tenant = caller.tenant();
    let gw = &state.gateway;
    let c = match action.as_str() {
        "pause" => gw.pause_campaign(&tenant, id).await?,
        "resume" => gw.resume_campaign(&tenant, id).await?,
        "cancel" => gw.cancel_campaign(&tenant, id).await?,
        _ => return Err(ApiError::RouteNotFound.into()),
    };
    Ok(HttpResponse::Ok().json(campaign_json(&c, gw.clock().now())))
}
