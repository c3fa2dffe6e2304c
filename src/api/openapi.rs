//! The OpenAPI document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and the request types' `ToSchema`, served at `GET /openapi.json` and committed as
//! `openapi.json` (a test fails when the two differ; `OPENAPI_WRITE=1 scripts/test --test api
//! openapi` rewrites the file).

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::ApiError;

/// Every documented route: all that `super::configure` mounts but the settings page's assets.
#[derive(OpenApi)]
#[openapi(
    info(title = "smsgate", description = "Multi-provider SMS/OTP gateway: one endpoint, ordered providers, failover."),
    paths(
        super::otp::send_route,
        super::otp::verify_route,
        super::otp::resend_route,
        super::otp::session_status,
        super::sms::text_route,
        super::sms::template_route,
        super::users::get_contact,
        super::users::put_contact,
        super::ops::explain,
        super::hooks::supabase,
        super::hooks::kratos,
        super::hooks::keycloak,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::campaigns::create,
        super::campaigns::list,
        super::campaigns::get,
        super::campaigns::control,
        super::opt_outs::add,
        super::opt_outs::list,
        super::opt_outs::remove,
        super::opt_outs::twilio_inbound,
        super::receipts::status,
        super::admin::providers,
        super::admin::create_provider,
        super::admin::reorder,
        super::admin::update_provider,
        super::admin::delete_provider,
        super::admin::audit,
        super::admin::clients,
        super::admin::attempts,
        super::admin_ops::me,
        super::admin_ops::test_send,
        super::admin_ops::test_verify,
        super::admin_ops::logs,
        super::admin_ops::mfa_send,
        super::admin_ops::mfa_verify,
        super::admin_ops::status,
        serve,
    ),
    components(schemas(OtpSentSeed, OtpVerifiedSeed, MessageAcceptedSeed)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "otp", description = "One-time codes: send, verify, session status"),
        (name = "sms", description = "Transactional and template messages"),
        (name = "users", description = "Step-up contacts"),
        (name = "hooks", description = "Auth servers' SMS hooks, each authenticated its sender's way"),
        (name = "campaigns", description = "Bulk sends: create, list, pause, resume, cancel"),
        (name = "opt-outs", description = "Numbers that receive no promotional (or no) messages"),
        (name = "webhooks", description = "Providers' delivery receipts and inbound replies, each authenticated its provider's way"),
        (name = "admin", description = "The provider registry, logs, audit and clients (admin tokens)"),
        (name = "ops", description = "Probes, metrics, routing explanations, this document"),
        (name = "seed", description = "The seed deployment's contracts, on the same handlers"),
    )
)]
struct ApiDoc;

/// The seed deployment's routes, mounted on the `/v1` handlers with the seed answer shape:
/// (alias, the `/v1` route it shares a handler with, the schema of its success answer).
const SEED_ALIASES: &[(&str, &str, &str)] = &[
    ("/api/sms/sendOtp", "/v1/otp/send", "OtpSentSeed"),
    ("/api/sms/verifyOtp", "/v1/otp/verify", "OtpVerifiedSeed"),
    ("/api/sms/sendTemplate", "/v1/sms/template", "MessageAcceptedSeed"),
    ("/otp/send", "/v1/otp/send", "OtpSentSeed"),
    ("/otp/verify", "/v1/otp/verify", "OtpVerifiedSeed"),
    ("/sms/send-transactional", "/v1/sms/send", "MessageAcceptedSeed"),
];

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("hook_basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

/// The whole document: the annotated routes, the seed aliases, and what the derive cannot say.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(annotated()).expect("the OpenAPI document serialises");
    refine(&mut doc);
    doc
}

