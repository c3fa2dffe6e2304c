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

/// Every documented route. `/v1/admin/*` is not here yet: its handlers are being rewritten;
/// their paths join this one list when they land.
#[derive(OpenApi)]
#[openapi(
    info(title = "smsgate", description = "Multi-provider SMS/OTP gateway: one endpoint, ordered providers, failover."),
    paths(
        super::otp::send_route,
        super::otp::verify_route,
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
        serve,
        // /v1/admin/* (providers, clients, attempts, ...) goes here.
    ),
    components(schemas(OtpSentSeed, OtpVerifiedSeed, MessageAcceptedSeed)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "otp", description = "One-time codes: send, verify, session status"),
        (name = "sms", description = "Transactional and template messages"),
        (name = "users", description = "Step-up contacts"),
        (name = "hooks", description = "Auth servers' SMS hooks, each authenticated its sender's way"),
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
    // A send names its destination, or a user whose stored phone is used.
    schemas["SendOtpBody"]["anyOf"] = json!([{"required": ["phone"]}, {"required": ["user_id"]}]);
    // Step-up by SMS needs a phone to send to.
    // Kratos names the recipient in `to`, or in `recipient` with `to: null`.
    schemas["KratosMessage"]["anyOf"] = json!([
        {"required": ["to"], "properties": {"to": {"type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$"}}},
        {"required": ["recipient"], "properties": {"recipient": {"type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$"}}},
    ]);
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
/// it), read from this document. A route not in the document yet (`/v1/admin/*`) answers without.
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
}