/// Constraints `#[derive(ToSchema)]` has no attribute for, so that a request the document calls
/// valid is one the handlers accept.
fn refine(doc: &mut serde_json::Value) {
    let schemas = &mut doc["components"]["schemas"];
    // A send names its destination, or a user whose stored phone is used; the other may be
    // null, as if left out.
    schemas["SendOtpBody"]["anyOf"] = json!([
        {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
        {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
    ]);
    // Step-up by SMS needs a phone to send to.
    // Kratos names the recipient in `to`, or in `recipient` with `to: null`.
    schemas["KratosMessage"]["anyOf"] = json!([
        {"required": ["to"], "properties": {"to": {"type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$"}}},
        {"required": ["recipient"], "properties": {"recipient": {"type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$"}}},
    ]);
    // A campaign sends `text`, or a `template` with its `vars`; each recipient is a number, or
    // a number with its own values.
    schemas["CampaignBody"]["oneOf"] = json!([
        {"required": ["text"], "not": {"anyOf": [{"required": ["template"]}, {"required": ["vars"]}]}},
        {"required": ["template"], "not": {"required": ["text"]}},
    ]);
    let var = json!({"type": "string", "maxLength": 500, "pattern": "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"});
    schemas["CampaignBody"]["properties"]["vars"]["items"] = var.clone();
    schemas["CampaignBody"]["properties"]["recipients"]["items"] = json!({"oneOf": [
        {"type": "string"},
        {"type": "object", "required": ["phone"], "additionalProperties": false, "properties": {
            "phone": {"type": "string"},
            "vars": {"type": "array", "maxItems": 20, "items": var},
        }},
    ]});
    schemas["ContactBody"]["anyOf"] = json!([
        {"properties": {"otp_enabled": {"const": false}}},
        {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
    ]);
    // Each template value: no control character but line breaks and tabs, at most 500 characters.
    schemas["TemplateBody"]["properties"]["vars"]["items"] = json!({
        "type": "string",
        "maxLength": 500,
        "pattern": "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$",
    });
}

/// The annotated routes and the seed aliases.
fn annotated() -> Document {
    let mut doc = ApiDoc::openapi();
    for (alias, canonical, answer) in SEED_ALIASES {
        let Some(mut item) = doc.paths.paths.get(*canonical).cloned() else {
            continue;
        };
        let seed_id = format!("seed{}", alias.replace(['/', '-'], "_"));
        for op in [item.post.as_mut(), item.get.as_mut()].into_iter().flatten() {
            op.operation_id = Some(seed_id.clone());
            op.tags = Some(vec!["seed".into()]);
            for (status, response) in op.responses.responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    for content in response.content.values_mut() {
                        content.schema = Some(RefOr::Ref(Ref::from_schema_name(*answer)));
                    }
                }
            }
        }
        doc.paths.paths.insert((*alias).to_string(), item);
    }
    doc
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = serde_json::to_string_pretty(&document()).expect("the OpenAPI document serialises");
        json.push('\n');
        json
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document_json())
}

/// 405 for a method a route does not take, with `Allow` naming those it does (RFC 9110 requires
/// it), read from this document.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut res = ApiError::MethodNotAllowed.error_response();
    let allow = req.match_pattern().and_then(|p| allowed_methods().get(&p).cloned());
    if let Some(value) = allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
        res.headers_mut().insert(header::ALLOW, value);
    }
    res
}

/// Each documented route's methods as an `Allow` value: `GET, PUT`.
fn allowed_methods() -> &'static HashMap<String, String> {
    static ALLOWED: OnceLock<HashMap<String, String>> = OnceLock::new();
    ALLOWED.get_or_init(|| {
        let doc = document();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        paths
            .into_iter()
            .map(|(path, item)| {
                let methods: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .map(|m| m.to_uppercase())
                    .collect();
                (path, methods.join(", "))
            })
            .collect()
    })
}

/// The optional `Idempotency-Key` header of sends.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // only describes a header the handlers read themselves
pub struct IdempotencyKey {
    /// Replaying a request with the same key and body returns the first answer and sends nothing
    /// (24 h); the same key with another body is 422. 1 to 255 visible ASCII characters.
    #[param(rename = "Idempotency-Key", max_length = 255, pattern = "^[!-~]+$")]
    idempotency_key: Option<String>,
}

pub use schemas::*;

/// The JSON the handlers write, described for the document (the handlers build it with `json!`;
/// the schemathesis run in `scripts/check-api` checks every answer against these).
#[allow(dead_code)]
mod schemas {
    use super::ToSchema;
    use crate::store::SessionStatus;
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    /// `{error, message}` and the context some errors carry.
    #[derive(ToSchema)]
    pub struct ErrorBody {
        /// A stable snake_case code.
        pub error: String,
        /// For a person.
        pub message: String,
        /// Rate limits and an unavailable store: seconds to wait (also in `Retry-After`).
        pub retry_after_seconds: Option<u64>,
        /// Rate limits: which limit refused.
        pub reason: Option<String>,
        /// A provider's own rejection code.
        pub provider_code: Option<String>,
        /// Admin callers: why each provider failed.
        pub providers: Option<Vec<ProviderReason>>,
        /// `unknown` when a provider may have sent the message after all.
        pub delivery: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct ProviderReason {
        pub provider: String,
        pub reason: String,
    }

    #[derive(ToSchema)]
    pub struct OtpSent {
        pub session_id: Uuid,
        pub status: SessionStatus,
        pub message: String,
        pub created_at: DateTime<Utc>,
        pub expires_at: DateTime<Utc>,
        /// Seconds until another code may be sent to this phone.
        pub resend_after_seconds: u64,
        /// `unconfirmed` when the provider did not confirm; absent otherwise.
        pub delivery: Option<String>,
    }

    /// The seed contract's answer to a send.
    #[derive(ToSchema)]
    pub struct OtpSentSeed {
        pub session_id: Uuid,
        pub status: SessionStatus,
        pub message: String,
        pub response_time_ms: u64,
    }

    #[derive(ToSchema)]
    pub struct OtpVerified {
        pub verified: bool,
        pub status: SessionStatus,
        pub message: String,
        pub attempts_left: u32,
        /// A signed, short-lived proof of this verification (on success only).
        pub verification_token: Option<String>,
    }

    /// The seed contract's answer to a verify.
    #[derive(ToSchema)]
    pub struct OtpVerifiedSeed {
        pub verified: bool,
        pub status: SessionStatus,
        pub message: String,
        pub response_time_ms: u64,
    }

    #[derive(ToSchema)]
    pub struct SessionState {
        pub session_id: Uuid,
        pub status: SessionStatus,
        pub purpose: String,
        pub user_id: Option<String>,
        pub attempts_left: u32,
        pub created_at: DateTime<Utc>,
        pub expires_at: DateTime<Utc>,
        pub verified_at: Option<DateTime<Utc>>,
    }

    #[derive(ToSchema)]
    pub struct MessageAccepted {
        pub message_id: Uuid,
        /// `accepted`, or `unconfirmed` when the provider did not confirm.
        pub status: String,
        pub provider: String,
    }

    /// The seed contract's answer to a message send.
    #[derive(ToSchema)]
    pub struct MessageAcceptedSeed {
        pub message_id: Uuid,
        pub status: String,
        pub provider: String,
        pub message: String,
        pub response_time_ms: u64,
    }

    #[derive(ToSchema)]
    pub struct Explanation {
        /// The destination, masked.
        pub to: String,
        pub kind: String,
        /// Each provider in order and why it is in or out.
        #[schema(value_type = Vec<Object>)]
        pub candidates: Vec<serde_json::Value>,
    }

    #[derive(ToSchema)]
    pub struct Health {
        pub status: String,
    }

    #[derive(ToSchema)]
    pub struct Readiness {
        /// `ready` or `not_ready`.
        pub status: String,
        pub reasons: Vec<String>,
        pub store: StoreState,
        pub providers: ProvidersState,
        pub warnings: Vec<String>,
    }

    #[derive(ToSchema)]
    pub struct StoreState {
        pub kind: String,
        pub reachable: bool,
    }

    #[derive(ToSchema)]
    pub struct ProvidersState {
        pub configured: u64,
        pub usable: u64,
    }

    /// The sender's JSON payload, read by the hook's own parser.
    #[derive(ToSchema)]
    #[schema(value_type = Object)]
    pub struct HookPayload(serde_json::Value);

    /// Ory Kratos' courier message (its HTTP channel's default template); other fields Kratos
    /// adds are ignored.
    #[derive(ToSchema)]
    pub struct KratosMessage {
        /// The recipient; `recipient` is read when `to` is absent, null or blank (Kratos' default
        /// template sends `to: null`).
        #[schema(pattern = "^(\\+[1-9][0-9]{7,14}|\\s*)$")]
        pub to: Option<String>,
        /// Read only when `to` is absent, null or blank.
        pub recipient: Option<String>,
        /// The text as Kratos rendered it, at most 1600 characters.
        #[schema(
            pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$",
            max_length = 1600
        )]
        pub body: String,
    }

    /// Keycloak's SMS authenticator ("api" service) message.
    #[derive(ToSchema)]
    pub struct KeycloakMessage {
        #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
        pub to: String,
        /// The text holding Keycloak's code, at most 1600 characters.
        #[schema(
            pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$",
            max_length = 1600
        )]
        pub text: String,
        /// The plugin's sender id, any JSON; ignored.
        pub from: Option<serde_json::Value>,
    }

    /// Supabase's hook answer: `{}` when sent, else `error`.
    #[derive(ToSchema)]
    pub struct SupabaseAnswer {
        pub error: Option<SupabaseError>,
    }

    #[derive(ToSchema)]
    pub struct SupabaseError {
        pub http_code: u16,
        pub message: String,
    }

    #[derive(ToSchema)]
    pub struct OtpResent {
        pub session_id: Uuid,
        pub status: SessionStatus,
        pub message: String,
        /// Which send of the session this was (the first send is 1).
        pub attempt: u32,
        pub max_sends: u32,
        /// Seconds until another resend may be asked.
        pub resend_after_seconds: u64,
        pub expires_at: DateTime<Utc>,
        /// `unconfirmed` when the provider did not confirm; absent otherwise.
        pub delivery: Option<String>,
    }

    /// A campaign (`application/json`): `text`, or `template` with `vars`, to every recipient.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CampaignBody {
        #[schema(
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
            max_length = 200
        )]
        pub name: String,
        /// `promotional` (the default: opt-outs and quiet hours apply) or `transactional`.
        #[schema(rename = "type", pattern = "^(promotional|transactional)$", nullable = false)]
        pub kind: Option<String>,
        /// The text, at most 1600 characters (or give `template`).
        #[schema(
            pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$",
            max_length = 1600,
            nullable = false
        )]
        pub text: Option<String>,
        /// A configured template's name (or give `text`).
        #[schema(
            pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
            max_length = 100,
            nullable = false
        )]
        pub template: Option<String>,
        /// The template's values for every recipient (with `template` only).
        #[schema(nullable = false, max_items = 20)]
        pub vars: Option<Vec<String>>,
        /// Each recipient: `{"phone": "+91…", "vars": [...]}`, or the number alone.
        #[schema(value_type = Vec<Object>)]
        pub recipients: Vec<serde_json::Value>,
        /// When to start (now when absent).
        #[schema(nullable = false)]
        pub schedule_at: Option<DateTime<Utc>>,
        /// A cap on this campaign's sends per second.
        #[schema(minimum = 1, nullable = false)]
        pub max_per_second: Option<u32>,
    }

    #[derive(ToSchema)]
    pub struct CampaignCreated {
        pub id: Uuid,
        pub status: String,
        pub queued: u64,
        pub duplicates: u64,
        pub invalid_count: u64,
        /// The first 1000 invalid recipients and why.
        #[schema(value_type = Vec<Object>)]
        pub invalid: Vec<serde_json::Value>,
    }

    #[derive(ToSchema)]
    pub struct CampaignState {
        pub id: Uuid,
        pub name: String,
        #[schema(rename = "type")]
        pub kind: String,
        pub status: String,
        pub schedule_at: Option<DateTime<Utc>>,
        pub max_per_second: Option<u32>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
        /// Recipients by state: total, queued, sending, sent, delivered, failed, ...
        #[schema(value_type = Object)]
        pub counts: serde_json::Value,
    }

    #[derive(ToSchema)]
    pub struct CampaignPage {
        pub campaigns: Vec<CampaignState>,
        /// The `cursor` of the next page; null on the last.
        pub next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct OptOut {
        pub phone: String,
        pub scope: String,
        /// Whether this call added it.
        pub created: bool,
    }

    #[derive(ToSchema)]
    pub struct OptOutRemoved {
        pub phone: String,
        pub removed: u64,
    }

    #[derive(ToSchema)]
    pub struct OptOutEntry {
        pub phone: String,
        pub scope: String,
        /// `api`, `twilio_inbound`, ...
        pub source: String,
        pub created_at: DateTime<Utc>,
    }

    #[derive(ToSchema)]
    pub struct OptOutPage {
        pub opt_outs: Vec<OptOutEntry>,
        /// The `after` of the next page; null on the last.
        pub next_after: Option<String>,
    }

    /// Twilio's inbound-message form; other fields Twilio sends are ignored.
    #[derive(ToSchema)]
    #[schema(rename_all = "PascalCase")]
    pub struct TwilioInbound {
        pub from: Option<String>,
        pub body: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct ReceiptTaken {
        /// `matched`, `pending`, `duplicate` or `interim`.
        pub status: String,
    }

    /// One provider as in force: its keys, secrets masked, live health.
    #[derive(ToSchema)]
    #[schema(value_type = Object)]
    pub struct ProviderEntry(serde_json::Value);

    #[derive(ToSchema)]
    pub struct ProviderRegistry {
        pub version: i64,
        /// `config` (read from the config file) or `database`.
        pub source: String,
        pub providers: Vec<ProviderEntry>,
        /// Per-country provider orders.
        #[schema(value_type = Value)]
        pub routes: serde_json::Value,
    }

    #[derive(ToSchema)]
    pub struct ProviderOrder {
        pub version: i64,
        pub providers: Vec<ProviderEntry>,
    }

    /// A new provider.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct NewProviderBody {
        #[schema(max_length = 64)]
        pub name: String,
        /// The adapter: `twilio`, `2factor`, `msg91`, ...
        pub kind: String,
        #[schema(nullable = false)]
        pub priority: Option<i32>,
        #[schema(nullable = false)]
        pub enabled: Option<bool>,
        /// The adapter's non-secret keys.
        #[schema(value_type = Object)]
        pub config: Option<serde_json::Value>,
        /// The adapter's secrets (stored sealed; needs the master key).
        #[schema(value_type = Object)]
        pub secrets: Option<serde_json::Value>,
    }

    /// A change to one provider: keys given replace theirs (`null` resets one).
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ProviderPatchBody {
        #[schema(nullable = false)]
        pub enabled: Option<bool>,
        #[schema(nullable = false)]
        pub priority: Option<i32>,
        #[schema(value_type = Object)]
        pub config: Option<serde_json::Value>,
        #[schema(value_type = Object)]
        pub secrets: Option<serde_json::Value>,
    }

    /// The whole order: a list of names, or `{order, enabled}`.
    #[derive(ToSchema)]
    pub struct OrderBodyDoc {
        pub order: Vec<String>,
        /// Switches to set with the order, by name.
        #[schema(nullable = false)]
        pub enabled: Option<std::collections::BTreeMap<String, bool>>,
    }

    #[derive(ToSchema)]
    pub struct AuditPage {
        #[schema(value_type = Vec<Object>)]
        pub items: Vec<serde_json::Value>,
        pub next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct ClientList {
        #[schema(value_type = Vec<Object>)]
        pub clients: Vec<serde_json::Value>,
    }

    #[derive(ToSchema)]
    pub struct AttemptList {
        #[schema(value_type = Vec<Object>)]
        pub attempts: Vec<serde_json::Value>,
    }

    #[derive(ToSchema)]
    pub struct AdminMe {
        pub name: String,
        pub roles: Vec<String>,
        pub mfa_required: bool,
        pub mfa_ok: bool,
        pub database: bool,
        pub can_set_secrets: bool,
    }

    #[derive(ToSchema)]
    pub struct TestSent {
        pub session_id: Uuid,
        pub provider: String,
        /// `sent` or `failed`.
        pub status: String,
        pub http_status: Option<u16>,
        /// The provider's answer, secrets and numbers masked, or why there was none.
        #[schema(value_type = Value)]
        pub raw: serde_json::Value,
        pub response_time_ms: u64,
    }

    #[derive(ToSchema)]
    pub struct TestVerified {
        /// `verified`, `invalid`, `expired`, `already_verified`, `exhausted` or `unavailable`.
        pub status: String,
        pub attempts_left: Option<u32>,
        /// The provider's answer when the provider holds the code; null when smsgate checked it.
        #[schema(value_type = Value)]
        pub raw: serde_json::Value,
    }

    #[derive(ToSchema)]
    pub struct MfaSent {
        pub session_id: Uuid,
        pub expires_at: DateTime<Utc>,
    }

    #[derive(ToSchema)]
    pub struct MfaPassed {
        /// Send it as `X-Admin-MFA` to read the logs.
        pub mfa_token: String,
        pub expires_at: DateTime<Utc>,
    }

    #[derive(ToSchema)]
    pub struct LogPage {
        #[schema(value_type = Vec<Object>)]
        pub items: Vec<serde_json::Value>,
        pub next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct ProviderStatus {
        pub version: i64,
        #[schema(value_type = Value)]
        pub providers: serde_json::Value,
    }
}
